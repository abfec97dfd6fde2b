"""Config endpoints: which config is serving, and reloading it from its file.

`GET /control/config` answers the serving config's `path`, `checksum` (sha256 of the file's
text) and `loaded_at` (readers of everything). `POST /control/config/reload` re-reads the file
and swaps the runtime (`llmux.reload`; `proxy_admin` only): with `expected_checksum` it reloads
only while that checksum is still the one serving (409 otherwise), so two operators cannot
overwrite each other's reload unknowingly. An invalid file is a 400 carrying the loader's
`file:line: key: problem` text, and the old config keeps serving. A successful reload asks every
other process to reload its own file too: the other workers of `llmux serve --workers N`, and in
distributed mode the replicas sharing Redis.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from llmux.errors import NotFound
from llmux.manage.access import require
from llmux.manage.routes import Ctx, endpoint
from llmux.reload import RELOADER, ConfigState, Reloader

__all__ = ["ReloadBody"]


class ReloadBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options of a config reload."""

    expected_checksum: Annotated[
        str | None,
        msgspec.Meta(
            description="Reload only if this is the checksum serving now (from GET"
            " /control/config); 409 otherwise."
        ),
    ] = None


def _reloader(ctx: Ctx) -> Reloader:
    reloader = ctx.request.app.get(RELOADER)
    if reloader is None:
        raise NotFound("This admin app serves no gateway config.")
    return reloader


@endpoint(
    "GET",
    "/control/config",
    summary="The serving config: file path, checksum and load time.",
    tag="control",
    response=ConfigState,
)
async def config_state(ctx: Ctx, _: None) -> ConfigState:
    """The serving config's path, checksum and load time."""
    require(ctx.actor.sees_all, "the proxy_admin or proxy_admin_viewer role")
    return _reloader(ctx).state()


@endpoint(
    "POST",
    "/control/config/reload",
    summary="Reload the config file and swap it in atomically (old config kept if invalid).",
    tag="control",
    response=ConfigState,
    body=ReloadBody,
    writes=True,
)
async def reload_config(ctx: Ctx, body: ReloadBody) -> ConfigState:
    """Reload the config file; the new serving state."""
    require(ctx.actor.is_admin, "the proxy_admin role")
    state = await _reloader(ctx).reload(body.expected_checksum)
    ctx.announce(ctx.governance.peers.reload())
    return state
