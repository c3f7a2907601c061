"""The window scheduler's closing decisions, driven by a list of events and a clock: no broker."""

from __future__ import annotations

from streams.trends import scheduler as sched
from streams.trends import windows
from streams.trends.scheduler import WindowScheduler
from streams.trends.state import Mention, TermState, WatermarkMessage, new_state
from streams.trends.windows import WindowSpec

SPEC = WindowSpec(window_ms=60_000, hop_size_ms=0, hop_ms=60_000, grace_ms=10_000)
T0 = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
SOURCES = ["0", "1"]
IDLE_S = 30.0


def report(marks: dict[str, int], caught_up: tuple[str, ...] = (), at: float = 0.0) -> WatermarkMessage:
    return {"wm": marks, "caught_up": list(caught_up), "at": at}


def term(name: str, *offsets_and_ms: tuple[int, int]) -> TermState:
    state = new_state("hashtag", name, 0)
    for offset, ms in offsets_and_ms:
        windows.add(state, Mention(f"p{offset}", ms, "u", 1, 0, 0, offset), SPEC, None)
    return state


def started() -> WindowScheduler:
    return WindowScheduler.start(SPEC, SOURCES, IDLE_S, now=0.0)


def test_a_window_closes_only_once_every_source_passed_its_end_plus_the_grace() -> None:
    s = started()
    s.on_batch("a", term("a", (0, T0 + 5_000)))
    assert s.notify_at() == T0 + 60_000 + 10_000
    s.on_watermark(report({"0": T0 + 90_000, "1": T0 + 20_000}), now=1.0, caught_up_since=0.0)
    assert s.current == T0 + 20_000 and s.on_notify() == []  # source 1 holds the watermark back
    s.on_watermark(report({"1": T0 + 69_999}), now=2.0, caught_up_since=0.0)
    assert s.on_notify() == []  # still within the grace
    s.on_watermark(report({"1": T0 + 70_000}), now=3.0, caught_up_since=0.0)
    assert s.on_notify() == ["a"]
    assert s.on_notify() == []  # handed over once


def test_the_watermark_never_moves_back() -> None:
    s = started()
    s.on_watermark(report({"0": T0 + 50_000, "1": T0 + 50_000}), now=1.0, caught_up_since=0.0)
    s.on_watermark(report({"0": T0 + 10_000, "1": T0 + 10_000}), now=2.0, caught_up_since=0.0)
    assert s.current == T0 + 50_000


def test_a_caught_up_source_does_not_hold_the_watermark_but_a_stale_claim_does() -> None:
    s = started()
    s.on_batch("a", term("a", (0, T0 + 5_000)))
    s.on_watermark(report({"0": T0 + 80_000}), now=1.0, caught_up_since=0.0)
    s.on_watermark(report({"1": T0 + 1_000}, caught_up=("1",), at=100.0), now=2.0, caught_up_since=200.0)
    assert s.on_notify() == []  # the claim predates a rebalance: source 1 still counts
    s.on_watermark(report({"1": T0 + 1_000}, caught_up=("1",), at=300.0), now=3.0, caught_up_since=200.0)
    assert s.current == T0 + 80_000 and s.on_notify() == ["a"]


def test_a_silent_source_stops_holding_the_watermark_after_the_idle_time() -> None:
    s = started()
    s.on_batch("a", term("a", (0, T0 + 5_000)))
    s.on_watermark(report({"0": T0 + 80_000, "1": T0}), now=1.0, caught_up_since=0.0)
    assert s.on_notify() == []
    s.advance(now=1.0 + IDLE_S, caught_up_since=0.0)  # every source idle: the stream has paused
    assert s.on_notify() == ["a"]


def test_terms_are_handed_over_in_due_order_and_rescheduled_after_closing() -> None:
    s = started()
    late, early = term("late", (0, T0 + 65_000)), term("early", (1, T0 + 5_000))
    s.on_batch("late", late)
    s.on_batch("early", early)
    s.on_watermark(report({"0": T0 + 200_000, "1": T0 + 200_000}), now=1.0, caught_up_since=0.0)
    assert s.on_notify() == ["early", "late"]
    for key, state in (("early", early), ("late", late)):
        windows.close(state, s.current or 0, SPEC, windows.detect.DetectorSettings(), s.warm)
        s.on_batch(key, state)
    assert s.notify_at() is None and set(s.snapshot()["idle"]) == {"early", "late"}


def test_new_mentions_move_a_term_to_its_new_due_time() -> None:
    s = started()
    state = term("a", (0, T0 + 5_000))
    s.on_batch("a", state)
    windows.add(state, Mention("p9", T0 - 60_000, "u", 1, 0, 0, 9), SPEC, None)  # an earlier window
    s.on_batch("a", state)
    assert s.notify_at() == T0 + 10_000 and s.snapshot()["scheduled"] == {"a": T0 + 10_000}


def test_warm_up_and_forgetting_idle_terms() -> None:
    s = started()
    s.on_watermark(report({"0": T0, "1": T0}), now=1.0, caught_up_since=0.0)
    assert not s.warm
    state = term("quiet", (0, T0 + 5_000))
    s.on_batch("quiet", state)
    later = T0 + sched.WARM_UP_WINDOWS * SPEC.window_ms
    s.on_watermark(report({"0": later, "1": later}), now=2.0, caught_up_since=0.0)
    assert s.warm and s.on_notify() == ["quiet"]
    windows.close(state, later, SPEC, windows.detect.DetectorSettings(), True)
    s.on_batch("quiet", state)
    assert s.stale() == []  # closed recently
    far = later + (sched.FORGET_AFTER_WINDOWS + 2) * SPEC.window_ms
    s.on_watermark(report({"0": far, "1": far}), now=3.0, caught_up_since=0.0)
    assert s.stale() == ["quiet"] and s.stale() == []
