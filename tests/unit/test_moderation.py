import numpy as np
import pytest
from tokenizers import Encoding

from streams.app import build_runtime
from streams.errors import SettingsError
from streams.inference import explain
from streams.inference.moderation import Thresholds, decide, explain_flag
from streams.inference.session import TextModel
from streams.settings import Settings

THRESHOLDS = Thresholds.uniform(review=0.5, block=0.9)


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


def test_a_post_in_an_unsupported_language_is_never_blocked() -> None:
    decision = decide(scores(0.99, 0.99), THRESHOLDS, supported=False)
    assert (decision.action, decision.reasons, decision.supported) == ("review", ["hate", "offensive"], False)


def test_thresholds_are_per_head_and_the_model_recommends_them() -> None:
    recommended = {"offensive": {"review": 0.7, "block": 0.95}, "hate": {"review": 0.6, "block": 0.9}}
    thresholds = Thresholds.resolve(recommended, None, None)
    assert thresholds.review == {"offensive": 0.7, "hate": 0.6}
    decision = decide(scores(0.65, 0.65), thresholds)
    assert (decision.action, decision.reasons) == ("review", ["hate"])
    assert decide(scores(0.92, 0.2), thresholds).action == "review"
    assert decide(scores(0.2, 0.92), thresholds).action == "block"


def test_settings_thresholds_replace_the_models_for_every_head() -> None:
    recommended = {"offensive": {"review": 0.7, "block": 0.95}, "hate": {"review": 0.6, "block": 0.9}}
    thresholds = Thresholds.resolve(recommended, 0.3, None)
    assert thresholds.review == {"offensive": 0.3, "hate": 0.3}
    assert thresholds.block == {"offensive": 0.95, "hate": 0.9}
    with pytest.raises(SettingsError, match="0 < review <= block <= 1"):
        Thresholds.resolve(recommended, 0.97, None)


def test_a_model_without_recommendations_falls_back_to_half_and_ninety() -> None:
    assert Thresholds.resolve({}, None, None) == Thresholds.uniform(0.5, 0.9)


def test_the_worker_takes_its_thresholds_from_the_settings(text_model: TextModel) -> None:
    settings = Settings.from_env({"STREAMS_BLOCK_THRESHOLD": "0.97", "STREAMS_DEV_MODE": "1"})
    thresholds = build_runtime(settings, text_model).thresholds
    assert set(thresholds.block.values()) == {0.97}
    assert thresholds.review == {h: v["review"] for h, v in text_model.manifest.thresholds.items()}


@pytest.mark.parametrize("value", ["1.5", "0", "high"])
def test_a_threshold_setting_out_of_range_fails_with_one_line(value: str) -> None:
    with pytest.raises(SettingsError, match="STREAMS_REVIEW_THRESHOLD") as error:
        Settings.from_env({"STREAMS_REVIEW_THRESHOLD": value})
    assert "\n" not in str(error.value)


def test_the_explanation_of_a_flagged_post_names_words_of_the_post(text_model: TextModel) -> None:
    text = "@user you are a pathetic idiot, shut up and go away"
    [prediction] = text_model.predict([text])
    decision = decide({h: r.scores for h, r in prediction.heads.items()}, Thresholds.uniform(0.3, 0.99))
    assert decision.action == "review"
    explained = explain_flag(text_model, text, decision)
    assert explained.explanation["head"] in decision.reasons
    words = [str(w["token"]) for w in explained.explanation["words"]]  # type: ignore[attr-defined]
    assert words and all(word in text for word in words)
    assert "idiot" in words[:2]


def test_an_allowed_post_gets_no_flag_explanation(text_model: TextModel) -> None:
    decision = decide(scores(0.01, 0.01), THRESHOLDS)
    assert explain_flag(text_model, "what a lovely morning", decision).explanation == {}


def test_settings_that_contradict_the_models_thresholds_stop_the_worker_at_start(text_model: TextModel) -> None:
    with pytest.raises(SettingsError, match="0 < review <= block <= 1"):
        build_runtime(Settings.from_env({"STREAMS_REVIEW_THRESHOLD": "0.99", "STREAMS_DEV_MODE": "1"}), text_model)


def test_the_posts_own_row_gives_the_same_explanation_as_running_it_again(
    text_model: TextModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "@user you are a pathetic idiot, shut up and go away"
    [prediction] = text_model.predict([text])
    decision = decide({h: r.scores for h, r in prediction.heads.items()}, Thresholds.uniform(0.3, 0.99))
    rows: list[int] = []
    run = text_model.raw_outputs

    def counted(encodings: list[Encoding]) -> list[np.ndarray]:
        rows.append(len(encodings))
        return run(encodings)

    monkeypatch.setattr(text_model, "raw_outputs", counted)
    reused = explain_flag(text_model, text, decision, prediction)
    rows_reused = sum(rows)
    again = explain_flag(text_model, text, decision)
    assert reused.explanation == again.explanation
    assert sum(rows) - rows_reused == rows_reused + 1  # without the post's own row, the post runs once more


def test_a_long_flagged_post_occludes_only_its_strongest_words(
    text_model: TextModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    filler = " ".join(f"word{i} apple river garden" for i in range(5))
    text = f"@user you pathetic idiot {filler}"
    [prediction] = text_model.predict([text])
    decision = decide({h: r.scores for h, r in prediction.heads.items()}, Thresholds.uniform(0.05, 0.99))
    assert decision.action == "review"
    occluded: list[str] = []
    probabilities = text_model.head_probabilities

    def recorded(texts: list[str], head: str) -> np.ndarray:
        occluded.extend(texts)
        return probabilities(texts, head)

    monkeypatch.setattr(text_model, "head_probabilities", recorded)
    words = explain_flag(text_model, text, decision, prediction).explanation["words"]
    assert len(occluded) == explain.OCCLUDED_WORDS
    assert isinstance(words, list) and "idiot" in [word["token"] for word in words]
