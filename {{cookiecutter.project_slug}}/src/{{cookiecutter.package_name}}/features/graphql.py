"""``use_graphql``: serve GraphQL at ``/api/v1/graphql``."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from ..graphql.context import context_getter
from ..graphql.router import ServiceGraphQLRouter
from ..graphql.schema import build_schema
from .base import Feature, Wiring

PATH = "/graphql"


class GraphQLFeature(Feature):
    name = "graphql"

    def install(self, app: FastAPI, wiring: Wiring) -> None:
        settings = wiring.settings
        router = ServiceGraphQLRouter(
            build_schema(settings),
            path=PATH,
            authenticators=wiring.authenticators,
            context_getter=context_getter(wiring.core, settings, wiring.policy),
            graphql_ide=None if settings.is_production else "graphiql",
            # Queries in URLs end up in logs and caches; POST is enough.
            allow_queries_via_get=False,
            # The legacy graphql-ws protocol (subscriptions-transport-ws) is unmaintained
            # and has no connection_init timeout; current clients speak graphql-transport-ws.
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            connection_init_wait_timeout=timedelta(
                seconds=settings.graphql_connection_init_timeout_seconds
            ),
            max_subscriptions_per_connection=settings.graphql_max_subscriptions_per_connection,
            # Pages on other sites may not open the socket with the user's cookies.
            allowed_origins=settings.cors_origins,
            tags=["graphql"],
        )
        app.include_router(router, prefix=wiring.api_prefix)
