"""Routing: model groups and their deployments, the stats routing observes, the six strategies.

Pure data plus pure functions; no I/O. `table` builds groups, aliases and per-group policies
from config; `stats` holds what dispatch reports (in flight, latency, usage windows);
`strategies` filters and orders a group's deployments for one request.
"""

from llmux.routing.catalogue import known_context_window
from llmux.routing.stats import LocalRouterStats, RouterStats, SharedRouterStats
from llmux.routing.strategies import RequestEstimate, admit, fit_context, order
from llmux.routing.table import (
    Deployment,
    GroupPolicy,
    RoutingTable,
    attempt_order,
    build_table,
)

__all__ = [
    "Deployment",
    "GroupPolicy",
    "LocalRouterStats",
    "RequestEstimate",
    "RouterStats",
    "RoutingTable",
    "SharedRouterStats",
    "admit",
    "attempt_order",
    "build_table",
    "fit_context",
    "known_context_window",
    "order",
]
