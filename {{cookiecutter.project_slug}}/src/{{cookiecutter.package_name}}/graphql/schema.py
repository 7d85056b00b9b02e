"""The operations: two queries, the ``chat`` mutation and the ``chatStream`` subscription.

Each root field is counted against the caller's rate limit as ``graphql:<field>``
(``RATE_LIMIT_ROUTES`` can give one its own quota, e.g.
``graphql:chat=10/minute``); ``chat`` and ``chatStream`` also hold one of the
caller's concurrent-stream slots while they generate, like their REST twins.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import strawberry
import structlog
from graphql import GraphQLError
from pydantic import ValidationError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, Info

from .. import __version__
from ..chat.models import ChatRequest
from .context import GraphQLContext
from .errors import INTERNAL_ERROR, InvalidInput, describe_validation, stamp
from .extensions import schema_extensions
from .settings import GraphQLSettings
from .types import (
    ChatCompletion,
    ChatInput,
    ChatStreamEvent,
    ModelType,
    ServiceInfo,
    stream_event,
)

TRANSPORT = "graphql"

log = structlog.get_logger("graphql")

Context = Info[GraphQLContext, None]


def core_request(chat_input: ChatInput) -> ChatRequest:
    try:
        return chat_input.to_pydantic()
    except ValidationError as exc:
        raise InvalidInput(describe_validation(exc)) from None


async def service_info(info: Context) -> ServiceInfo:
    context = info.context
    await context.charge("graphql:serviceInfo")
    settings = context.settings
    return ServiceInfo(
        name=settings.app_name, version=__version__, environment=settings.environment
    )


async def models(info: Context) -> list[ModelType]:
    context = info.context
    await context.charge("graphql:models")
    settings = context.settings
    return [ModelType(id=name, created=0, owned_by=settings.app_name) for name in settings.models]


async def chat(info: Context, input: ChatInput) -> ChatCompletion:
    context = info.context
    request = core_request(input)
    await context.charge("graphql:chat")
    async with context.stream_slot():
        completion = await context.unless_disconnected(
            context.service.complete(request, transport=TRANSPORT)
        )
    return ChatCompletion.from_core(completion)


async def chat_stream(info: Context, input: ChatInput) -> AsyncGenerator[ChatStreamEvent, None]:
    context = info.context
    request = core_request(input)
    await context.charge("graphql:chatStream")
    generation = await context.service.stream(request, transport=TRANSPORT)
    events = generation.rest
    # Closed however the subscription ends, unsubscribe and disconnect included:
    # that stops the generation.
    async with context.stream_slot(), aclosing(events):
        async for event in events:
            yield stream_event(event, context.request_id)


# Resolvers are passed as ``resolver=``: the decorator form with arguments is untyped.
@strawberry.type
class Query:
    service_info: ServiceInfo = strawberry.field(
        resolver=service_info, description="The name, version and environment of this service."
    )
    models: list[ModelType] = strawberry.field(
        resolver=models, description="The models this service offers."
    )


@strawberry.type
class Mutation:
    chat: ChatCompletion = strawberry.mutation(
        resolver=chat, description="Generate a whole answer and return it at once."
    )


@strawberry.type
class Subscription:
    chat_stream: AsyncGenerator[ChatStreamEvent, None] = strawberry.subscription(
        resolver=chat_stream,
        description=(
            "Stream an answer: TokenEvent for each token, then UsageEvent, then DoneEvent; "
            "a failure is an ErrorEvent before DoneEvent. Unsubscribing stops the generation."
        ),
    )


class ServiceSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Give every error its REST code and the request ID; log only the unexpected ones.

        Runs before ``MaskErrors``, so a masked error keeps its code.
        """
        context = execution_context.context if execution_context is not None else None
        request_id = context.request_id if isinstance(context, GraphQLContext) else ""
        for error in errors:
            code = stamp(error, request_id)
            if code == INTERNAL_ERROR:
                cause = error.original_error or error
                log.error("graphql.unexpected_error", path=error.path, exc_info=cause)
            else:
                log.debug("graphql.error", code=code, message=error.message)


def build_schema(settings: GraphQLSettings) -> ServiceSchema:
    return ServiceSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=schema_extensions(settings),
        # "Did you mean ...?" would tell a stranger the field names introspection hides.
        config=StrawberryConfig(disable_field_suggestions=settings.is_production),
    )


def schema_sdl() -> str:
    """The schema in SDL, as committed in ``schema.graphql``; the same in every environment."""
    schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
    return schema.as_str() + "\n"
