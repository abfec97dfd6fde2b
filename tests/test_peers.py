"""Announced admin actions (`llmux.peers`): what a process does with a message it cannot use."""

from __future__ import annotations

import structlog

from llmux.peers import PEER_PREFIX, Peers


def test_unreadable_announcement_is_skipped_with_a_warning() -> None:
    """A message this version cannot read (another version's) is logged and ignored."""
    with structlog.testing.capture_logs() as logs:
        Peers().received(PEER_PREFIX + '{"origin": "x", "do": "explode"}')
    assert [entry["event"] for entry in logs] == ["peer_action_unreadable"]
