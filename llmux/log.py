"""structlog configured once: JSON (orjson) bytes or console lines, filtered by level.

Everyone else calls `get_logger()`; request-scoped fields (request id) are bound through
contextvars by the context middleware. Secrets are redacted before rendering. The only module
that imports structlog.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

__all__ = ["bind_request", "clear_request", "configure", "get_logger", "redact"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR
_SECRET_KEYS = frozenset({"authorization", "api_key", "x-api-key", "api-key", "master_key"})
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"']+")
_SK = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")


def redact(text: str) -> str:
    """Mask bearer tokens and `sk-...` keys inside free text."""
    return _SK.sub("sk-***", _BEARER.sub(r"\1***", text))


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event.keys() & _SECRET_KEYS:
        event[key] = "***"
    for key, value in event.items():
        if isinstance(value, str) and ("earer" in value or "sk-" in value):
            event[key] = redact(value)
    return event


def configure(level: str = "info", fmt: str = "json") -> None:
    """Set up structlog for the whole process; call once at start-up."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    if fmt == "json":
        processors += [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ]
        factory: Any = structlog.BytesLoggerFactory(sys.stdout.buffer)
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        factory = structlog.PrintLoggerFactory(sys.stdout)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str = "llmux") -> Any:
    """A bound logger; its calls are no-ops below the configured level."""
    return structlog.get_logger(name)


def bind_request(request_id: str) -> None:
    """Attach the request id to every log line emitted while serving this request."""
    structlog.contextvars.bind_contextvars(request_id=request_id)


def clear_request() -> None:
    """Forget request-scoped log fields."""
    structlog.contextvars.clear_contextvars()
