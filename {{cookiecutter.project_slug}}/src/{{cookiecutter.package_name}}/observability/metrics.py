"""Prometheus metrics, one registry per app so that several apps (tests, workers) never collide."""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..chat.service import GenerationRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

Child = TypeVar("Child", Counter, Gauge, Histogram)


def child_of(metric: Child, cache: dict[tuple[str, ...], Child], labels: tuple[str, ...]) -> Child:
    """``metric.labels(*labels)``, remembered: ``labels()`` takes a lock and builds a key each call.

    Children are never removed from these metrics, so a remembered one stays the
    registry's own; the cache grows only with the label sets the metric has anyway.
    """
    child = cache.get(labels)
    if child is None:
        child = cache[labels] = metric.labels(*labels)
    return child


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "http_request_duration_seconds",
            "Time from request start to the end of the response, streams included.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, ...], Histogram] = {}
        self.errors = Counter(
            "http_errors_total",
            "Error responses by status and code.",
            ["status", "code"],
            registry=self.registry,
        )
        self._error_children: dict[tuple[str, ...], Counter] = {}
        self.active_streams = Gauge(
            "active_streams", "Generations running now.", ["transport"], registry=self.registry
        )
        self._active_children: dict[tuple[str, ...], Gauge] = {}
        self.tokens = Counter(
            "tokens_streamed_total",
            "Tokens sent to clients.",
            ["transport"],
            registry=self.registry,
        )
        self._token_children: dict[tuple[str, ...], Counter] = {}
        self.generations = Counter(
            "generations_total",
            "Generations by how they ended.",
            ["transport", "finish_reason"],
            registry=self.registry,
        )
        self._generation_children: dict[tuple[str, ...], Counter] = {}
        self.time_to_first_token = Histogram(
            "time_to_first_token_seconds",
            "Time from the start of a generation to its first token.",
            ["transport"],
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self._ttft_children: dict[tuple[str, ...], Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        child_of(self.request_seconds, self._request_children, labels).observe(seconds)

    def count_error(self, status: int, code: str) -> None:
        child_of(self.errors, self._error_children, (str(status), code)).inc()

    def generation_started(self, transport: str) -> None:
        child_of(self.active_streams, self._active_children, (transport,)).inc()

    def observe_generation(self, record: GenerationRecord) -> None:
        """Called once when a generation ends; per-token counting would cost a lock per token."""
        transport = (record.transport,)
        child_of(self.active_streams, self._active_children, transport).dec()
        child_of(self.tokens, self._token_children, transport).inc(record.tokens)
        outcome = (record.transport, record.finish_reason)
        child_of(self.generations, self._generation_children, outcome).inc()
        if record.time_to_first_token is not None:
            ttft = child_of(self.time_to_first_token, self._ttft_children, transport)
            ttft.observe(record.time_to_first_token)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
