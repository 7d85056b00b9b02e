"""Function tools through the core: the fake model calls them, the relay passes calls on."""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
import pytest
from jsonschema import Draft202012Validator

from conftest import openai_sdk
from fake_upstream import FakeUpstream, StreamScript
from sse_client import parse_events

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Today's weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ASK = [{"role": "user", "content": "please get_weather for Lisbon"}]


async def test_a_two_turn_tool_loop_with_the_sdk(live_server: Any) -> None:
    server = await live_server()
    async with openai_sdk(server) as client:
        first = await client.chat.completions.create(
            model="fake-echo-1", messages=cast(Any, ASK), tools=cast(Any, [WEATHER, TIME])
        )
        call = cast(Any, first.choices[0].message.tool_calls)[0]
        turns = [
            *ASK,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny and 21 degrees"},
        ]
        second = await client.chat.completions.create(
            model="fake-echo-1", messages=cast(Any, turns), tools=cast(Any, [WEATHER, TIME])
        )
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    Draft202012Validator(WEATHER["function"]["parameters"]).validate(arguments)
    # After the result, text that uses it.
    assert second.choices[0].finish_reason == "length"
    assert second.choices[0].message.tool_calls is None
    assert "sunny" in (second.choices[0].message.content or "")


async def test_tool_calls_stream_as_deltas(live_server: Any) -> None:
    server = await live_server()
    async with openai_sdk(server) as client:
        stream = await client.chat.completions.create(
            model="fake-echo-1",
            messages=cast(Any, [{"role": "user", "content": "anything"}]),
            tools=cast(Any, [WEATHER]),
            tool_choice="required",
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    deltas = [
        call
        for chunk in chunks
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or []
    ]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    assert all(delta.id is None for delta in deltas[1:])
    assert len(deltas) > 2
    arguments = "".join((delta.function.arguments or "") for delta in deltas if delta.function)
    Draft202012Validator(WEATHER["function"]["parameters"]).validate(json.loads(arguments))
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, ["get_time"]),
        ({"tool_choice": "required"}, ["get_weather"]),
        ({"tool_choice": "none"}, []),
        ({}, ["get_weather"]),
        (
            {"messages": [{"role": "user", "content": "get_time and get_weather"}]},
            ["get_weather", "get_time"],
        ),
        (
            {
                "messages": [{"role": "user", "content": "get_time and get_weather"}],
                "parallel_tool_calls": False,
            },
            ["get_weather"],
        ),
        ({"messages": [{"role": "user", "content": "no tool named"}]}, []),
    ],
)
async def test_which_tools_the_fake_model_calls(
    client: httpx.AsyncClient, fields: dict[str, Any], expected: list[str]
) -> None:
    body = {"model": "fake-echo-1", "messages": ASK, "tools": [WEATHER, TIME], **fields}
    response = await client.post("/api/v1/chat/completions", json=body)
    message = response.json()["choices"][0]["message"]
    called = [call["function"]["name"] for call in message.get("tool_calls") or []]
    assert called == expected


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {"tools": [{**WEATHER, "function": {"name": "f", "parameters": {"type": 3}}}]},
            "tools.0.function.parameters",
        ),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}}, ""),
        ({"tool_choice": "required"}, ""),
        ({"tools": [WEATHER, WEATHER]}, ""),
        (
            {
                "messages": [
                    *ASK,
                    {"role": "tool", "tool_call_id": "call_nobody_made", "content": "x"},
                ]
            },
            "",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
        ({"messages": [{"role": "assistant", "content": None}]}, "messages.0"),
    ],
)
async def test_malformed_tools_are_a_400_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    body = {"model": "fake-echo-1", "messages": ASK, **fields}
    response = await client.post("/api/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"] or "").startswith(param)
    assert error["message"]


async def test_the_native_stream_has_tool_call_events(client: httpx.AsyncClient) -> None:
    body = {"messages": ASK, "tools": [WEATHER], "max_tokens": 100}
    response = await client.post("/api/v1/chat/stream", json=body)
    events = parse_events(response.text)
    calls = [json.loads(event.data) for event in events if event.event == "tool_call"]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    arguments = json.loads("".join(call["arguments"] for call in calls))
    assert set(arguments) == {"city", "unit"}
    assert json.loads(events[-1].data)["finish_reason"] == "tool_calls"


async def test_the_relay_passes_tool_calls_on_unchanged(client_factory: Any) -> None:
    fragments = ['{"ci', 'ty": "Lis', 'bon"}']
    deltas = [
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_up",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        *({"tool_calls": [{"index": 0, "function": {"arguments": part}}]} for part in fragments),
    ]
    with FakeUpstream() as upstream:
        upstream.default = StreamScript(tokens=deltas, finish_reason="tool_calls")
        settings = {
            "llm_provider": "openai",
            "llm_base_url": upstream.base_url,
            "llm_model": "gpt-test",
            "llm_max_retries": 0,
        }
        earlier = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                }
            ],
        }
        messages = [*ASK, earlier, {"role": "tool", "tool_call_id": "call_0", "content": "noon"}]
        body = {
            "model": "gpt-test",
            "messages": messages,
            "tools": [WEATHER, TIME],
            "tool_choice": "auto",
            "parallel_tool_calls": False,
            "stream": True,
        }
        async with client_factory(**settings) as http:
            streamed = await http.post("/api/v1/chat/completions", json=body)
            whole = await http.post("/api/v1/chat/completions", json={**body, "stream": False})
        sent = upstream.requests[0].body
    chunks = [json.loads(event.data) for event in parse_events(streamed.text)[:-1]]
    pieces = [
        call
        for chunk in chunks
        if chunk["choices"]
        for call in chunk["choices"][0]["delta"].get("tool_calls") or []
    ]
    assert [piece["function"]["arguments"] for piece in pieces] == ["", *fragments]
    assert (pieces[0]["id"], pieces[0]["function"]["name"]) == ("call_up", "get_weather")
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    message = whole.json()["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": "".join(fragments),
    }
    assert sent["tools"] == [WEATHER, TIME]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("auto", False)
    assert sent["messages"][1] == earlier
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_0", "content": "noon"}
