"""Function tools, the model's calls to them, and how a request may steer the choice.

OpenAI's shapes, so that the Chat Completions adapter passes them through and the
OpenAI-compatible provider forwards them as they came. A tool's ``parameters``
must be a valid JSON Schema (checked with ``jsonschema`` when the request
arrives, as for structured output).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from .formats import JsonSchemaDocument

MAX_TOOLS = 128
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME_PATTERN, description="The function's name.", examples=["get_weather"]
    )
    description: str | None = Field(
        default=None,
        max_length=4096,
        description="What the function does, for the model.",
        examples=["The weather in a city today."],
    )
    parameters: JsonSchemaDocument | None = Field(
        default=None,
        description="A JSON Schema of the function's arguments (an object).",
        examples=[{"type": "object", "properties": {"city": {"type": "string"}}}],
    )
    strict: StrictBool | None = Field(
        default=None,
        description="Ask for arguments that follow the schema exactly.",
        examples=[True],
    )


class Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = Field(description="Only function tools.", examples=["function"])
    function: FunctionSpec = Field(description="The function.")


class FunctionName(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME_PATTERN, description="A function of `tools`.", examples=["get_weather"]
    )


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = Field(description="Only function tools.", examples=["function"])
    function: FunctionName = Field(description="The function the model must call.")


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class CalledFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64, description="The function called.", examples=["get_weather"])
    arguments: str = Field(
        max_length=100_000,
        description="The arguments, as JSON text.",
        examples=['{"city": "Lisbon"}'],
    )


class ToolCall(BaseModel):
    """A call the model made, as an assistant turn carries it back."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128, description="The call's ID.", examples=["call_0"])
    type: Literal["function"] = Field(description="Only function calls.", examples=["function"])
    function: CalledFunction = Field(description="The function and its arguments.")
