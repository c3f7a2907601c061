from streams.inference.moderation import Thresholds, decide

THRESHOLDS = Thresholds(review=0.5, block=0.9)


def scores(offensive: float, hate: float) -> dict[str, dict[str, float]]:
    return {"offensive": {"offensive": offensive}, "hate": {"hate": hate}}


def test_allow_below_review() -> None:
    decision = decide(scores(0.1, 0.2), THRESHOLDS)
    assert (decision.action, decision.reasons) == ("allow", [])


def test_review_names_the_heads_over_the_threshold() -> None:
    decision = decide(scores(0.6, 0.5), THRESHOLDS)
    assert (decision.action, decision.reasons) == ("review", ["hate", "offensive"])


def test_block_at_the_block_threshold() -> None:
    assert decide(scores(0.2, 0.9), THRESHOLDS).action == "block"
