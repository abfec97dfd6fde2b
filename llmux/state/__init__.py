"""Routing state shared between gateway replicas through Redis.

Governance keeps its own Redis state (limits, budget counters, key invalidations) in
`llmux.governance`; these two packages are the only ones that import `redis`.
"""

from llmux.state.redis_routing import RedisLink, RedisRouterStats, open_link

__all__ = ["RedisLink", "RedisRouterStats", "open_link"]
