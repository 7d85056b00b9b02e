"""``python -m <package>.auth.jwt.cli add-user NAME``: create a user who can sign in.

The password is asked for twice at a terminal, or read from the first line of
standard input otherwise (``echo "$PASSWORD" | ... add-user alice``), so that it
never appears in the shell history or the process list. Only its argon2 hash is
written, to ``JWT_USERS_FILE`` (or ``--users-file``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

from ...settings import load_settings
from .passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Passwords
from .user_db import UserDatabase
from .users import SqliteUserStore, valid_username


class CommandError(Exception):
    pass


def read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CommandError("the passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise CommandError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise CommandError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")


async def add_user(users_file: str, name: str, password: str, *, replace: bool) -> None:
    store = SqliteUserStore(UserDatabase(users_file))
    password_hash = await Passwords().hash(password)
    if not await store.add(name, password_hash, replace=replace):
        raise CommandError(f"user {name!r} already exists (use --replace to set a new password)")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.cli", description="Manage the users who can sign in."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-user", help="create a user; the password is read from stdin")
    add.add_argument("name", help="1-64 letters, digits or ._@-")
    add.add_argument("--users-file", help="SQLite file (default: JWT_USERS_FILE)")
    add.add_argument("--replace", action="store_true", help="set a new password if it exists")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    users_file = args.users_file or load_settings().jwt_users_file
    try:
        if not valid_username(args.name):
            raise CommandError(f"{args.name!r} is not a valid user name (1-64 of A-Z a-z 0-9 ._@-)")
        password = read_password()
        check_password(password)
        asyncio.run(add_user(users_file, args.name, password, replace=args.replace))
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.name!r} saved in {users_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
