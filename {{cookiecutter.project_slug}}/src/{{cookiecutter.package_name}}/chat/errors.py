"""Errors the core raises; every transport maps their codes to its own statuses."""

from __future__ import annotations


class ChatError(Exception):
    """A generation failed in a way the caller should hear about.

    Each transport maps ``code`` to its own status (HTTP: ``errors.py``; others
    beside their code), or carries the code itself. ``message`` is safe to
    show a client: it never carries internals.
    """

    code = "generation_failed"
    default_message = "The generation failed."

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.retry_after = retry_after
        # The request field the error is about, when there is one.
        self.param = param
        super().__init__(self.message)


class InvalidGenerationRequest(ChatError):
    code = "invalid_request"
    default_message = "The request cannot be served."


class ModelNotFound(ChatError):
    code = "model_not_found"
    default_message = "The model does not exist or is not offered by this service."


class ContextTooLong(ChatError):
    code = "context_length_exceeded"
    default_message = "The conversation is longer than the model's context window."


class UpstreamRateLimited(ChatError):
    code = "upstream_rate_limited"
    default_message = "The model provider is rate limiting this service; retry later."


class UpstreamError(ChatError):
    code = "upstream_error"
    default_message = "The model provider returned an error."


class UpstreamUnavailable(ChatError):
    code = "upstream_unavailable"
    default_message = "The model provider cannot be reached."


class CapacityExceeded(ChatError):
    code = "capacity_exceeded"
    default_message = "Too many generations are running; retry shortly."


class GenerationTimeout(ChatError):
    code = "generation_timeout"
    default_message = "The model took too long to answer."


class ServiceShuttingDown(ChatError):
    code = "shutting_down"
    default_message = "The service is restarting; retry the request."
