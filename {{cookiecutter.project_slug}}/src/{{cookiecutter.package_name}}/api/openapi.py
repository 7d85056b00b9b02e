"""Streamed responses in the OpenAPI document.

Streamed responses are not ``response_model``s, so FastAPI would not list the
models their ``$ref``s point at: ``register_stream_models`` adds them. A
``text/event-stream`` response is described one event at a time
(``sse_event_schema``), as OpenAPI 3.2's ``itemSchema`` does and as tools that
read 3.1 documents (schemathesis among them) take its ``schema``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from ..chat.messages import DoneMessage, ErrorMessage, TokenMessage, ToolCallMessage, UsageMessage
from ..errors import ErrorBody, OpenAIErrorBody
from .v1.openai_models import ChatCompletionChunk

STREAM_MODELS: tuple[type[BaseModel], ...] = (
    TokenMessage,
    ToolCallMessage,
    UsageMessage,
    DoneMessage,
    ErrorMessage,
    ChatCompletionChunk,
    ErrorBody,
    OpenAIErrorBody,
)


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_text(schema: dict[str, Any]) -> dict[str, Any]:
    """A string that holds JSON matching ``schema`` (JSON Schema's content keywords)."""
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


def sse_event_schema(
    data: dict[str, Any], *, events: Sequence[str] = (), with_id: bool = False
) -> dict[str, Any]:
    """One Server-Sent Event: its ``data`` (``data``: the schema of the field's text),
    its ``event`` name (one of ``events``; unnamed events when empty) and its ``id``.
    """
    properties: dict[str, Any] = {"data": data}
    required = ["data"]
    if events:
        properties["event"] = {"type": "string", "enum": list(events)}
        required.append("event")
    if with_id:
        properties["id"] = {"type": "string"}
        required.append("id")
    return {"type": "object", "properties": properties, "required": required}


def register_stream_models(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in STREAM_MODELS:
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in model_schema.pop("$defs", {}).items():
                    components.setdefault(name, definition)
                components.setdefault(model.__name__, model_schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
