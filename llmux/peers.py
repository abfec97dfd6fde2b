"""Admin actions every gateway process repeats when one of them was asked to take it.

Under `llmux serve --workers N` an admin call reaches one worker, and in distributed mode one
replica. A config reload and a manual cooldown must hold for all of them, so the process that
took one announces it on the invalidation bus (the Unix-socket bus between workers, Redis
pub/sub between replicas) and every other process repeats it: it reloads its own config file,
or cools or clears the deployment in its own breaker. A message is `*peer*:` and JSON; each
process skips its own, known by a random origin id (pids repeat across hosts and containers).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from llmux.log import get_logger

if TYPE_CHECKING:
    from llmux.reload import Reloader
    from llmux.runtime import RuntimeHolder

__all__ = ["PEER_PREFIX", "Peers"]

PEER_PREFIX: Final = "*peer*:"


class _Action(msgspec.Struct, kw_only=True, omit_defaults=True):
    origin: str
    do: Literal["reload", "cooldown"]
    deployment: str | None = None
    seconds: float | None = None
    """Cooldown length; None with `do: cooldown` clears the deployment's cooldown."""


_decoder: Final = msgspec.json.Decoder(_Action)


class Peers:
    """This process's side of the announcements: its origin id and how it repeats the others'."""

    def __init__(self) -> None:
        self._origin = uuid.uuid4().hex
        self._reloader: Reloader | None = None
        self._holder: RuntimeHolder | None = None

    def attach(self, reloader: Reloader, holder: RuntimeHolder) -> None:
        """What the actions act on (the gateway's, once it built them)."""
        self._reloader, self._holder = reloader, holder

    def reload(self) -> str:
        """The announcement "reload your config file"."""
        return self._message(_Action(origin=self._origin, do="reload"))

    def cooldown(self, deployment: str, seconds: float | None) -> str:
        """The announcement "cool `deployment` for `seconds`" (None: clear its cooldown)."""
        action = _Action(origin=self._origin, do="cooldown", deployment=deployment, seconds=seconds)
        return self._message(action)

    def received(self, message: str) -> None:
        """Repeat another process's announced action (this process's own are skipped)."""
        try:
            action = _decoder.decode(message.removeprefix(PEER_PREFIX))
        except msgspec.DecodeError as error:  # a newer or older version's message: skip it
            get_logger().warning("peer_action_unreadable", error=str(error))
            return
        if action.origin == self._origin:
            return
        if action.do == "reload" and self._reloader is not None:
            self._reloader.reload_soon()
        elif action.do == "cooldown" and action.deployment is not None:
            self._cool(action.deployment, action.seconds)

    def _cool(self, deployment: str, seconds: float | None) -> None:
        if self._holder is None:
            return
        runtime = self._holder.current
        if deployment not in runtime.table.by_id:
            return  # this process's config has no such deployment (yet)
        breaker = runtime.dispatcher.breaker
        if seconds is None:
            breaker.clear(deployment)
        else:
            breaker.force_cooldown(deployment, seconds)

    @staticmethod
    def _message(action: _Action) -> str:
        return PEER_PREFIX + msgspec.json.encode(action).decode()
