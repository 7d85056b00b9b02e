"""The committed gRPC stubs are what scripts/gen_protos.py makes of the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from grpc_helpers import GRPC_PACKAGE

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "gen_protos.py"
GENERATED = "*_pb2*.py*"


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    fresh = sorted(path.name for path in tmp_path.glob(GENERATED))
    committed = sorted(path.name for path in GRPC_PACKAGE.glob(GENERATED))
    assert fresh == ["chat_pb2.py", "chat_pb2.pyi", "chat_pb2_grpc.py", "chat_pb2_grpc.pyi"]
    assert committed == fresh
    drifted = [
        name
        for name in fresh
        if (tmp_path / name).read_bytes() != (GRPC_PACKAGE / name).read_bytes()
    ]
    assert not drifted, f"stale stubs {drifted}: run `make protos` (scripts/gen_protos.py)"


def test_stubs_import_their_siblings_relatively() -> None:
    for name in ("chat_pb2_grpc.py", "chat_pb2_grpc.pyi"):
        text = (GRPC_PACKAGE / name).read_text(encoding="utf-8")
        assert "from . import chat_pb2 as" in text
        assert "from streaming.v1 import" not in text
