"""One call end to end: route -> encode -> send -> decode or relay -> usage; retries first.

The only package where codecs and transports meet: `core` (the Dispatcher: retries,
cooldowns, fallbacks), `relay` (streams), `records` (bindings, call records, routing decisions),
`estimates` (token estimates for routing).
"""

from llmux.dispatch.core import Dispatcher
from llmux.dispatch.records import Binding, CallRecord, RouteTrace
from llmux.dispatch.relay import OpenStream, Write

__all__ = ["Binding", "CallRecord", "Dispatcher", "OpenStream", "RouteTrace", "Write"]
