"""Governance: rate limits, budgets, principals and spend. Nothing here touches HTTP."""

from llmux.governance.limits import (
    Lease,
    Limit,
    LocalRateLimiter,
    Quota,
    RateLimiter,
    applicable_limits,
)
from llmux.governance.redis_limits import RedisRateLimiter

__all__ = [
    "Lease",
    "Limit",
    "LocalRateLimiter",
    "Quota",
    "RateLimiter",
    "RedisRateLimiter",
    "applicable_limits",
]

# Budgets, budget periods and durations; appended after the limits exports above so the two
# parts of this package can be edited independently.
from llmux.governance.budgets import (
    BudgetLedger,
    BudgetLine,
    Hold,
    LocalBudgetLedger,
    SoftBudgetCrossing,
)
from llmux.governance.durations import (
    Duration,
    expires_at,
    next_reset,
    parse_duration,
)
from llmux.governance.redis_budgets import RedisBudgetLedger

__all__ += [
    "BudgetLedger",
    "BudgetLine",
    "Duration",
    "Hold",
    "LocalBudgetLedger",
    "RedisBudgetLedger",
    "SoftBudgetCrossing",
    "expires_at",
    "next_reset",
    "parse_duration",
]

# Key material, the key cache with cross-replica invalidation, and the spend writer; appended
# here so each part of this package can be edited independently (hence E402: the `__all__ +=`
# above comes first).
from llmux.governance.keycache import (  # noqa: E402
    DISCONNECTED_TTL,
    InvalidationBus,
    KeyCache,
    LastUsed,
    RedisInvalidationBus,
)
from llmux.governance.keys import KEY_PREFIX, display_name, generate_key, hash_key  # noqa: E402
from llmux.governance.spend import SpendWriter  # noqa: E402

__all__ += [
    "DISCONNECTED_TTL",
    "KEY_PREFIX",
    "InvalidationBus",
    "KeyCache",
    "LastUsed",
    "RedisInvalidationBus",
    "SpendWriter",
    "display_name",
    "generate_key",
    "hash_key",
]
