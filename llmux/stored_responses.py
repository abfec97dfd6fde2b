"""Stored Responses: `previous_response_id`, and GET / DELETE /v1/responses/{id}[/input_items].

The gateway stores the responses it builds itself (Responses served by translation over chat),
so multi-turn conversations work on providers that keep no server-side state. A passthrough
upstream (OpenAI) stores its own responses; its ids are not in this store, and a
`previous_response_id` the store does not know is passed through for that upstream to resolve.
A stored response is visible only to the key that created it and the keys of that key's team
(the master key and an open gateway each count as one caller).
The write is awaited before the client gets its answer, so an immediate follow-up turn always
finds it; a store failure is logged and counted but never fails the answer itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec
from aiohttp import web

from llmux.appkeys import METRICS, PRINCIPAL, STORE
from llmux.auth import ANONYMOUS, Principal
from llmux.errors import InvalidRequest, NotFound
from llmux.frontdoor.responses import expand_history, input_items, response_id
from llmux.log import get_logger
from llmux.providers.base import Call
from llmux.store import StoreError
from llmux.store.records import StoredResponse
from llmux.wire.openai import encode

__all__ = ["add_stored_response_routes", "remember", "with_history"]


class _Stored(msgspec.Struct):
    output: list[msgspec.Raw] = []


class _StoreFlag(msgspec.Struct):
    store: bool | None = None


_stored = msgspec.json.Decoder(_Stored)
_bool = msgspec.json.Decoder(bool | None)
_str = msgspec.json.Decoder(str)
_DEFAULT_LIMIT = 20
_MAX_LIMIT = 100


async def _visible(request: web.Request, response_id_: str) -> StoredResponse | None:
    """The stored response if the caller's key, or a key of the caller's team, created it."""
    principal: Principal = request.get(PRINCIPAL, ANONYMOUS)
    stored = await request.app[STORE].get_response(response_id_, owner=None)
    if stored is None:
        return None
    if stored.owner == principal.id:
        return stored
    if principal.team_id is not None and stored.team_id == principal.team_id:
        return stored
    return None


async def with_history(request: web.Request, call: Call) -> Call:
    """`call` with the stored conversation of its `previous_response_id` in its input."""
    raw = call.body.get("previous_response_id")
    if raw is None or raw == msgspec.Raw(b"null"):
        return call
    try:
        previous_id = _str.decode(raw)
    except msgspec.ValidationError:
        raise InvalidRequest(
            "'previous_response_id' must be a string.", param="previous_response_id"
        ) from None
    previous = await _visible(request, previous_id)
    if previous is None:
        return call  # a passthrough upstream's own id: it resolves it, others answer 400
    body = expand_history(call.body, previous.input_items, previous.output)
    # The id stays out of the body: a passthrough deployment of the same group would send it to
    # an upstream that never saw it. `continues` keeps it for the translated Response's echo.
    return replace(call, body=body, continues=previous_id)


def _wants_storing(call: Call) -> bool:
    raw = call.body.get("store")
    if raw is None:
        return True
    try:
        return _bool.decode(raw) is not False
    except msgspec.ValidationError:
        raise InvalidRequest("'store' must be a boolean.", param="store") from None


async def remember(request: web.Request, call: Call, response: bytes) -> None:
    """Store a response the gateway built (its id is ours); passthrough answers are skipped."""
    if not _wants_storing(call):
        return
    ours = response_id(call)
    try:
        output = _stored.decode(response).output
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if ours.encode() not in response[:200]:
        return  # an upstream's own response object (passthrough): it stores its own
    principal: Principal = request.get(PRINCIPAL, ANONYMOUS)
    stored = StoredResponse(
        response_id=ours,
        owner=principal.id,
        team_id=principal.team_id,
        model=call.model,
        input_items=input_items(call.body),
        output=output,
        response=msgspec.Raw(response),
    )
    try:
        await request.app[STORE].put_response(stored)
    except (StoreError, OSError) as exc:
        request.app[METRICS].observe_store_error("put_response")
        get_logger().warning("response_store_failed", response_id=ours, error=str(exc))


def add_stored_response_routes(app: web.Application) -> None:
    """GET and DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items."""
    app.router.add_get("/v1/responses/{response_id}", get_response)
    app.router.add_delete("/v1/responses/{response_id}", delete_response)
    app.router.add_get("/v1/responses/{response_id}/input_items", list_input_items)


async def _load(request: web.Request) -> StoredResponse:
    response_id_ = request.match_info["response_id"]
    stored = await _visible(request, response_id_)
    if stored is None:
        raise NotFound(f"No response found with id '{response_id_}'.", code="response_not_found")
    return stored


async def get_response(request: web.Request) -> web.Response:
    """The stored Response object."""
    stored = await _load(request)
    return web.Response(body=bytes(stored.response), content_type="application/json")


async def delete_response(request: web.Request) -> web.Response:
    """Delete a stored response; a second delete is a 404, as OpenAI answers."""
    response_id_ = request.match_info["response_id"]
    stored = await _visible(request, response_id_)
    deleted = stored is not None and await request.app[STORE].delete_response(
        response_id_, owner=stored.owner
    )
    if not deleted:
        raise NotFound(f"No response found with id '{response_id_}'.", code="response_not_found")
    body = {"id": response_id_, "object": "response", "deleted": True}
    return web.Response(body=encode(body), content_type="application/json")


async def list_input_items(request: web.Request) -> web.Response:
    """The response's input items (history included), paginated like OpenAI's list."""
    stored = await _load(request)
    limit = _limit(request.query.get("limit"))
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
    items: list[Any] = [msgspec.json.decode(raw) for raw in stored.input_items]
    if order == "desc":
        items.reverse()
    after = request.query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"No input item with id '{after}'.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    body = {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(items) > limit,
    }
    return web.Response(body=encode(body), content_type="application/json")


def _limit(text: str | None) -> int:
    if text is None:
        return _DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise InvalidRequest("'limit' must be an integer.", param="limit") from None
    if not 1 <= limit <= _MAX_LIMIT:
        raise InvalidRequest(f"'limit' must be between 1 and {_MAX_LIMIT}.", param="limit")
    return limit
