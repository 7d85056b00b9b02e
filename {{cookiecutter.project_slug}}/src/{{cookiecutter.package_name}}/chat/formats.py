"""Response formats: plain text, any JSON object, or JSON valid against a schema.

The same shapes as OpenAI's ``response_format``, so the Chat Completions adapter
passes them through and the OpenAI-compatible provider forwards them as they
came. A schema is checked against its JSON Schema metaschema (``jsonschema``)
when the request arrives: a broken schema is the client's error, not the model's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool


def _valid_schema(schema: dict[str, Any]) -> dict[str, Any]:
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    return schema


JsonSchemaDocument = Annotated[dict[str, Any], AfterValidator(_valid_schema)]


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The schema's name.",
        examples=["weather"],
    )
    description: str | None = Field(
        default=None, max_length=1024, description="What the answer is for.", examples=[None]
    )
    # "schema" would shadow a BaseModel attribute; it is the field's wire name.
    json_schema: JsonSchemaDocument = Field(
        alias="schema",
        description="A JSON Schema the answer must be valid against.",
        examples=[{"type": "object", "properties": {"city": {"type": "string"}}}],
    )
    strict: StrictBool | None = Field(
        default=None, description="Ask the model to follow the schema exactly.", examples=[True]
    )


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"] = Field(description="Plain text.", examples=["text"])


class JsonObjectFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_object"] = Field(description="Any JSON object.", examples=["json_object"])


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_schema"] = Field(
        description="JSON valid against the schema.", examples=["json_schema"]
    )
    json_schema: JsonSchemaSpec = Field(description="The schema and its name.")


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]
