"""Structured logs: JSON in production, readable lines in development.

The standard library's loggers (uvicorn, httpx, this service) all go through
structlog's formatter, so every line carries the request ID bound by the
request-ID middleware.
"""

from __future__ import annotations

import logging
import sys

import structlog

from ..chat.service import GenerationRecord
from ..service_settings import ServiceSettings


def drop_color_message(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Drop the ANSI-coloured copy of each message that uvicorn adds for its own formatter."""
    event_dict.pop("color_message", None)
    return event_dict


def info_enabled(logger: logging.Logger) -> bool:
    """What ``structlog.stdlib.filter_by_level`` (first in the chain) decides for an INFO line.

    Asked first by the lines written once per request or per stream, so that a
    line below ``LOG_LEVEL`` does not build its fields and run the bound logger
    only to be dropped.
    """
    return not logger.disabled and logger.getEffectiveLevel() <= logging.INFO


def configure_logging(settings: ServiceSettings) -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        drop_color_message,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # filter_by_level first: a line below LOG_LEVEL costs one level check,
        # not the whole processor chain (the access log runs once per request).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The request-ID middleware writes the access log, with more fields.
    logging.getLogger("uvicorn.access").disabled = True


class GenerationLog:
    """Logs each generation once, when it ends: how many tokens and why it ended."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("generation")
        # The stdlib logger behind it, for the level check.
        self._logger = logging.getLogger("generation")

    def generation_started(self, transport: str) -> None:
        return None

    def observe_generation(self, record: GenerationRecord) -> None:
        if not info_enabled(self._logger):
            return
        self._log.info(
            "generation.end",
            transport=record.transport,
            model=record.model,
            tokens=record.tokens,
            finish_reason=record.finish_reason,
            error_code=record.error_code,
            ttft_ms=None
            if record.time_to_first_token is None
            else round(record.time_to_first_token * 1000, 1),
            duration_ms=round(record.duration * 1000, 1),
        )
