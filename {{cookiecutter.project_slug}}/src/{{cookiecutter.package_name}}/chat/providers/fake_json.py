"""What the fake model answers when JSON is asked for: data valid against the schema.

The subset of JSON Schema that structured-output clients send (OpenAI's strict
mode and Pydantic's schemas): objects with properties, ``required`` and
``additionalProperties``, arrays with ``minItems``/``maxItems``, ``enum`` and
``const``, ``anyOf``/``oneOf``/``allOf``, ``$defs`` with local ``$ref``, type
lists, and strings, numbers, integers, booleans and null with their bounds and
common formats. Deterministic: the same schema and words give the same data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

# Past this depth a recursive schema gets the smallest value it allows.
MAX_DEPTH = 8
FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "hostname": "example.com",
}
# How many characters of JSON text make one token of the answer.
TOKEN_CHARS = 4
MAX_ITEMS = 1000


def resolve(reference: str, root: dict[str, Any]) -> dict[str, Any]:
    """A local ``$ref`` (``#/$defs/Name``) inside the root schema; anything else is refused."""
    if not reference.startswith("#"):
        raise ValueError(f"only local $ref is supported, not {reference!r}")
    node: Any = root
    for part in reference.removeprefix("#").strip("/").split("/"):
        if not part:
            continue
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, dict):
        raise ValueError(f"$ref {reference!r} is not a schema")
    return node


class Generator:
    def __init__(self, root: dict[str, Any], words: list[str]) -> None:
        self.root = root
        self.words = words
        self.next_word = 0

    def word(self) -> str:
        word = self.words[self.next_word % len(self.words)]
        self.next_word += 1
        return word

    def value(self, schema: Any, depth: int = 0) -> Any:
        if schema is True or not isinstance(schema, dict):
            return self.word()
        if "$ref" in schema:
            return self.value(resolve(schema["$ref"], self.root), depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.value(self.simplest(schema[key]), depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                part = resolve(part["$ref"], self.root) if "$ref" in part else part
                for name, item in part.items():
                    if name in ("properties", "$defs") and isinstance(item, dict):
                        merged.setdefault(name, {}).update(item)
                    elif name == "required":
                        merged.setdefault("required", []).extend(item)
                    else:
                        merged.setdefault(name, item)
            return self.value(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((item for item in kind if item != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else None
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "string":
            return self.string(schema)
        if kind in ("integer", "number"):
            return self.number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.word()

    def simplest(self, options: list[Any]) -> Any:
        """The first option that is not null: a model fills in what it can."""
        for option in options:
            if not (isinstance(option, dict) and option.get("type") == "null"):
                return option
        return options[0]

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        if depth >= MAX_DEPTH:
            properties = {name: item for name, item in properties.items() if name in required}
        return {name: self.value(item, depth + 1) for name, item in properties.items()}

    def array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        # Bounded: a schema may ask for more items than any answer should hold.
        count = min(low if depth >= MAX_DEPTH else max(low, 1), MAX_ITEMS)
        if high is not None:
            count = min(count, int(high))
        prefix = schema.get("prefixItems") or []
        items = [self.value(prefix[index], depth + 1) for index in range(min(count, len(prefix)))]
        rest = schema.get("items", {})
        items.extend(self.value(rest, depth + 1) for _ in range(count - len(items)))
        return items

    def string(self, schema: dict[str, Any]) -> str:
        text = FORMATS.get(schema.get("format", ""), "")
        if not text:
            text = self.word()
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        while len(text) < low:
            text += " " + self.word()
        return text[: int(high)] if high is not None else text

    def number(self, schema: dict[str, Any], *, integer: bool) -> int | float:
        value: float = 0
        if "minimum" in schema:
            value = max(value, schema["minimum"]) if "maximum" not in schema else schema["minimum"]
        if "exclusiveMinimum" in schema:
            value = max(value, schema["exclusiveMinimum"] + (1 if integer else 0.5))
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        if "exclusiveMaximum" in schema:
            value = min(value, schema["exclusiveMaximum"] - (1 if integer else 0.5))
        if "multipleOf" in schema:
            step = schema["multipleOf"]
            value = math.ceil(value / step) * step
        return math.ceil(value) if integer else float(value)


def json_answer(schema: dict[str, Any] | None, words: list[str]) -> str:
    """The answer's JSON text: valid against ``schema``, or ``{"answer": ...}`` without one."""
    if schema is None:
        return json.dumps({"answer": " ".join(words)})
    return json.dumps(Generator(schema, words).value(schema), ensure_ascii=False)


def json_tokens(text: str) -> Iterator[str]:
    for start in range(0, len(text), TOKEN_CHARS):
        yield text[start : start + TOKEN_CHARS]
