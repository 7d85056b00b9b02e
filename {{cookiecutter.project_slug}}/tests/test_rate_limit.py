"""Request rate limits: token buckets, headers, client addresses, routes, WebSockets."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets
from starlette.types import Message, Scope
from websockets.exceptions import InvalidStatus

from {{cookiecutter.package_name}}.main import create_app
from {{cookiecutter.package_name}}.middleware.rate_limit import RateLimitMiddleware
from {{cookiecutter.package_name}}.ratelimit.base import Quota
from {{cookiecutter.package_name}}.ratelimit.policy import RateLimitPolicy
from {{cookiecutter.package_name}}.ratelimit.token_bucket import InMemoryRateLimiter, TokenBucketStore

# isort: split
# Test helpers come after the package, whatever the package is named.
from conftest import SettingsFactory, running
from stack_helpers import (
    assert_error_shape,
    assert_security_headers,
    chat_ws_scope,
    http_client,
    serving,
    without_auth_layers,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def parse_ratelimit(value: str) -> dict[str, str]:
    name, *params = value.split(";")
    return {"name": name.strip('"'), **dict(param.split("=") for param in params)}


# --- through the whole stack -------------------------------------------------
# The per-IP tier is for anonymous callers, so those tests leave out any
# authentication layer a feature adds (without_auth_layers).


async def test_n_then_429_with_headers(make_settings: SettingsFactory) -> None:
    async with running(
        without_auth_layers(create_app(make_settings(rate_limit_ip="3/hour")))
    ) as http:
        responses = [await http.get("/api/v1/models") for _ in range(4)]
    *allowed, refused = responses
    for remaining, response in zip((2, 1, 0), allowed, strict=True):
        assert response.status_code == 200
        assert "retry-after" not in response.headers
        assert response.headers["ratelimit-policy"] == '"ip";q=3;w=3600'
        assert parse_ratelimit(response.headers["ratelimit"])["r"] == str(remaining)
    body = assert_error_shape(refused, 429, "rate_limited")
    assert_security_headers(refused)
    retry_after = int(refused.headers["retry-after"])
    assert retry_after >= 1
    assert f"{retry_after} seconds" in body["message"]
    state = parse_ratelimit(refused.headers["ratelimit"])
    assert state["name"] == "ip"
    assert state["r"] == "0"
    assert int(state["t"]) >= retry_after
    assert refused.headers["ratelimit-policy"] == '"ip";q=3;w=3600'


async def test_health_metrics_and_docs_are_never_limited(make_settings: SettingsFactory) -> None:
    async with running(
        without_auth_layers(create_app(make_settings(rate_limit_ip="1/hour")))
    ) as http:
        for path in ("/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json") * 3:
            response = await http.get(path)
            assert response.status_code == 200, path
            assert "ratelimit" not in response.headers
        assert (await http.get("/api/v1/models")).status_code == 200
        assert (await http.get("/api/v1/models")).status_code == 429


async def test_disabled_means_no_limits_and_no_headers(make_settings: SettingsFactory) -> None:
    settings = make_settings(rate_limit_enabled=False, rate_limit_ip="1/hour")
    async with running(create_app(settings)) as http:
        responses = [await http.get("/api/v1/models") for _ in range(3)]
    assert [response.status_code for response in responses] == [200] * 3
    assert "ratelimit" not in responses[-1].headers


async def test_100_concurrent_requests_at_limit_10(live_server: Any) -> None:
    server = await live_server(rate_limit_ip="10/hour", rate_limit_user="10/hour")
    limits = httpx.Limits(max_connections=100)
    async with http_client(server.url, headers=server.headers, limits=limits) as http:
        responses = await asyncio.gather(*(http.get("/api/v1/models") for _ in range(100)))
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 90


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    make_settings: SettingsFactory,
) -> None:
    async with running(
        without_auth_layers(create_app(make_settings(rate_limit_ip="1/hour")))
    ) as http:
        first = await http.get("/api/v1/models", headers={"X-Forwarded-For": "203.0.113.1"})
        second = await http.get("/api/v1/models", headers={"X-Forwarded-For": "203.0.113.2"})
    assert first.status_code == 200
    # Same peer (127.0.0.1), so the same bucket whatever the header claims.
    assert second.status_code == 429


async def test_forwarded_for_from_a_trusted_proxy_is_honoured(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(rate_limit_ip="1/hour", trusted_proxies="127.0.0.1,10.0.0.0/8")
    async with running(without_auth_layers(create_app(settings))) as http:

        async def status(forwarded_for: str) -> int:
            headers = {"X-Forwarded-For": forwarded_for}
            return (await http.get("/api/v1/models", headers=headers)).status_code

        assert await status("203.0.113.1") == 200
        assert await status("203.0.113.2") == 200
        assert await status("203.0.113.1") == 429
        # The right-most untrusted hop counts; what the client wrote left of it does not.
        assert await status("198.51.100.7, 203.0.113.2, 10.1.2.3") == 429
        assert await status("192.0.2.99, 10.0.0.1") == 200
        # IPv6 clients are grouped by /64.
        assert await status("2001:db8:1:2::1") == 200
        assert await status("2001:db8:1:2:ffff::9") == 429
        assert await status("2001:db8:1:3::1") == 200


async def test_route_override_has_its_own_limit(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        rate_limit_ip="100/hour", rate_limit_routes="/api/v1/chat/completions=1/hour"
    )
    body = {"model": "fake-echo-1", "messages": [{"role": "user", "content": "hi"}]}
    async with running(without_auth_layers(create_app(settings))) as http:
        first = await http.post("/api/v1/chat/completions", json=body)
        second = await http.post("/api/v1/chat/completions", json=body)
        other = await http.get("/api/v1/models")
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"route";q=1;w=3600'
    assert_error_shape(second, 429, "rate_limited")
    assert other.status_code == 200
    assert other.headers["ratelimit-policy"] == '"ip";q=100;w=3600'


async def test_bucket_store_stays_bounded_through_the_stack(
    make_settings: SettingsFactory,
) -> None:
    # The in-memory backend behind the rate-limit middleware, whatever backend
    # this project was generated with.
    settings = make_settings(trusted_proxies="127.0.0.1", rate_limit_max_callers=100)
    limiter = InMemoryRateLimiter(max_keys=settings.rate_limit_max_callers)

    async def ok(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    policy = RateLimitPolicy.from_settings(settings, limiter)
    app = RateLimitMiddleware(ok, policy=policy, api_prefix="/api/v1")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for index in range(250):
            headers = {"X-Forwarded-For": f"198.51.{index // 250}.{index % 250}"}
            assert (await http.get("/api/v1/models", headers=headers)).status_code == 200
    assert len(limiter.buckets) == 100


async def test_websocket_handshake_is_rate_limited(make_settings: SettingsFactory) -> None:
    app = without_auth_layers(create_app(make_settings(rate_limit_ip="1/hour")))
    async with serving(app) as server:
        url = f"{server.ws_url}/api/v1/chat/ws"
        async with websockets.connect(url, proxy=None) as ws:
            assert ws.response is not None
            assert ws.response.headers["ratelimit-policy"] == '"ip";q=1;w=3600'
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url, proxy=None):
                pass
    response = refused.value.response
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-content-type-options"] == "nosniff"
    body = json.loads(response.body or b"")
    assert body["code"] == "rate_limited"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_websocket_without_denial_extension_is_closed_with_1008(
    make_settings: SettingsFactory,
) -> None:
    """A server without the denial-response extension gets a close before accept."""
    app = without_auth_layers(create_app(make_settings(rate_limit_ip="1/hour")))
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async with app.router.lifespan_context(app):
        await app(chat_ws_scope(), receive, send)  # uses the one token
        sent.clear()
        await app(chat_ws_scope(), receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": sent[0]["reason"]}]
    assert "Too many requests" in sent[0]["reason"]


# --- the backend and the policy on their own ---------------------------------


def test_token_bucket_refills_continuously() -> None:
    clock = FakeClock()
    store = TokenBucketStore(max_keys=10, clock=clock)
    quota = Quota.parse("60/minute")
    decisions = [store.take("k", quota) for _ in range(61)]
    assert [d.allowed for d in decisions] == [True] * 60 + [False]
    assert decisions[59].remaining == 0
    assert decisions[-1].retry_after == pytest.approx(1.0)
    assert decisions[-1].retry_after_seconds == 1
    assert decisions[-1].reset_after == pytest.approx(60.0)
    clock.now += 0.5
    assert not store.take("k", quota).allowed
    clock.now += 0.5
    assert store.take("k", quota).allowed
    clock.now += 3600
    full = store.take("k", quota)
    assert full.remaining == 59
    assert full.reset_after == pytest.approx(1.0)


def test_cost_and_retry_after_seconds_are_at_least_one() -> None:
    store = TokenBucketStore(max_keys=10, clock=FakeClock())
    quota = Quota(limit=1000, window=1)
    assert store.take("k", quota, cost=1000).allowed
    refused = store.take("k", quota)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.001)
    assert refused.retry_after_seconds == 1


async def test_concurrent_hits_are_atomic() -> None:
    limiter = InMemoryRateLimiter(max_keys=100)
    quota = Quota.parse("25/hour")
    decisions = await asyncio.gather(*(limiter.hit("same", quota) for _ in range(500)))
    assert sum(d.allowed for d in decisions) == 25


def test_store_of_100k_callers_stays_bounded() -> None:
    store = TokenBucketStore(max_keys=100_000)
    quota = Quota.parse("60/minute")
    started = time.perf_counter()
    for index in range(150_000):
        store.take(f"ip:{index}", quota)
    assert len(store) == 100_000
    # The most recent callers are the ones kept.
    assert store.take("ip:149999", quota).remaining == 58
    assert store.take("ip:0", quota).remaining == 59
    assert time.perf_counter() - started < 5


def test_sweep_drops_only_full_buckets() -> None:
    clock = FakeClock()
    store = TokenBucketStore(max_keys=1000, clock=clock)
    quota = Quota.parse("10/minute")
    for index in range(10):
        store.take(f"old:{index}", quota)
    clock.now += 30
    store.take("busy", quota, cost=10)
    clock.now += 31
    assert store.sweep() == 10
    assert len(store) == 1


async def test_sweeper_frees_idle_callers_between_start_and_stop() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(max_keys=100, clock=clock, sweep_interval=0.01)
    quota = Quota.parse("10/minute")
    await limiter.start(None)
    try:
        for index in range(20):
            await limiter.hit(f"ip:{index}", quota)
        clock.now += 7
        for _ in range(100):
            if not limiter.buckets:
                break
            await asyncio.sleep(0.01)
        assert len(limiter.buckets) == 0
    finally:
        await limiter.stop(None)
    await limiter.stop(None)  # twice is harmless


def test_client_ip_resolution() -> None:
    policy = RateLimitPolicy(
        InMemoryRateLimiter(max_keys=100),
        ip_quota=Quota.parse("1/second"),
        user_quota=Quota.parse("1/second"),
        max_streams=1,
        trusted_proxies=["10.0.0.0/8", "::1"],
    )
    assert str(policy.client_ip("203.0.113.5", "1.2.3.4")) == "203.0.113.5"
    assert str(policy.client_ip("10.0.0.2", "1.2.3.4, 5.6.7.8")) == "5.6.7.8"
    assert str(policy.client_ip("10.0.0.2", "1.2.3.4, 10.9.9.9")) == "1.2.3.4"
    assert str(policy.client_ip("10.0.0.2", "10.0.0.3, 10.9.9.9")) == "10.0.0.3"
    assert str(policy.client_ip("10.0.0.2", "garbage, 10.9.9.9")) == "10.9.9.9"
    assert str(policy.client_ip("::1", "[2001:db8::7]")) == "2001:db8::7"
    assert str(policy.client_ip("::ffff:203.0.113.9", None)) == "203.0.113.9"
    assert policy.client_ip(None, "1.2.3.4") is None
    assert policy.caller(None, "2001:db8:1:2::1").key == "ip:2001:db8:1:2::/64"
    assert policy.caller(None, None).key == "ip:unknown"
