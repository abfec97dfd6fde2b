"""Transports: the only code that sends upstream requests. They move bytes and know no schema."""

from llmux.upstream.base import Timeouts, Transport, UpstreamResponse
from llmux.upstream.http import HttpTransport
from llmux.upstream.mock import MockTransport

__all__ = ["HttpTransport", "MockTransport", "Timeouts", "Transport", "UpstreamResponse"]
