"""Strawberry's FastAPI router, with this service's WebSocket authentication and IDE policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import structlog
from cross_web import HTTPException
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types.unset import UNSET, UnsetType

from ..asgi import request_id_of
from ..auth.authenticators import AuthenticationError, Authenticator
from ..errors import ERROR_RESPONSES, STATUS_CODES, error_payload
from .context import GraphQLContext

# GraphiQL is a page that loads React and GraphiQL from unpkg.com and starts them
# with an inline script; the API's own policy ("default-src 'none'") would leave
# it blank. It talks only to this origin, over fetch and the WebSocket.
IDE_CSP = (
    "default-src 'none'; "
    "script-src 'self' 'unsafe-inline' https://unpkg.com; "
    "style-src 'self' 'unsafe-inline' https://unpkg.com; "
    "img-src 'self' data:; "
    "font-src 'self' data: https://unpkg.com; "
    "connect-src 'self'; "
    "frame-ancestors 'none'"
)

log = structlog.get_logger("graphql")

# Strawberry reads the body itself, so FastAPI cannot document it from a model.
GRAPHQL_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["query"],
                "properties": {
                    "query": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The GraphQL document.",
                        "examples": ["query { models { id } }"],
                    },
                    "variables": {
                        "type": ["object", "null"],
                        "description": "Values of the document's variables.",
                    },
                    "operationName": {
                        "type": ["string", "null"],
                        "minLength": 1,
                        "description": "Which operation of the document to run.",
                    },
                },
            }
        }
    },
}
IDE_PAGE: dict[str, Any] = {
    "description": "The GraphiQL page (outside production).",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
POST_ERRORS = (400, 401, 413, 429, 500, 503)


class TransportWSHandler(BaseGraphQLTransportWSHandler[GraphQLContext, None]):
    """Strawberry's graphql-transport-ws handler, less two false alarms.

    An operation whose client left while results were being sent ends with
    ``WebSocketDisconnected``, which Strawberry logs as "Exception in worker
    task" at ERROR with a traceback. A client leaving is no server error: it is
    logged at INFO, as the other transports log theirs.

    And an operation that completes while its connection is being torn down (a
    SIGTERM ends every stream at once) is de-registered twice: the teardown pops
    it, then its own final message forgets it again, a ``KeyError`` logged the
    same way. Forgetting an id that is already gone is nothing to report.
    """

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, WebSocketDisconnected):
            log.info("graphql.client_disconnected")
            return
        await super().handle_task_exception(error)

    def forget_id(self, id: str) -> None:
        self.operations.pop(id, None)


class ServiceGraphQLRouter(GraphQLRouter[GraphQLContext, None]):
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, *args: Any, authenticators: Sequence[Authenticator], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every authenticator the features configured (API keys, JWT), built once per app.
        self.authenticators = authenticators
        self._document_routes()

    def _document_routes(self) -> None:
        """The request body, the IDE page and the JSON errors, in the OpenAPI document."""
        for route in self.routes:
            if not isinstance(route, APIRoute):
                continue
            methods = route.methods or set()
            if "GET" in methods:
                route.responses = {**route.responses, 200: IDE_PAGE}
            if "POST" in methods:
                route.openapi_extra = {"requestBody": GRAPHQL_REQUEST_BODY}
                errors: dict[int | str, dict[str, Any]] = {
                    status: ERROR_RESPONSES[status] for status in POST_ERRORS
                }
                route.responses = {**route.responses, **errors}

    async def on_ws_connect(self, context: GraphQLContext) -> UnsetType | dict[str, object] | None:
        """``connection_init``: credentials in its payload decide who the connection is.

        Refused credentials close the socket with 4403; Strawberry itself closes
        with 4401 a socket that subscribes before ``connection_init``.
        """
        try:
            await context.on_connection_init(self.authenticators)
        except AuthenticationError as exc:
            log.info("graphql.connection_refused", reason=exc.message)
            raise ConnectionRejectionError({"message": exc.message}) from None
        # The singleton Strawberry calls UNSET: a plain connection_ack, with no payload.
        return UnsetType()

    def parse_json(self, data: str | bytes) -> Any:
        """A request body must be one JSON object (batches are not enabled).

        Strawberry reads fields off whatever JSON it got, so a string or a number
        would fail inside it as a 500.
        """
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict):
            raise HTTPException(400, "The request body must be a JSON object.")
        return parsed

    @overload
    async def run(
        self, request: Request, context: GraphQLContext = UNSET, root_value: None = UNSET
    ) -> Response: ...

    @overload
    async def run(
        self, request: WebSocket, context: GraphQLContext = UNSET, root_value: None = UNSET
    ) -> WebSocket: ...

    async def run(
        self,
        request: Request | WebSocket,
        context: GraphQLContext = UNSET,
        root_value: None = UNSET,
    ) -> Response | WebSocket:
        if isinstance(request, WebSocket):
            return await super().run(request, context, root_value)
        try:
            return await super().run(request, context, root_value)
        except HTTPException as exc:
            # Strawberry answers a body it cannot read in plain text; the API's
            # errors all have one JSON shape.
            code = STATUS_CODES.get(exc.status_code, "bad_request")
            payload = error_payload(code, exc.reason, request_id_of(request.scope))
            return JSONResponse(payload, status_code=exc.status_code)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        response = await super().render_graphql_ide(request)
        # The security-headers layer keeps a Content-Security-Policy the route set.
        response.headers["content-security-policy"] = IDE_CSP
        return response
