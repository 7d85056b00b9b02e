"""``python -m <package>.auth.jwt.cli add-user``: run as a real process, then sign in."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import {{cookiecutter.package_name}} as package

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import TEST_JWT_SECRET

SOURCE_ROOT = str(Path(package.__file__).resolve().parents[1])
PASSWORD = "a long enough password"

AddUser = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def add_user(tmp_path: Path) -> AddUser:
    """Run ``add-user ARGS`` with ``stdin``; its exit code, output and errors."""

    async def run(*args: str, stdin: str, **env: str) -> tuple[int, str, str]:
        return await run_cli(args, stdin, env, cwd=tmp_path)

    return run


async def run_cli(
    args: Sequence[str], stdin: str, env: dict[str, str], cwd: Path
) -> tuple[int, str, str]:
    environment = {
        **os.environ,
        "PYTHONPATH": SOURCE_ROOT,
        "ENVIRONMENT": "test",
        "JWT_SECRET": TEST_JWT_SECRET,
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"{package.__name__}.auth.jwt.cli",
        "add-user",
        *args,
        env=environment,
        # Elsewhere than the project, whose .env (if any) must not take part.
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def sign_in(client_factory: Any, users_file: Path, password: str) -> int:
    async with client_factory(jwt_users_file=str(users_file)) as http:
        form = {"username": "alice", "password": password}
        response = await http.post("/api/v1/auth/token", data=form)
    return int(response.status_code)


async def test_add_user_writes_a_hash_that_signs_in(
    add_user: AddUser, client_factory: Any, tmp_path: Path
) -> None:
    users = tmp_path / "users.db"
    code, out, err = await add_user("alice", "--users-file", str(users), stdin=PASSWORD + "\n")
    assert (code, err) == (0, "")
    assert "alice" in out
    # Only a hash is stored, in a file only its owner can read.
    assert PASSWORD.encode() not in users.read_bytes()
    assert b"$argon2id$" in users.read_bytes()
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert await sign_in(client_factory, users, PASSWORD) == 200
    assert await sign_in(client_factory, users, "not the password") == 401


async def test_existing_users_need_replace(
    add_user: AddUser, client_factory: Any, tmp_path: Path
) -> None:
    users = tmp_path / "users.db"
    assert (await add_user("alice", "--users-file", str(users), stdin=PASSWORD))[0] == 0
    code, _, err = await add_user("alice", "--users-file", str(users), stdin="another password")
    assert code == 1
    assert "already exists" in err
    assert await sign_in(client_factory, users, PASSWORD) == 200
    replaced = await add_user(
        "alice", "--replace", "--users-file", str(users), stdin="another password"
    )
    assert replaced[0] == 0
    assert await sign_in(client_factory, users, "another password") == 200
    assert await sign_in(client_factory, users, PASSWORD) == 401


async def test_the_users_file_setting_is_the_default(add_user: AddUser, tmp_path: Path) -> None:
    users = tmp_path / "from-env.db"
    code, _, _ = await add_user("alice", stdin=PASSWORD, JWT_USERS_FILE=str(users))
    assert code == 0
    assert users.exists()


async def test_bad_input_is_refused_with_one_line(add_user: AddUser, tmp_path: Path) -> None:
    users = str(tmp_path / "users.db")
    short = await add_user("alice", "--users-file", users, stdin="short")
    bad_name = await add_user("no spaces please", "--users-file", users, stdin=PASSWORD)
    for code, _, err in (short, bad_name):
        assert code == 1
        assert err.startswith("error:")
        assert len(err.strip().splitlines()) == 1
    assert "at least 8" in short[2]
