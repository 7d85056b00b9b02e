"""Settings of ``use_graphql``: the bounds on documents and subscriptions.

Composed into ``settings.Settings``; the variables are documented in ``.env.example``.
"""

from __future__ import annotations

from pydantic import Field

from ..service_settings import ServiceSettings


class GraphQLSettings(ServiceSettings):
    # Documents nested deeper, with more aliases, tokens or bytes are refused before they run.
    graphql_max_depth: int = Field(default=10, ge=1, le=100)
    graphql_max_aliases: int = Field(default=15, ge=0, le=1000)
    graphql_max_tokens: int = Field(default=1000, ge=50, le=100_000)
    graphql_max_document_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    # Operations one WebSocket may run at once.
    graphql_max_subscriptions_per_connection: int = Field(default=5, ge=1, le=1000)
    # A WebSocket that sends no connection_init within this time is closed (4408).
    graphql_connection_init_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
