"""Fallback planning: which group comes next, the `"*"` default, the hop bound and cycles."""

from __future__ import annotations

from llmux.fallbacks import FallbackPolicy, FallbackWalk, Reason

EXHAUSTED = Reason.EXHAUSTED


def walk_all(walk: FallbackWalk, origin: str, reason: Reason = EXHAUSTED) -> list[str]:
    """Fail every group the walk offers and collect them in order."""
    out: list[str] = []
    failed = origin
    while (group := walk.next(failed, reason)) is not None:
        out.append(group)
        failed = group
    return out


def test_groups_in_list_order() -> None:
    """A group's fallbacks are tried in the order configured."""
    policy = FallbackPolicy(general={"a": ("b", "c")})
    assert walk_all(FallbackWalk(policy, "a"), "a") == ["b", "c"]


def test_star_is_the_default() -> None:
    """A group without its own entry uses the `"*"` entry."""
    policy = FallbackPolicy(general={"*": ("z",), "a": ("b",)})
    assert walk_all(FallbackWalk(policy, "x"), "x") == ["z"]
    assert FallbackWalk(policy, "a").next("a", EXHAUSTED) == "b"


def test_own_entry_beats_star() -> None:
    """A group with an entry of its own never uses `"*"` for its first hop."""
    policy = FallbackPolicy(general={"*": ("z",), "a": ("b",)})
    walk = FallbackWalk(policy, "a")
    assert walk.next("a", EXHAUSTED) == "b"


def test_depth_first() -> None:
    """A fallback group's own fallbacks come before its siblings."""
    policy = FallbackPolicy(general={"a": ("b", "c"), "b": ("d",)})
    assert walk_all(FallbackWalk(policy, "a"), "a") == ["b", "d", "c"]


def test_cycles_never_revisit() -> None:
    """a -> b -> a is cut: no group is tried twice, the origin included."""
    policy = FallbackPolicy(general={"a": ("b",), "b": ("a", "c"), "c": ("b",)})
    assert walk_all(FallbackWalk(policy, "a"), "a") == ["b", "c"]


def test_star_pointing_at_itself_ends() -> None:
    """`"*": [x]` reached from x itself offers nothing more."""
    policy = FallbackPolicy(general={"*": ("x",)})
    assert walk_all(FallbackWalk(policy, "a"), "a") == ["x"]


def test_hops_are_bounded() -> None:
    """At most `max_hops` (3 by default) fallback groups are tried per request."""
    policy = FallbackPolicy(general={"a": ("b",), "b": ("c",), "c": ("d",), "d": ("e",)})
    assert walk_all(FallbackWalk(policy, "a"), "a") == ["b", "c", "d"]


def test_reason_picks_the_map() -> None:
    """Context-window and content-policy failures use their own maps, not `fallbacks`."""
    policy = FallbackPolicy(
        general={"a": ("g",)}, context_window={"a": ("long",)}, content_policy={"*": ("lax",)}
    )
    assert FallbackWalk(policy, "a").next("a", Reason.CONTEXT_WINDOW) == "long"
    assert FallbackWalk(policy, "a").next("a", Reason.CONTENT_POLICY) == "lax"
    assert FallbackWalk(policy, "a").next("a", EXHAUSTED) == "g"


def test_no_context_window_entry_means_no_fallback() -> None:
    """A context-window failure with no context-window entry does not use `fallbacks`."""
    policy = FallbackPolicy(general={"a": ("g",)})
    assert FallbackWalk(policy, "a").next("a", Reason.CONTEXT_WINDOW) is None


def test_disabled_switch() -> None:
    """`fallback_enabled: false` offers no fallback at all."""
    policy = FallbackPolicy(enabled=False, general={"a": ("b",)})
    assert FallbackWalk(policy, "a").next("a", EXHAUSTED) is None


def test_unknown_groups_are_dropped() -> None:
    """`restricted_to` keeps only groups that are served."""
    policy = FallbackPolicy(general={"a": ("gone", "b")}).restricted_to({"a", "b"})
    assert walk_all(FallbackWalk(policy, "a"), "a") == ["b"]
