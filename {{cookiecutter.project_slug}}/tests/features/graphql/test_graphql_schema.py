"""The committed ``schema.graphql`` is the schema the code defines."""

from __future__ import annotations

from pathlib import Path

from {{cookiecutter.package_name}}.graphql import export
from {{cookiecutter.package_name}}.graphql.schema import build_schema, schema_sdl
from {{cookiecutter.package_name}}.settings import Settings

COMMITTED = Path(__file__).resolve().parents[3] / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schema_sdl(), (
        "schema.graphql is out of date: run `make graphql-schema` and commit the result"
    )


def test_the_served_schema_is_the_exported_one() -> None:
    # Settings change the extensions, never the types.
    served = build_schema(Settings(_env_file=None, environment="test"))
    assert served.as_str() + "\n" == schema_sdl()


def test_export_writes_the_sdl(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"
    assert export.main(["export", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema_sdl()
