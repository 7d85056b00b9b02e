"""Errors the core raises; every transport maps them to its own status codes."""

from __future__ import annotations


class ChatError(Exception):
    """A generation failed in a way the caller should hear about.

    ``http_status`` is a hint that HTTP-based transports use; gRPC and GraphQL map
    ``code`` instead. ``message`` is safe to show a client: it never carries
    internals.
    """

    code = "generation_failed"
    http_status = 500
    default_message = "The generation failed."

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        self.message = message or self.default_message
        self.retry_after = retry_after
        super().__init__(self.message)


class InvalidGenerationRequest(ChatError):
    code = "invalid_request"
    http_status = 400
    default_message = "The request cannot be served."


class ContextTooLong(ChatError):
    code = "context_length_exceeded"
    http_status = 400
    default_message = "The conversation is longer than the model's context window."


class UpstreamRateLimited(ChatError):
    code = "upstream_rate_limited"
    http_status = 429
    default_message = "The model provider is rate limiting this service; retry later."


class UpstreamError(ChatError):
    code = "upstream_error"
    http_status = 502
    default_message = "The model provider returned an error."


class UpstreamUnavailable(ChatError):
    code = "upstream_unavailable"
    http_status = 503
    default_message = "The model provider cannot be reached."


class CapacityExceeded(ChatError):
    code = "capacity_exceeded"
    http_status = 503
    default_message = "Too many generations are running; retry shortly."


class GenerationTimeout(ChatError):
    code = "generation_timeout"
    http_status = 504
    default_message = "The model took too long to answer."


class ServiceShuttingDown(ChatError):
    code = "shutting_down"
    http_status = 503
    default_message = "The service is restarting; retry the request."
