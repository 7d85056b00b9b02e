"""The fake model's JSON answers are valid against the schemas structured-output clients send."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from {{cookiecutter.package_name}}.chat.providers.fake_json import json_answer, json_tokens


class Address(BaseModel):
    street: str
    city: str = Field(min_length=12)


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=130)
    score: float = Field(gt=0.5, multiple_of=0.25)
    tags: list[str] = Field(min_length=2, max_length=3)
    home: Address | None
    friends: list[Person]
    status: str = Field(json_schema_extra={"enum": ["active", "gone"]})


SCHEMAS: dict[str, dict[str, Any]] = {
    "object": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
        "additionalProperties": False,
    },
    "enum-and-const": {
        "type": "object",
        "properties": {"unit": {"enum": ["c", "f"]}, "v": {"const": 2}},
        "required": ["unit", "v"],
    },
    "array-bounds": {"type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 4},
    "any-of-with-null": {"anyOf": [{"type": "null"}, {"type": "number", "maximum": -3}]},
    "type-list": {"type": ["null", "string"], "format": "date-time"},
    "defs-and-ref": {
        "$defs": {"leaf": {"type": "string", "format": "email"}},
        "type": "object",
        "properties": {"to": {"$ref": "#/$defs/leaf"}},
        "required": ["to"],
    },
    "all-of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "string", "maxLength": 2}}, "required": ["b"]},
        ]
    },
    "exclusive-bounds": {"type": "number", "exclusiveMinimum": 10, "exclusiveMaximum": 11},
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_answers_are_valid_against_the_schema(name: str) -> None:
    schema = SCHEMAS[name]
    answer = json.loads(json_answer(schema, ["alpha", "beta"]))
    Draft202012Validator(schema).validate(answer)


def test_a_pydantic_schema_with_refs_and_recursion() -> None:
    schema = Person.model_json_schema()
    answer = json.loads(json_answer(schema, ["alpha", "beta"]))
    Draft202012Validator(schema).validate(answer)
    person = Person.model_validate(answer)
    assert person.friends and len(person.tags) == 2


def test_json_object_without_a_schema_and_tokens_that_rebuild_the_text() -> None:
    text = json_answer(None, ["alpha", "beta"])
    assert json.loads(text) == {"answer": "alpha beta"}
    assert "".join(json_tokens(text)) == text
    assert max(len(token) for token in json_tokens(text)) <= 4
