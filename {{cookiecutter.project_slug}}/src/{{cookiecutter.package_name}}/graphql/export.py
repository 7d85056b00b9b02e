"""Write the schema as SDL: ``python -m <package>.graphql.export [schema.graphql]``.

``tests/test_graphql_schema.py`` fails while the committed file differs from
what the code defines; run this (``make graphql-schema``) after changing a type.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .schema import schema_sdl


def main(argv: list[str]) -> int:
    target = Path(argv[1] if len(argv) > 1 else "schema.graphql")
    target.write_text(schema_sdl(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
