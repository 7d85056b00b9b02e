#!/usr/bin/env python3
"""Run the template's test suite: ``python3 scripts/test.py [pytest args...]``.

Standard library only, so it works on a machine that has nothing but Python 3.11+:

1. creates (or reuses) ``.venv`` in the repository and installs the requirements
   listed in ``pyproject.toml`` under ``[project.optional-dependencies].test``;
   ``.venv`` is rebuilt whenever that file (or the interpreter) changes;
2. makes sure ``redis-server`` is installed (the generated services' Redis tests
   start their own server) and installs it with apt-get when running as root;
3. runs pytest from ``.venv`` over ``tests/`` and ``bench/`` on every core
   (pytest-xdist, one worker per variant group), forwarding any extra arguments;
4. without arguments, then runs the reliability suite (``tests/reliability/``,
   through ``scripts/reliability.py``) on its own, and exits non-zero if either
   run failed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

if sys.version_info < (3, 11):  # noqa: UP036 - this script must explain itself on old Pythons
    sys.exit(
        f"ERROR: Python 3.11 or newer is required, this is {sys.version.split()[0]}; "
        "run this script with python3.11 (or newer)."
    )

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
VENV = ROOT / ".venv"
STAMP = VENV / ".requirements-stamp"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def say(message: str) -> None:
    print(f"[test.py] {message}", flush=True)


def fail(message: str, code: int = 1) -> None:
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def requirements() -> list[str]:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    try:
        reqs = data["project"]["optional-dependencies"]["test"]
    except KeyError:
        fail(f"{PYPROJECT} has no [project.optional-dependencies].test list.")
    if not reqs or not all(isinstance(r, str) for r in reqs):
        fail(f"{PYPROJECT}: [project.optional-dependencies].test must be a list of strings.")
    return list(reqs)


def stamp() -> str:
    """Changes whenever the requirement set or the interpreter changes."""
    digest = hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()
    return f"{digest} {sys.version.split()[0]} {Path(sys.executable).resolve()}\n"


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


_apt_updated = False


def apt_install(*packages: str) -> bool:
    """Install Debian packages when running as root on an apt system."""
    global _apt_updated
    if not (is_root() and shutil.which("apt-get")):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        say("apt-get update")
        subprocess.run(["apt-get", "-qq", "update"], env=env, check=False)
        _apt_updated = True
    say(f"apt-get install -y {' '.join(packages)}")
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    return result.returncode == 0


def create_venv() -> None:
    if importlib.util.find_spec("ensurepip") is None:
        # Debian and Ubuntu ship venv's pip bootstrap in a separate package.
        minor = f"python{sys.version_info.major}.{sys.version_info.minor}-venv"
        if not (apt_install(minor) or apt_install("python3-venv")):
            fail(
                "this Python cannot create virtual environments (ensurepip is missing); "
                f"install it with `sudo apt-get install {minor}` (or python3-venv) and re-run."
            )
    if VENV.exists():
        shutil.rmtree(VENV)
    say(f"creating {VENV.relative_to(ROOT)} with {sys.executable}")
    result = subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=False)
    if result.returncode != 0:
        fail(f"`{sys.executable} -m venv {VENV}` failed (exit {result.returncode}).")


def ensure_venv() -> None:
    wanted = stamp()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text(encoding="utf-8") == wanted:
        say(f"reusing {VENV.relative_to(ROOT)} (requirements unchanged)")
        return
    create_venv()
    reqs = requirements()
    say(f"installing {len(reqs)} test requirements from pyproject.toml (pip, quiet)")
    result = subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *reqs],
        check=False,
    )
    if result.returncode != 0:
        fail(f"pip could not install the test requirements (exit {result.returncode}); see above.")
    STAMP.write_text(wanted, encoding="utf-8")


def ensure_redis() -> None:
    if shutil.which("redis-server"):
        return
    say("redis-server not found")
    if apt_install("redis-server") and shutil.which("redis-server"):
        return
    fail(
        "redis-server is required by the generated services' tests and is not installed; "
        "install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or "
        "`brew install redis` (macOS), then re-run `python3 scripts/test.py`."
    )


def run_pytest(args: list[str]) -> int:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    # No path given: pyproject's testpaths (tests/ and bench/).
    command = [str(PYTHON), "-m", "pytest", "-n", "auto", "--dist", "loadgroup", *args]
    say(" ".join(["pytest", *command[3:]]))
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def run_reliability() -> int:
    """The reliability suite, after the rest and on its own: its latency and memory
    bounds must not share the cores with the variants' test runs. Its figures land
    in .cache/reliability/; `python3 scripts/reliability.py --render-only` turns
    them into RELIABILITY.md."""
    command = [sys.executable, str(ROOT / "scripts" / "reliability.py"), "--python", str(PYTHON)]
    command.append("--no-render")
    say("reliability suite: " + " ".join(command[1:]))
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def main() -> int:
    started = time.monotonic()
    os.chdir(ROOT)
    code = 1
    try:
        ensure_venv()
        ensure_redis()
        args = sys.argv[1:]
        code = run_pytest(args)
        if not args:
            # The whole suite: the reliability suite too (given arguments select tests).
            reliability = run_reliability()
            code = code or reliability
    except KeyboardInterrupt:
        code = 130
    finally:
        minutes, seconds = divmod(round(time.monotonic() - started), 60)
        say(f"finished in {minutes}m {seconds:02d}s wall time (exit code {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
