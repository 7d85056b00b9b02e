"""Refuse bad answers before anything is written.

Each rule is a row of (variable, check, what is allowed). The first failing row
prints one line and exits 1; cookiecutter then removes the output folder.
"""

from __future__ import annotations

import keyword
import re
import sys

VALUES = {
    "project_name": {{ cookiecutter.project_name | string | tojson }},
    "project_slug": {{ cookiecutter.project_slug | string | tojson }},
    "package_name": {{ cookiecutter.package_name | string | tojson }},
    "author_email": {{ cookiecutter.author_email | string | tojson }},
    "version": {{ cookiecutter.version | string | tojson }},
    "python_version": {{ cookiecutter.python_version | string | tojson }},
    "use_redis": {{ cookiecutter.use_redis | string | tojson }},
    "use_jwt": {{ cookiecutter.use_jwt | string | tojson }},
    "use_grpc": {{ cookiecutter.use_grpc | string | tojson }},
    "use_graphql": {{ cookiecutter.use_graphql | string | tojson }},
}

# Names a package must not take: it would shadow the standard library or one of
# the generated service's own dependencies on import.
SHADOWED = set(sys.stdlib_module_names) | {
    "anyio", "app", "fastapi", "grpc", "h11", "httptools", "httpx", "jwt", "limits",
    "main", "openai", "prometheus_client", "pwdlib", "pydantic", "pydantic_settings",
    "pytest", "redis", "settings", "src", "starlette", "strawberry", "structlog",
    "test", "tests", "uvicorn", "uvloop", "websockets",
}

SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
VERSION = re.compile(r"^\d+\.\d+\.\d+([.-]?(a|b|rc|dev|post)\d+)?$")
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
BOOLEANS = ("True", "False")

RULES = [
    ("project_name", lambda v: bool(v.strip()) and len(v) <= 80, "a non-empty name of at most 80 characters"),
    ("project_slug", lambda v: bool(SLUG.match(v)), "lowercase kebab-case such as 'streaming-service'"),
    ("package_name", lambda v: bool(PACKAGE.match(v)), "a lowercase Python identifier such as 'streaming_service'"),
    ("package_name", lambda v: not keyword.iskeyword(v), "a name that is not a Python keyword"),
    ("package_name", lambda v: v not in SHADOWED, "a name that does not shadow the standard library or a dependency"),
    ("author_email", lambda v: bool(EMAIL.match(v)), "an e-mail address such as 'you@example.com'"),
    ("version", lambda v: bool(VERSION.match(v)), "a version such as '0.1.0'"),
    ("python_version", lambda v: v in SUPPORTED_PYTHONS, "one of " + ", ".join(SUPPORTED_PYTHONS)),
    ("use_redis", lambda v: v in BOOLEANS, "true or false"),
    ("use_jwt", lambda v: v in BOOLEANS, "true or false"),
    ("use_grpc", lambda v: v in BOOLEANS, "true or false"),
    ("use_graphql", lambda v: v in BOOLEANS, "true or false"),
]


def main() -> int:
    for name, check, allowed in RULES:
        value = VALUES[name]
        if not check(value):
            print(f"ERROR: {name}={value!r} is not valid: expected {allowed}.", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
