"""Put the stream payload models into the OpenAPI components.

Streamed responses are not ``response_model``s, so FastAPI would not list the
models their ``$ref``s point at.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from ..errors import ErrorBody
from .v1.events import DoneMessage, ErrorMessage, TokenMessage, UsageMessage
from .v1.openai_models import ChatCompletionChunk

STREAM_MODELS: tuple[type[BaseModel], ...] = (
    TokenMessage,
    UsageMessage,
    DoneMessage,
    ErrorMessage,
    ChatCompletionChunk,
    ErrorBody,
)


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
