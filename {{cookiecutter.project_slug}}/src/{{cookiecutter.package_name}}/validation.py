"""One line from a Pydantic validation error, for every place that reports one.

HTTP (422 bodies), WebSocket messages, the other transports' errors and the
settings loader each name a field their own way (dotted path, camelCase,
environment variable); the line has the same shape everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic_core import ErrorDetails

Location = tuple[int | str, ...]


def dotted(location: Location) -> str:
    return ".".join(str(part) for part in location)


def describe_problems(
    problems: Sequence[ErrorDetails],
    *,
    name: Callable[[Location], str] = dotted,
    limit: int | None = 5,
    fallback: str = "request",
) -> str:
    """``where: why; where: why; and N more``, listing at most ``limit`` problems."""
    shown = problems if limit is None else problems[:limit]
    parts = [
        f"{name(item['loc']) or fallback}: {item['msg'].removeprefix('Value error, ')}"
        for item in shown
    ]
    if len(problems) > len(shown):
        parts.append(f"and {len(problems) - len(shown)} more")
    return "; ".join(parts)
