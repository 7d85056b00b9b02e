"""Item 7b, property-based: the request models and the SSE framing, on any input.

Hypothesis (60 examples per property, derandomized, no example database) drives the
rendered package's own code, imported from its ``src`` (the models are the core's, the
same in every variant, so the default variant is used):

* ``ChatRequest`` and the OpenAI ``ChatCompletionRequest``: valid inputs round-trip
  through JSON; arbitrary or out-of-range inputs raise ``ValidationError`` and never
  another exception; a valid OpenAI request always converts to a core request
  (``to_core``), which is what the route does next;
* ``sse_frame``: any JSON payload, framed, parses back (WHATWG rules, and the
  project's own test parser) to the same event, id and payload;
* the hand-built wire JSON (``event_json``, ``OpenAIChunks``) is valid JSON that
  matches the documented models for any token text and model name.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .clients import parse_sse
from .conftest import Figures
from .harness import DEFAULT, Project, variant_params

pytestmark = pytest.mark.parametrize("variant", variant_params("properties", DEFAULT))

EXAMPLES = 60
SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def pkg(rel_project: Project) -> Iterator[SimpleNamespace]:
    """The rendered package's models and framing, imported from its src/ for this test only."""
    name = rel_project.package
    src = str(rel_project.src)

    def forget() -> None:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]

    forget()
    sys.path.insert(0, src)
    try:
        models = importlib.import_module(f"{name}.chat.models")
        yield SimpleNamespace(
            models=models,
            openai=importlib.import_module(f"{name}.api.v1.openai_models"),
            compat=importlib.import_module(f"{name}.api.v1.openai_compat"),
            events=importlib.import_module(f"{name}.chat.messages"),
            sse=importlib.import_module(f"{name}.api.sse"),
            ValidationError=importlib.import_module("pydantic").ValidationError,
            sse_client=rel_project.import_file("tests/sse_client.py", "reliability_sse_client"),
        )
    finally:
        sys.path.remove(src)
        forget()


# --------------------------------------------------------------------------- strategies

ROLES = ("system", "user", "assistant")
# Any text, lone surrogates included: JSON can carry them as \ud800 escapes.
ANY_TEXT = st.text(
    alphabet=st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    max_size=40,
)
CLEAN_TEXT = st.text(max_size=60)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
# Lengths around the 100,000-character limit, drawn as sizes (cheap), not as text.
LENGTHS = st.sampled_from([0, 1, 7, 50_001, 99_999, 100_000])


def long_text(length: int) -> str:
    return ("lorem ipsum " * (length // 12 + 1))[:length]


@st.composite
def valid_chat(draw: st.DrawFn) -> dict[str, Any]:
    messages = draw(
        st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(ROLES), "content": CLEAN_TEXT | LENGTHS.map(long_text)}
            ),
            min_size=1,
            max_size=5,
        )
    )
    body: dict[str, Any] = {"messages": messages}
    optional = {
        "model": st.text(max_size=200),
        "max_tokens": st.integers(1, 32_768),
        "temperature": st.floats(0, 2),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


@st.composite
def invalid_chat(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with exactly one thing broken."""
    body = draw(valid_chat())
    breakage = draw(
        st.sampled_from(
            [
                "no_messages",
                "empty",
                "too_many",
                "too_long",
                "role",
                "max_tokens",
                "temperature",
                "extra",
                "content_type",
            ]
        )
    )
    if breakage == "no_messages":
        del body["messages"]
    elif breakage == "empty":
        body["messages"] = []
    elif breakage == "too_many":
        body["messages"] = [{"role": "user", "content": "x"}] * 257
    elif breakage == "too_long":
        body["messages"][0]["content"] = long_text(100_001)
    elif breakage == "role":
        body["messages"][0]["role"] = draw(st.text().filter(lambda r: r not in ROLES))
    elif breakage == "max_tokens":
        body["max_tokens"] = draw(st.integers(max_value=0) | st.integers(min_value=32_769))
    elif breakage == "temperature":
        body["temperature"] = draw(st.floats(max_value=-0.001) | st.floats(min_value=2.001))
    elif breakage == "extra":
        body[draw(st.sampled_from(["stop", "n", "stream", "foo"]))] = 1
    else:
        body["messages"][0]["content"] = draw(st.integers() | st.lists(st.integers(), min_size=1))
    return body


@st.composite
def valid_openai(draw: st.DrawFn) -> dict[str, Any]:
    part = st.fixed_dictionaries(
        {"type": st.just("text"), "text": CLEAN_TEXT | LENGTHS.map(long_text)}
    )
    # A message's text parts add up to one content: together within the limit.
    parts = st.lists(part, max_size=3).filter(
        lambda items: sum(len(item["text"]) for item in items) <= 100_000
    )
    content = CLEAN_TEXT | LENGTHS.map(long_text) | parts
    messages = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["system", "developer", "user", "assistant"]),
                    "content": content,
                }
            ),
            min_size=1,
            max_size=4,
        )
    )
    body: dict[str, Any] = {"model": draw(st.text(max_size=200)), "messages": messages}
    optional = {
        "max_tokens": st.integers(1, 32_768),
        "max_completion_tokens": st.integers(1, 32_768),
        "temperature": st.floats(0, 2),
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "user": st.text(max_size=256),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


def as_json(body: Any, ensure_ascii: bool = True) -> str:
    return json.dumps(body, ensure_ascii=ensure_ascii, separators=(",", ":"))


def as_route(model: Any, body: Any) -> Any:
    """Validate as a FastAPI route does: the body's JSON is decoded first, then validated."""
    return model.model_validate(json.loads(as_json(body)))


class Tally:
    """How many examples one property ran."""

    def __init__(self) -> None:
        self.examples = 0


def run_property(name: str, test: Any, problems: list[str]) -> None:
    """Run one property; its (shrunk, reproducible) failure becomes a problem."""
    try:
        test()
    except Exception as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        problems.append(f"{name}: {type(exc).__name__}: {' | '.join(lines[:6])}"[:800])


# --------------------------------------------------------------------------- properties


@pytest.mark.timeout(240)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
def test_request_models_and_sse_framing(
    pkg: SimpleNamespace, figures: Figures, tmp_path: Path, variant: Any
) -> None:
    ChatRequest = pkg.models.ChatRequest
    ChatCompletionRequest = pkg.openai.ChatCompletionRequest
    ValidationError = pkg.ValidationError
    problems: list[str] = []
    tallies: dict[str, Tally] = {}

    def tally(name: str) -> Tally:
        return tallies.setdefault(name, Tally())

    @SETTINGS
    @given(valid_chat())
    def chat_round_trip(body: dict[str, Any]) -> None:
        t = tally("ChatRequest: valid input round-trips")
        t.examples += 1
        model = as_route(ChatRequest, body)
        assert model == ChatRequest.model_validate_json(as_json(body))
        assert model.model_dump(mode="json", exclude_unset=True) == body
        assert ChatRequest.model_validate_json(model.model_dump_json()) == model

    @SETTINGS
    @given(invalid_chat())
    def chat_invalid(body: dict[str, Any]) -> None:
        t = tally("ChatRequest: invalid input raises ValidationError")
        t.examples += 1
        with pytest.raises(ValidationError):
            as_route(ChatRequest, body)

    @SETTINGS
    @given(JSON_VALUES)
    def chat_anything(value: Any) -> None:
        t = tally("ChatRequest/ChatCompletionRequest: any JSON raises nothing but ValidationError")
        t.examples += 1
        for model in (ChatRequest, ChatCompletionRequest):
            for document in (
                value,
                {"messages": value},
                {"model": "fake-echo-1", "messages": [value]},
            ):
                for validate in (model.model_validate_json, None):
                    try:
                        if validate is None:
                            as_route(model, document)
                        else:
                            validate(as_json(document))
                    except ValidationError:
                        pass

    @SETTINGS
    @given(valid_openai())
    def openai_round_trip(body: dict[str, Any]) -> None:
        t = tally("ChatCompletionRequest: valid input round-trips")
        t.examples += 1
        model = as_route(ChatCompletionRequest, body)
        assert ChatCompletionRequest.model_validate_json(model.model_dump_json()) == model

    @SETTINGS
    @given(valid_openai())
    def openai_to_core(body: dict[str, Any]) -> None:
        t = tally("ChatCompletionRequest: every valid request converts to_core()")
        t.examples += 1
        request = as_route(ChatCompletionRequest, body)
        core = request.to_core()
        assert len(core.messages) == len(request.messages)

    @SETTINGS
    @given(
        st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "system"]), "content": ANY_TEXT}
            ),
            min_size=1,
            max_size=3,
        )
    )
    def openai_unicode_to_core(messages: list[dict[str, Any]]) -> None:
        t = tally("ChatCompletionRequest: any unicode (lone surrogates too) is refused or converts")
        t.examples += 1
        try:
            request = as_route(
                ChatCompletionRequest, {"model": "fake-echo-1", "messages": messages}
            )
        except ValidationError:
            return
        request.to_core()

    @SETTINGS
    @given(
        payload=JSON_VALUES,
        event=st.none() | st.sampled_from(["token", "usage", "done", "error"]),
        event_id=st.none() | st.integers(0, 2**53),
        ensure_ascii=st.booleans(),
    )
    def sse_round_trip(
        payload: Any, event: str | None, event_id: int | None, ensure_ascii: bool
    ) -> None:
        t = tally("sse_frame: any JSON payload round-trips through an SSE parser")
        t.examples += 1
        if not ensure_ascii:
            try:
                as_json(payload, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                ensure_ascii = True  # lone surrogates only travel escaped
        data = as_json(payload, ensure_ascii)
        frame = pkg.sse.sse_frame(data, event=event, id=event_id)
        text = frame.decode("utf-8")
        for parsed in (parse_sse(text), pkg.sse_client.parse_events(text)):
            assert len(parsed) == 1, parsed
            assert parsed[0].event == (event or "message")
            assert parsed[0].id == (None if event_id is None else str(event_id))
            assert json.loads(parsed[0].data) == payload

    @SETTINGS
    @given(index=st.integers(0, 2**31), text=ANY_TEXT)
    def token_json(index: int, text: str) -> None:
        t = tally("event_json: any token text gives JSON matching TokenMessage")
        t.examples += 1
        raw = pkg.events.event_json(pkg.models.TokenEvent(index=index, text=text), "rid")
        assert json.loads(raw) == {"type": "token", "index": index, "text": text}
        if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            message = pkg.events.TokenMessage.model_validate_json(raw)
            assert message.text == text

    @SETTINGS
    @given(tokens=st.lists(ANY_TEXT, max_size=5), model_name=ANY_TEXT, usage=st.booleans())
    def openai_chunk_frames(tokens: list[str], model_name: str, usage: bool) -> None:
        t = tally("OpenAIChunks: every frame is an SSE event of valid chunk JSON, then [DONE]")
        t.examples += 1
        models = pkg.models

        async def events() -> Any:
            for i, token in enumerate(tokens):
                yield models.TokenEvent(index=i, text=token)
            yield models.UsageEvent(prompt_tokens=1, completion_tokens=len(tokens))
            yield models.DoneEvent(finish_reason="length")

        async def collect() -> list[bytes]:
            chunks = pkg.compat.OpenAIChunks(
                completion_id="chatcmpl-x",
                model=model_name,
                include_usage=usage,
                request_id="rid",
            )
            frames = [chunks.preamble]
            frames += [chunks.format(event) async for event in events()]
            return [*frames, pkg.compat.DONE_FRAME]

        frames = asyncio.run(collect())
        parsed = parse_sse(b"".join(frames).decode("utf-8"))
        assert parsed[-1].data == "[DONE]"
        texts = []
        for event in parsed[:-1]:
            chunk = json.loads(event.data)
            assert chunk["model"] == model_name
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                texts.append(chunk["choices"][0]["delta"]["content"])
        assert texts == [token for token in tokens if token]

    properties = [
        chat_round_trip,
        chat_invalid,
        chat_anything,
        openai_round_trip,
        openai_to_core,
        openai_unicode_to_core,
        sse_round_trip,
        token_json,
        openai_chunk_frames,
    ]
    for prop in properties:
        run_property(prop.__name__, prop, problems)

    figures.requests = sum(t.examples for t in tallies.values())
    figures.faults = sum(
        t.examples for name, t in tallies.items() if "invalid" in name or "any" in name
    )
    figures.details = {
        "properties": len(properties),
        "examples_per_property": {name: t.examples for name, t in tallies.items()},
        "max_examples": EXAMPLES,
        "derandomize": True,
    }
    figures.check(problems, limit=20)
