"""State shared between gateway replicas; the only package that imports `redis`."""

from llmux.state.redis_routing import RedisLink, RedisRouterStats, open_link

__all__ = ["RedisLink", "RedisRouterStats", "open_link"]
