"""Prune what disabled features own, as listed in the rendered ``features.toml``.

A path listed under several features stays only when all of them are enabled.
The manifest is deleted afterwards; no network, no formatter, no git.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ENABLED = {
    "use_redis": "{{ cookiecutter.use_redis }}" == "True",
    "use_jwt": "{{ cookiecutter.use_jwt }}" == "True",
    "use_grpc": "{{ cookiecutter.use_grpc }}" == "True",
    "use_graphql": "{{ cookiecutter.use_graphql }}" == "True",
}
MANIFEST = Path("features.toml")


def paths_to_remove(manifest: dict[str, dict[str, object]]) -> set[str]:
    keep: dict[str, bool] = {}
    for feature in manifest["features"].values():
        assert isinstance(feature, dict)
        enabled = ENABLED[feature["prompt"]]
        for path in feature["paths"]:
            keep[path] = keep.get(path, True) and enabled
    return {path for path, wanted in keep.items() if not wanted}


def remove_empty_dirs(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()


def main() -> int:
    manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    for relative in sorted(paths_to_remove(manifest)):
        target = Path(relative)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            print(f"ERROR: features.toml names {relative}, which the template does not have.", file=sys.stderr)
            return 1
    MANIFEST.unlink()
    remove_empty_dirs(Path("."))
    project = Path.cwd().name
    print(
        f"\nCreated {project}. Next steps:\n"
        f"  cd {project}\n"
        "  make run     # create .venv, install, serve on http://127.0.0.1:8000 (fake LLM, no outside service)\n"
        "  make test    # lint, type-check and run the test suite\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
