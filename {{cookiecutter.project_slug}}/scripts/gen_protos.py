"""Regenerate the gRPC stubs from the .proto files: ``python scripts/gen_protos.py``.

grpcio-tools writes ``<name>_pb2.py`` and ``<name>_pb2_grpc.py``, mypy-protobuf
their ``.pyi`` type stubs (async servicer and stub types only: the service runs
``grpc.aio``). The stubs are committed so that neither tool is needed at run
time; ``tests/test_grpc_stubs.py`` runs this script into a temporary folder and
fails when the committed files differ from what the .proto files give.

The generated code imports its siblings by proto package (``from streaming.v1
import chat_pb2``), which is not where they live in this project: those imports
are rewritten to relative ones, so the stubs work whatever the Python package
is called.

Usage: ``python scripts/gen_protos.py [--out DIR]`` (default: next to the service code).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = "*_pb2*.py*"


def grpc_package() -> Path:
    """``src/<package>/grpc``, found rather than named so that this script needs no template."""
    found = sorted(ROOT.glob("src/*/grpc/protos"))
    if len(found) != 1:
        raise SystemExit(f"expected one src/*/grpc/protos folder, found {len(found)}")
    return found[0].parent


def plugin(name: str) -> str:
    """A protoc plugin installed beside this interpreter (a venv's bin), else on PATH."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} not found: install the dev extra (mypy-protobuf)")
    return path


def relative_imports(text: str, proto_packages: list[str]) -> str:
    """``from streaming.v1 import chat_pb2`` -> ``from . import chat_pb2``.

    Only this project's proto packages are rewritten; well-known types such as
    ``from google.protobuf import timestamp_pb2`` stay absolute.
    """
    for package in proto_packages:
        pattern = re.compile(rf"^from {re.escape(package)} import (\w+_pb2)\b", re.MULTILINE)
        text = pattern.sub(r"from . import \1", text)
    return text


def generate(protos: Path, out: Path) -> list[Path]:
    """Compile every .proto under ``protos`` into ``out`` (flat); return the files written."""
    sources = sorted(path.relative_to(protos).as_posix() for path in protos.rglob("*.proto"))
    proto_packages = sorted({source.rpartition("/")[0].replace("/", ".") for source in sources})
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={protos}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--plugin=protoc-gen-mypy={plugin('protoc-gen-mypy')}",
            f"--plugin=protoc-gen-mypy_grpc={plugin('protoc-gen-mypy_grpc')}",
            f"--mypy_out=quiet:{tmp}",
            f"--mypy_grpc_out=only_async,quiet:{tmp}",
            *sources,
        ]
        subprocess.run(command, check=True)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for path in sorted(Path(tmp).rglob(GENERATED)):
            target = out / path.name
            text = relative_imports(path.read_text(encoding="utf-8"), proto_packages)
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    package = grpc_package()
    parser.add_argument("--out", type=Path, default=package, help="where to write the stubs")
    args = parser.parse_args(argv)
    for path in generate(package / "protos", args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
