"""Build the configured provider."""

from __future__ import annotations

from ...service_settings import ServiceSettings
from .base import LLMProvider
from .fake import FakeProvider


def build_provider(settings: ServiceSettings) -> LLMProvider:
    if settings.llm_provider == "openai":
        from .openai import OpenAIProvider

        return OpenAIProvider.from_settings(settings)
    return FakeProvider(
        delay_ms=settings.fake_llm_delay_ms,
        first_token_delay_ms=settings.fake_llm_first_token_delay_ms,
    )
