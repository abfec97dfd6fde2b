"""structlog configured once: JSON (orjson) bytes or console lines, filtered by level.

Everyone else calls `get_logger()`; request-scoped fields (request id, trace id) are bound
through contextvars by the context middleware. Secrets are redacted before rendering, in fields
and in logged bodies (`log_body`, debug level, cut to `logging.body_max_bytes`). The only
module that imports structlog.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Protocol

import orjson
import structlog

__all__ = [
    "AccessLog",
    "BodyLogging",
    "bind_request",
    "configure",
    "debug_enabled",
    "get_logger",
    "info_enabled",
    "log_body",
    "redact",
]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR
_SECRET_KEYS = frozenset({"authorization", "api_key", "x-api-key", "api-key", "master_key"})
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"']+")
_SK = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_SECRET_FIELD = re.compile(
    r'(?i)("(?:authorization|api[_-]?key|x-api-key|master_key|password|secret)"\s*:\s*)"[^"]*"'
)
_FLUSH_DELAY = 0.05
_FLUSH_BYTES = 64 * 1024


def redact(text: str) -> str:
    """Mask bearer tokens and `sk-...` keys inside free text."""
    return _SK.sub("sk-***", _BEARER.sub(r"\1***", text))


def _redact_body(text: str) -> str:
    """`redact`, plus the values of JSON fields named like secrets."""
    return redact(_SECRET_FIELD.sub(r'\1"***"', text))


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event.keys() & _SECRET_KEYS:
        event[key] = "***"
    for key, value in event.items():
        if isinstance(value, str) and ("earer" in value or "sk-" in value):
            event[key] = redact(value)
    return event


_level = logging.DEBUG
"""The configured level (everything passes until `configure` runs, as in structlog)."""
_trace_ids_bound = False
"""Whether any request bound a trace id yet (until then, there is none to unbind)."""


def info_enabled() -> bool:
    """Whether info lines are written: build costly fields only when they are."""
    return _level <= logging.INFO


def debug_enabled() -> bool:
    """Whether debug lines are written (body logging is checked only then)."""
    return _level <= logging.DEBUG


def configure(level: str = "info", fmt: str = "json") -> None:
    """Set up structlog for the whole process; call once at start-up."""
    global _level
    _level = _LEVELS[level]
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


_hot: AccessLog | None = None
"""The process's batched writer, for info lines on the hot path (JSON format only)."""


def use_hot_path_writer(writer: AccessLog | None) -> None:
    """Let `hot_info` write through `writer` (the gateway's access log) instead of structlog."""
    global _hot
    _hot = writer if writer is not None and writer.json else None


def hot_info(event: str, **fields: Any) -> None:
    """An info line written on the hot path: batched orjson (with the request's bound context)
    when JSON logging is on, structlog otherwise. Check `info_enabled()` before building it."""
    if _hot is not None:
        _hot.write_event(event, {**structlog.contextvars.get_contextvars(), **fields})
        return
    get_logger().info(event, **fields)


def get_logger(name: str = "llmux") -> Any:
    """A bound logger; its calls are no-ops below the configured level."""
    return structlog.get_logger(name)


def bind_request(request_id: str, trace_id: str | None = None) -> None:
    """Attach the request id (and trace id, when known) to every log line of this request."""
    global _trace_ids_bound
    if trace_id is not None:
        _trace_ids_bound = True
        structlog.contextvars.bind_contextvars(request_id=request_id, trace_id=trace_id)
        return
    structlog.contextvars.bind_contextvars(request_id=request_id)
    if _trace_ids_bound:
        # A kept-alive connection's previous request may have bound one.
        structlog.contextvars.unbind_contextvars("trace_id")


class BodyLogging(Protocol):
    """The `logging` settings body logging reads."""

    @property
    def log_bodies(self) -> bool: ...

    @property
    def body_max_bytes(self) -> int: ...


def log_body(event: str, body: bytes, settings: BodyLogging) -> None:
    """Log `body` at debug level when `logging.log_bodies`: cut to the cap, secrets masked."""
    if not settings.log_bodies or _level > logging.DEBUG:
        return
    cap = settings.body_max_bytes
    # A character cut in half at the cap is dropped, so the line never exceeds the cap.
    text = _redact_body(body[:cap].decode("utf-8", "ignore"))
    get_logger("llmux.body").debug(
        event, body=text, body_bytes=len(body), truncated=len(body) > cap
    )


class AccessLog:
    """The one access line per request, rendered with orjson and written in small batches.

    It is the only log line on the hot path. Going through the structlog processor chain and
    flushing stdout per line cost more CPU than the rest of the gateway's own per-request work,
    so JSON lines are rendered directly (same keys as structlog's: timestamp, level, event) and
    flushed every 50 ms, at 64 KiB, and on shutdown. Console format goes through structlog.
    """

    __slots__ = ("_buffer", "_enabled", "_json", "_pending", "_second", "_stamp")

    def __init__(self, *, enabled: bool, level: str, fmt: str) -> None:
        self._enabled = enabled and _LEVELS[level] <= logging.INFO
        self._json = fmt == "json"
        self._buffer = bytearray()
        self._pending = False
        self._second = -1
        self._stamp = ""

    @property
    def enabled(self) -> bool:
        """Whether access lines are written at all (`logging.access_log` and level <= info)."""
        return self._enabled

    @property
    def json(self) -> bool:
        """Whether lines are JSON (written here) rather than console (through structlog)."""
        return self._json

    def write(self, fields: dict[str, Any]) -> None:
        """Queue one access line; must be called from the event loop."""
        if not self._json:
            get_logger("llmux.access").info("request", **fields)
            return
        self.write_event("request", fields)

    def write_event(self, event: str, fields: dict[str, Any]) -> None:
        """Queue one info line of any event (JSON format only); from the event loop."""
        line = {"event": event, "level": "info", "timestamp": self._timestamp(), **fields}
        self._buffer += orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
        if len(self._buffer) >= _FLUSH_BYTES:
            self.flush()
        elif not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_later(_FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Write out queued lines now."""
        self._pending = False
        if not self._buffer:
            return
        data, self._buffer = bytes(self._buffer), bytearray()
        stream = sys.stdout.buffer
        stream.write(data)
        stream.flush()

    def _timestamp(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1_000_000):06d}Z"
