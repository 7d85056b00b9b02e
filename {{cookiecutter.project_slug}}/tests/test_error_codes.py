"""Each core error, and what every transport of this project answers it with, in one table."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
{%- if cookiecutter.use_graphql %}
from graphql import GraphQLError
{%- endif %}

from {{cookiecutter.package_name}}.chat.errors import (
    CapacityExceeded,
    ChatError,
    ContextTooLong,
    GenerationTimeout,
    InvalidGenerationRequest,
    ModelNotFound,
    ServiceShuttingDown,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from {{cookiecutter.package_name}}.errors import HTTP_STATUS_BY_CODE, http_status_of
{%- if cookiecutter.use_graphql %}
from {{cookiecutter.package_name}}.graphql.errors import classify
{%- endif %}
{%- if cookiecutter.use_grpc %}
from {{cookiecutter.package_name}}.grpc.status import status_for
{%- endif %}


@dataclass(frozen=True)
class Row:
    error: type[ChatError]
    http: int
{%- if cookiecutter.use_grpc %}
    grpc: str
{%- endif %}


ROWS = [
    Row(InvalidGenerationRequest, http=400{% if cookiecutter.use_grpc %}, grpc="INVALID_ARGUMENT"{% endif %}),
    Row(ContextTooLong, http=400{% if cookiecutter.use_grpc %}, grpc="INVALID_ARGUMENT"{% endif %}),
    Row(ModelNotFound, http=404{% if cookiecutter.use_grpc %}, grpc="NOT_FOUND"{% endif %}),
    Row(UpstreamRateLimited, http=429{% if cookiecutter.use_grpc %}, grpc="RESOURCE_EXHAUSTED"{% endif %}),
    Row(ChatError, http=500{% if cookiecutter.use_grpc %}, grpc="INTERNAL"{% endif %}),
    Row(UpstreamError, http=502{% if cookiecutter.use_grpc %}, grpc="INTERNAL"{% endif %}),
    Row(UpstreamUnavailable, http=503{% if cookiecutter.use_grpc %}, grpc="UNAVAILABLE"{% endif %}),
    Row(CapacityExceeded, http=503{% if cookiecutter.use_grpc %}, grpc="UNAVAILABLE"{% endif %}),
    Row(ServiceShuttingDown, http=503{% if cookiecutter.use_grpc %}, grpc="UNAVAILABLE"{% endif %}),
    Row(GenerationTimeout, http=504{% if cookiecutter.use_grpc %}, grpc="DEADLINE_EXCEEDED"{% endif %}),
]


def test_the_table_covers_every_core_error() -> None:
    def subclasses(cls: type[ChatError]) -> set[type[ChatError]]:
        return {cls}.union(*(subclasses(sub) for sub in cls.__subclasses__()))

    assert {row.error for row in ROWS} == subclasses(ChatError)
    assert set(HTTP_STATUS_BY_CODE) == {row.error.code for row in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.error.code)
def test_each_transport_answers_a_core_error_as_listed(row: Row) -> None:
    error = row.error()
    assert http_status_of(error) == row.http
{%- if cookiecutter.use_grpc %}
    assert status_for(error.code).name == row.grpc
{%- endif %}
{%- if cookiecutter.use_graphql %}
    # GraphQL carries the core's code itself in extensions.code.
    assert classify(GraphQLError("failed", original_error=error))[0] == error.code
{%- endif %}
