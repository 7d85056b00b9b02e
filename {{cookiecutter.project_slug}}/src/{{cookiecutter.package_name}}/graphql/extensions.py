"""What protects the schema: document limits, and no internals leaking in production.

Strawberry's own extensions bound the depth, the aliases and the tokens of a
document; here are the few it lacks in the form this service needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from graphql import GraphQLError, ValidationContext, ValidationRule
from starlette.websockets import WebSocket
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.types.graphql import OperationType

from .errors import INTERNAL_MESSAGE, is_internal
from .settings import GraphQLSettings


def document_size_rule(max_bytes: int) -> type[ValidationRule]:
    class DocumentSizeRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            location = context.document.loc
            size = len(location.source.body.encode()) if location is not None else 0
            if size > max_bytes:
                self.report_error(
                    GraphQLError(
                        f"The document is {size} bytes; at most {max_bytes} are allowed. "
                        "Send long texts as variables.",
                        extensions={"code": "request_too_large"},
                    )
                )

    return DocumentSizeRule


class MaxDocumentSize(AddValidationRules):
    """Refuse documents over ``max_bytes``.

    A rule on the parsed document: Strawberry has no hook that can refuse before
    parsing on every transport, and ``MaxTokensLimiter`` already stops the parser
    early, so what is left to bound is mostly long string literals.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__([document_size_rule(max_bytes)])


class MaskInternalErrors(MaskErrors):
    """``MaskErrors`` that keeps ``extensions`` (code, request ID) on the masked error."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = error.extensions
        return masked


class SubscriptionsOverWebSocketOnly(SchemaExtension):
    """An HTTP request may not carry a subscription.

    Strawberry accepts one in a POST for its HTTP streaming protocols; with those
    off it would run the subscription as if it were a query, and fail.
    """

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        if not isinstance(getattr(execution.context, "request", None), WebSocket):
            execution.allowed_operations = set(execution.allowed_operations) - {
                OperationType.SUBSCRIPTION
            }
        yield


ExtensionFactory = Callable[[], SchemaExtension]


def schema_extensions(settings: GraphQLSettings) -> list[ExtensionFactory]:
    """Factories, not instances: Strawberry makes a fresh extension per operation from each."""
    extensions: list[ExtensionFactory] = [
        SubscriptionsOverWebSocketOnly,
        partial(MaxTokensLimiter, max_token_count=settings.graphql_max_tokens),
        partial(MaxDocumentSize, max_bytes=settings.graphql_max_document_bytes),
        partial(QueryDepthLimiter, max_depth=settings.graphql_max_depth),
        partial(MaxAliasesLimiter, max_alias_count=settings.graphql_max_aliases),
    ]
    if settings.is_production:
        extensions += [
            DisableIntrospection,
            partial(
                MaskInternalErrors, should_mask_error=is_internal, error_message=INTERNAL_MESSAGE
            ),
        ]
    return extensions
