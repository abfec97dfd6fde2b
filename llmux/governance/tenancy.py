"""Who a virtual key acts for: its user, team, organization, membership and budgets, cached.

`TenancyResolver.resolve(token)` turns a key hash into a `Tenancy`: the key plus the entities
above it, with their rate limits and budget lines computed once (requests only read them). An
entity's own limit and budget fields win; an unset one falls back to the reusable `Budget` it
names (`budget_id`). Entities are cached for the key cache's TTL; `invalidate_all()` (called
when an admin changes a user, team, organization or budget, on every replica through the
invalidation bus) drops them at once. A key change is seen as soon as the `KeyCache` hands out
a new `Key` object. While the store is unreachable, entities are served up to `stale_ttl` old.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from llmux.governance.budgets import BudgetLedger, BudgetLine
from llmux.governance.keycache import KeyCache
from llmux.governance.limits import Limit
from llmux.log import get_logger
from llmux.store.base import E, Store, StoreUnavailable
from llmux.store.records import (
    Budget,
    EndUser,
    Governed,
    Key,
    ModelBudget,
    Organization,
    Team,
    TeamMembership,
    User,
)

__all__ = ["EntityCache", "Level", "Tenancy", "TenancyResolver", "levels_of", "model_allowed"]


@dataclass(frozen=True, slots=True)
class Level:
    """One governed entity of a request: its level name, id, record and reusable budget."""

    name: str
    subject: str
    entity: Governed
    budget: Budget | None

    def value(self, field: str) -> Any:
        """The entity's own value of `field`, else its budget's."""
        own = getattr(self.entity, field)
        if own is None and self.budget is not None:
            return getattr(self.budget, field, None)
        return own

    def limits(self) -> list[Limit]:
        """Rate limits at this level: all models, then per model."""
        found: list[Limit] = []
        rpm, tpm = self.value("rpm_limit"), self.value("tpm_limit")
        parallel = self.value("max_parallel_requests")
        if rpm is not None or tpm is not None or parallel is not None:
            found.append(Limit(self.name, self.subject, None, rpm, tpm, parallel))
        entity = self.entity
        for model in sorted(set(entity.model_rpm_limit) | set(entity.model_tpm_limit)):
            found.append(
                Limit(
                    self.name,
                    self.subject,
                    model,
                    entity.model_rpm_limit.get(model),
                    entity.model_tpm_limit.get(model),
                    None,
                )
            )
        return found

    def budget_line(self) -> BudgetLine | None:
        """The all-models budget line, if this level has a hard or soft budget."""
        hard, soft = self.value("max_budget"), self.value("soft_budget")
        if hard is None and soft is None:
            return None
        return BudgetLine(self.name, self.subject, None, hard, soft, _period(self.reset_at()))

    def reset_at(self) -> datetime | None:
        """When this level's budget period ends (None: it never resets)."""
        value = self.value("budget_reset_at")
        return value if isinstance(value, datetime) else None

    def model_budgets(self) -> dict[str, ModelBudget]:
        """Per-model budgets: the entity's own, else its budget's."""
        own = self.entity.model_max_budget
        if not own and self.budget is not None:
            return self.budget.model_max_budget
        return own


def _period(reset_at: datetime | None) -> str:
    return reset_at.isoformat() if reset_at is not None else ""


def levels_of(
    key: Key,
    user: User | None,
    team: Team | None,
    organization: Organization | None,
    budgets: dict[str, Budget],
) -> list[Level]:
    """The governed levels of a key, from the key up to its organization."""
    levels = [Level("key", key.token, key, budgets.get(key.budget_id or ""))]
    for name, entity, subject in (
        ("user", user, user.user_id if user else ""),
        ("team", team, team.team_id if team else ""),
        ("organization", organization, organization.organization_id if organization else ""),
    ):
        if entity is not None:
            levels.append(Level(name, subject, entity, budgets.get(entity.budget_id or "")))
    return levels


def model_allowed(allowed: Sequence[str], model: str) -> bool:
    """Whether a `models` list lets `model` through: empty = all, `*` wildcards match."""
    if not allowed:
        return True
    return any(name == model or fnmatch.fnmatchcase(model, name) for name in allowed)


@dataclass(frozen=True, slots=True)
class Tenancy:
    """A virtual key with everything above it, as one request needs it."""

    key: Key
    user: User | None
    team: Team | None
    organization: Organization | None
    membership: TeamMembership | None
    levels: tuple[Level, ...]
    limits: tuple[Limit, ...]
    budget_lines: tuple[BudgetLine, ...]
    """All-model budget lines of every level (team membership budget included)."""
    spent: dict[BudgetLine, float]
    """The persisted spend of each budget line, as loaded (seeds the ledger)."""

    @property
    def team_id(self) -> str | None:
        """The key's team, if any."""
        return self.key.team_id

    @property
    def organization_id(self) -> str | None:
        """The key's organization: its own, else its team's."""
        if self.key.organization_id:
            return self.key.organization_id
        return self.team.organization_id if self.team is not None else None

    def resolve_model(self, model: str) -> str:
        """The model group a client name means for this key (key aliases, then team aliases)."""
        alias = self.key.aliases.get(model)
        if alias is None and self.team is not None:
            alias = self.team.model_aliases.get(model)
        return alias or model

    def denial(self, model: str) -> str | None:
        """Which level's `models` list refuses `model`, or None when every level allows it."""
        for level in self.levels:
            if not model_allowed(level.entity.models, model):
                return level.name
        return None


class EntityCache:
    """Users, teams, organizations, budgets and end users by id, cached for `ttl` seconds."""

    def __init__(
        self,
        store: Store,
        *,
        ttl: float,
        stale_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._stale_ttl = stale_ttl
        self._clock = clock
        self._entries: dict[tuple[type[Any], str], tuple[Any, float]] = {}

    async def get(self, cls: type[E], id: str | None) -> E | None:
        """The record, from memory when fresh; stale while the store is down."""
        if not id:
            return None
        now = self._clock()
        entry = self._entries.get((cls, id))
        if entry is not None and now - entry[1] < self._ttl:
            found: E | None = entry[0]
            return found
        try:
            record = await self._store.get(cls, id)
        except StoreUnavailable:
            if entry is not None and now - entry[1] < self._stale_ttl:
                stale: E | None = entry[0]
                return stale
            raise
        self._entries[(cls, id)] = (record, now)
        return record

    async def membership(self, team_id: str | None, user_id: str | None) -> TeamMembership | None:
        """The user's membership of the team, if both are set and it exists."""
        if not team_id or not user_id:
            return None
        cache_key = f"{team_id}\x00{user_id}"
        now = self._clock()
        entry = self._entries.get((TeamMembership, cache_key))
        if entry is not None and now - entry[1] < self._ttl:
            found: TeamMembership | None = entry[0]
            return found
        members = await self._store.list_members(TeamMembership, group_id=team_id, user_id=user_id)
        membership = members[0] if members else None
        self._entries[(TeamMembership, cache_key)] = (membership, now)
        return membership

    def clear(self) -> None:
        """Forget everything (an admin changed some entity)."""
        self._entries.clear()


class TenancyResolver:
    """Resolves key hashes to `Tenancy`, rebuilding only when the key or the TTL says so."""

    def __init__(
        self,
        keys: KeyCache,
        entities: EntityCache,
        ledger: BudgetLedger,
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._entities = entities
        self._ledger = ledger
        self._ttl = ttl
        self._clock = clock
        self._built: dict[str, tuple[Key, Tenancy, float]] = {}

    async def resolve(self, token: str) -> Tenancy | None:
        """The tenancy of the key hashed as `token`, or None when there is no such key."""
        key = await self._keys.get(token)
        if key is None:
            self._built.pop(token, None)
            return None
        built = self._built.get(token)
        if built is not None and built[0] is key and self._clock() - built[2] < self._ttl:
            return built[1]
        tenancy = await self._build(key)
        await self._seed(tenancy)
        self._built[token] = (key, tenancy, self._clock())
        return tenancy

    async def _seed(self, tenancy: Tenancy) -> None:
        """Load persisted spend into the ledger; best effort: while Redis is down the counters
        keep what they had (they only ever keep the larger of stored and counted spend)."""
        try:
            for line, spent in tenancy.spent.items():
                await self._ledger.seed(line, spent)
        except (RedisError, OSError) as error:
            get_logger().warning("budget_seed_failed", error=str(error))

    def invalidate_all(self) -> None:
        """Rebuild every tenancy on next use (an entity above some key changed)."""
        self._built.clear()
        self._entities.clear()

    async def end_user(self, user_id: str) -> EndUser | None:
        """The end user record of a request's `user`, if one exists."""
        return await self._entities.get(EndUser, user_id)

    async def _build(self, key: Key) -> Tenancy:
        get = self._entities.get
        user = await get(User, key.user_id)
        team = await get(Team, key.team_id)
        org_id = key.organization_id or (team.organization_id if team else None)
        organization = await get(Organization, org_id)
        membership = await self._entities.membership(key.team_id, key.user_id)
        budgets: dict[str, Budget] = {}
        for entity in (key, user, team, organization):
            if entity is not None and entity.budget_id and entity.budget_id not in budgets:
                budget = await get(Budget, entity.budget_id)
                if budget is not None:
                    budgets[budget.budget_id] = budget
        levels = levels_of(key, user, team, organization, budgets)
        limits = [limit for level in levels for limit in level.limits()]
        spent: dict[BudgetLine, float] = {}
        for level in levels:
            line = level.budget_line()
            if line is not None:
                spent[line] = level.entity.spend
        if membership is not None and team is not None and membership.max_budget_in_team:
            line = BudgetLine(
                "team_member",
                f"{team.team_id}:{membership.user_id}",
                None,
                membership.max_budget_in_team,
                None,
                _period(Level("team", team.team_id, team, None).reset_at()),
            )
            spent[line] = membership.spend
        return Tenancy(
            key=key,
            user=user,
            team=team,
            organization=organization,
            membership=membership,
            levels=tuple(levels),
            limits=tuple(limits),
            budget_lines=tuple(spent),
            spent=spent,
        )
