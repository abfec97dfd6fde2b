"""The management API's route table: typed endpoints, one registry, one request pipeline.

Every endpoint is declared once with `@endpoint(...)`: its method and path, the msgspec types of
its body or query and of its answer, and whether it writes. The registry drives both the aiohttp
routes (`add_routes`) and the OpenAPI document (`llmux.manage.openapi`), so the two cannot
drift. The pipeline of each request: resolve the actor (401/403), refuse writes to read-only
actors (403), decode and validate the body or query (422 naming the field), run the handler,
encode its answer. Handlers get a `Ctx` with the actor, the store, an `audit()` helper that
stamps who did what from where, and `invalidate_*` to drop changed records from the gateway's
caches.

A handler of a writing endpoint runs inside one `Store.atomic()` block: a request that fails
half way (a conflict found after the first write, a store fault) changes nothing and leaves no
audit row. Its cache invalidations are published only after that block commits, so no replica
can reload the old record after being told it changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from llmux.appkeys import REQUEST_ID, RUNTIME
from llmux.errors import Conflict, InvalidRequest, PermissionDenied, UnprocessableEntity
from llmux.governance.service import Governance
from llmux.manage.actor import Actor, resolve_actor
from llmux.store.base import Store, ValueTaken
from llmux.store.records import AuditEntry

__all__ = [
    "MANAGE_CONFIG",
    "MANAGE_GOVERNANCE",
    "MANAGE_STORE",
    "ROUTES",
    "Ctx",
    "Endpoint",
    "ManageConfig",
    "add_routes",
    "endpoint",
]

T = TypeVar("T")
Handler = Callable[["Ctx", Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ManageConfig:
    """What the pipeline needs from config: the master key."""

    master_key: str | None


MANAGE_STORE = web.AppKey("manage_store", Store)
MANAGE_GOVERNANCE = web.AppKey("manage_governance", Governance)
MANAGE_CONFIG = web.AppKey("manage_config", ManageConfig)


@dataclass(slots=True)
class _Invalidations:
    """What a request changed that the gateway's caches must forget once it commits."""

    keys: set[str] = field(default_factory=set)
    entities: bool = False
    announcements: list[str] = field(default_factory=list)

    async def publish(self, governance: Governance) -> None:
        for token in sorted(self.keys):
            await governance.invalidate_key(token)
        if self.entities:
            await governance.invalidate_entities()
        for message in self.announcements:
            await governance.announce(message)


@dataclass(frozen=True, slots=True)
class Ctx:
    """One management request as its handler sees it."""

    request: web.Request
    actor: Actor
    store: Store
    governance: Governance
    _invalidations: _Invalidations = field(default_factory=_Invalidations)

    def invalidate_key(self, token: str) -> None:
        """Drop the key from every replica's cache once this request's changes commit."""
        self._invalidations.keys.add(token)

    def invalidate_entities(self) -> None:
        """Rebuild every replica's tenancy (users, teams, orgs, end users, budgets) on commit."""
        self._invalidations.entities = True

    def announce(self, message: str) -> None:
        """Have every other process repeat this request's action (a `governance.peers`
        message) once the request succeeds."""
        self._invalidations.announcements.append(message)

    @property
    def calendar_aligned(self) -> bool:
        """Whether budget periods align to calendar boundaries (config, reloadable)."""
        holder = self.request.app.get(RUNTIME)
        return (
            holder is not None and holder.current.loaded.config.governance.budgets.calendar_aligned
        )

    def audit(self, action: str, object_type: str, object_id: str) -> AuditEntry:
        """An audit entry for a mutation (the store fills in before/after)."""
        return AuditEntry(
            actor=self.actor.id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            request_id=self.request.get(REQUEST_ID),
            client_ip=self.request.remote,
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One declared endpoint."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[Any] | None
    query: type[Any] | None
    response: Any
    writes: bool


ROUTES: list[Endpoint] = []
"""Every declared endpoint, in declaration order."""


def endpoint(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    response: Any,
    body: type[Any] | None = None,
    query: type[Any] | None = None,
    writes: bool = False,
) -> Callable[[Handler], Handler]:
    """Declare a management endpoint (see the module docstring)."""

    def register(handler: Handler) -> Handler:
        ROUTES.append(Endpoint(method, path, handler, summary, tag, body, query, response, writes))
        return handler

    return register


def add_routes(app: web.Application) -> None:
    """Register every declared endpoint on `app` (which must hold the MANAGE_* keys)."""
    for declared in ROUTES:
        app.router.add_route(declared.method, declared.path, _pipeline(declared))


def _pipeline(declared: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        store = request.app[MANAGE_STORE]
        master_key = request.app[MANAGE_CONFIG].master_key
        actor = await resolve_actor(dict(request.headers), master_key, store)
        if declared.writes and not actor.may_write:
            raise PermissionDenied(
                f"{_who(actor)} may only read: {declared.method} {declared.path} changes state.",
                code="read_only",
            )
        argument = await _argument(request, declared)
        ctx = Ctx(request, actor, store, request.app[MANAGE_GOVERNANCE])
        if declared.writes:
            result = await _in_one_transaction(ctx, declared, argument)
        else:
            result = await declared.handler(ctx, argument)
        await ctx._invalidations.publish(ctx.governance)
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(body=msgspec.json.encode(result), content_type="application/json")

    handle.__name__ = declared.handler.__name__
    return handle


def _who(actor: Actor) -> str:
    if actor.key_type == "read_only":
        return "A read_only key"
    return f"A {actor.role}"


async def _in_one_transaction(ctx: Ctx, declared: Endpoint, argument: Any) -> Any:
    try:
        async with ctx.store.atomic():
            return await declared.handler(ctx, argument)
    except ValueTaken as taken:
        # Another request took the value between the handler's own check and its write.
        raise Conflict(f"The {taken.field} is already taken.", param=taken.field) from None


async def _argument(request: web.Request, declared: Endpoint) -> Any:
    if declared.body is not None:
        return decode_body(await request.read(), declared.body)
    if declared.query is not None:
        return decode_query(dict(request.query), declared.query)
    return None


def decode_body(data: bytes, kind: type[T]) -> T:
    """The body as `kind`; 400 when it is not JSON, 422 naming the field that fails."""
    if not data.strip():
        data = b"{}"
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise _unprocessable(exc) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None


def decode_query(query: dict[str, str], kind: type[T]) -> T:
    """Query parameters as `kind` (numbers and booleans converted); 422 naming the field."""
    try:
        return msgspec.convert(query, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise _unprocessable(exc) from None


def _unprocessable(exc: msgspec.ValidationError) -> UnprocessableEntity:
    text, _, where = str(exc).partition(" - at `")
    field = where.rstrip("`").removeprefix("$").lstrip(".") or None
    if text.startswith("Object missing required field"):
        missing = text.split("`")[1] if "`" in text else None
        field = f"{field}.{missing}" if field and missing else missing
        text = "missing required field"
    elif text.startswith("Object contains unknown field"):
        unknown = text.split("`")[1] if "`" in text else None
        field = f"{field}.{unknown}" if field and unknown else unknown
        text = "unknown field"
    message = f"Invalid '{field}': {text}." if field else f"Invalid body: {text}."
    return UnprocessableEntity(message, param=field)
