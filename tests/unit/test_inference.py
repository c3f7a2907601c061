"""The inference module on the served model: heads, batching, explanations, bad input."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import orjson
import pytest
from onnx import TensorProto, helper

from streams.errors import ModelError
from streams.inference.folder import MANIFEST, sha256_of
from streams.inference.session import SUB_BATCH, TextModel

TWEETS = [
    "I love this so much, best day ever!",
    "This is the worst service I have ever had. Never again.",
    "The meeting is at 3pm in room 204.",
    "@user you are a complete idiot",
    "Can't wait for the weekend #excited",
    "😂😂😂",
    "هذا رائع جدا",
    "今日はとても楽しかった",
]


def test_every_head_has_a_label_and_probabilities(text_model: TextModel) -> None:
    for prediction in text_model.predict(TWEETS):
        for head, labels in text_model.manifest.heads.items():
            result = prediction.heads[head]
            assert result.label in labels
            assert set(result.scores) == set(labels)
            assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-3)
        assert np.linalg.norm(prediction.embedding) == pytest.approx(1.0, abs=1e-3)


def test_the_embedding_is_written_with_five_decimals_not_as_binary_fractions(text_model: TextModel) -> None:
    # Every enriched record carries it: 384 numbers of at most 8 characters ("-0.01235"), not 20.
    [prediction] = text_model.predict(["the new phone is great, the battery lasts all day"])
    assert all(round(value, 5) == value for value in prediction.embedding)
    assert max(len(orjson.dumps(value)) for value in prediction.embedding) <= 8
    assert len(orjson.dumps(prediction.embedding)) < 384 * 9


def test_batched_results_equal_one_at_a_time(text_model: TextModel) -> None:
    batched = text_model.predict(TWEETS)
    for text, together in zip(TWEETS, batched, strict=True):
        [alone] = text_model.predict([text])
        for head in together.heads:
            assert together.heads[head].label == alone.heads[head].label
            for label, score in together.heads[head].scores.items():
                assert score == pytest.approx(alone.heads[head].scores[label], abs=1e-4)


def test_token_terms_sum_exactly_to_the_logits(text_model: TextModel) -> None:
    """logits - sum of token terms is the bias: the same vector for every input."""
    biases = []
    for text in ("great game tonight", "I hate waiting in line for hours"):
        encoding = text_model.tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        logits, terms, _ = text_model.session.run(None, {"input_ids": ids, "attention_mask": mask})
        biases.append(logits[0] - terms[0].sum(axis=0))
    np.testing.assert_allclose(biases[0], biases[1], atol=1e-4)


def test_explanations_are_words_of_the_text(text_model: TextModel) -> None:
    [prediction] = text_model.predict(["Absolutely loving the new update, great work!"])
    words = [c.token for c in prediction.explanation]
    assert 0 < len(words) <= 5
    assert all(word in "Absolutely loving the new update, great work!" for word in words)


def test_long_text_is_truncated_and_flagged(text_model: TextModel) -> None:
    [prediction] = text_model.predict(["word " * 2000])
    assert prediction.truncated
    assert prediction.tokens == text_model.manifest.max_length


def test_empty_and_control_only_text_get_a_defined_result(text_model: TextModel) -> None:
    for text in ("", "\x00\x01", "   "):
        [prediction] = text_model.predict([text])
        assert prediction.explanation == []
        assert prediction.heads["sentiment"].label in ("negative", "neutral", "positive")


def test_predict_is_thread_safe(text_model: TextModel) -> None:
    expected = [p.heads["sentiment"].scores for p in text_model.predict(TWEETS)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: text_model.predict(TWEETS), range(8)))
    for result in results:
        for prediction, scores in zip(result, expected, strict=True):
            assert prediction.heads["sentiment"].scores == pytest.approx(scores, abs=1e-4)


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    return copy


def test_altered_file_fails_at_load_naming_it(model_copy: Path) -> None:
    with (model_copy / "tokenizer.json").open("ab") as handle:
        handle.write(b" ")
    with pytest.raises(ModelError, match="tokenizer.json has sha256"):
        TextModel(model_copy)


def test_missing_file_fails_at_load_naming_it(model_copy: Path) -> None:
    (model_copy / "model.onnx").unlink()
    with pytest.raises(ModelError, match="model.onnx is missing"):
        TextModel(model_copy)


def test_folder_without_manifest_is_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is not a model folder"):
        TextModel(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        TextModel(tmp_path / "nowhere")


def tiny_graph_with_wrong_inputs() -> onnx.ModelProto:
    """A valid ONNX graph whose input is named ``ids``, not ``input_ids``."""
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "tokens"])
    out = helper.make_tensor_value_info("logits", TensorProto.INT64, ["batch", "tokens"])
    graph = helper.make_graph([helper.make_node("Identity", ["ids"], ["logits"])], "tiny", [ids], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_graph_that_does_not_fit_the_manifest(model_copy: Path) -> None:
    onnx.save(tiny_graph_with_wrong_inputs(), model_copy / "model.onnx")
    manifest = orjson.loads((model_copy / MANIFEST).read_bytes())
    manifest["sha256"]["model.onnx"] = sha256_of(model_copy / "model.onnx")
    (model_copy / MANIFEST).write_bytes(orjson.dumps(manifest))
    with pytest.raises(ModelError, match=r"missing inputs \['attention_mask', 'input_ids'\]"):
        TextModel(model_copy)


class PoisonedModel:
    """The real model, failing on any call that includes a poisonous text (as an ONNX Runtime error would)."""

    def __init__(self, model: TextModel) -> None:
        self.model = model
        self.manifest = model.manifest
        self.calls: list[int] = []

    def predict(self, texts: list[str]) -> list:
        self.calls.append(len(texts))
        if any("POISON" in text for text in texts):
            raise RuntimeError("onnxruntime: invalid input")
        return self.model.predict(texts)


def test_a_model_failure_is_retried_post_by_post_and_only_the_failing_post_is_dead_lettered(
    text_model: TextModel,
) -> None:
    import orjson

    from streams.errors import Reason, Stage
    from streams.inference.moderation import Thresholds
    from streams.ingest.enrich import enrich_batch
    from streams.ingest.parse import parse_post
    from streams.privacy.policy import PrivacyPolicy

    texts = ["what a lovely morning", "POISON pill", "this is terrible news"]
    posts = [
        parse_post(orjson.dumps({"id": str(i), "user_id": "u", "text": t, "created_at": 0}), 1 << 20)
        for i, t in enumerate(texts)
    ]
    model = PoisonedModel(text_model)
    results, _ = enrich_batch(model, posts, Thresholds.uniform(0.5, 0.9), PrivacyPolicy.create(b"k" * 16, "", ""))  # type: ignore[arg-type]
    assert model.calls == [3, 1, 1, 1]  # the batch, then each post alone
    assert [r.record is not None for r in results] == [True, False, True]
    error = results[1].error
    assert error is not None and error.reason == Reason.MODEL_FAILURE and error.stage == Stage.INFERENCE


def test_calibrated_probabilities_sum_to_one_and_keep_the_label(text_model: TextModel, model_dir: Path) -> None:
    assert text_model.temperatures, "the served model carries its calibration"
    raw = TextModel(model_dir, calibrated=False)
    for calibrated, uncalibrated in zip(text_model.predict(TWEETS), raw.predict(TWEETS), strict=True):
        for head, result in calibrated.heads.items():
            assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-4)
            assert result.label == uncalibrated.heads[head].label


def test_a_temperature_above_one_softens_the_probabilities(model_copy: Path) -> None:
    manifest = orjson.loads((model_copy / MANIFEST).read_bytes())
    manifest["calibration"] = {"method": "test", "temperature": {"sentiment": 3.0}}
    (model_copy / MANIFEST).write_bytes(orjson.dumps(manifest))
    soft = TextModel(model_copy).predict([TWEETS[0]])[0].heads["sentiment"]
    sharp = TextModel(model_copy, calibrated=False).predict([TWEETS[0]])[0].heads["sentiment"]
    assert soft.label == sharp.label and soft.scores[soft.label] < sharp.scores[sharp.label]


def test_sentiment_explanations_list_content_words_only(text_model: TextModel) -> None:
    from streams.inference.explain import is_function_word

    for text in ("Not bad at all, actually pretty good", "I am a gay man", "So proud of my team today, we did it!"):
        [prediction] = text_model.predict([text])
        words = [c.token for c in prediction.explanation]
        assert words and not any(is_function_word(word) for word in words), (text, words)
        assert all(c.weight > 0 for c in prediction.explanation)


def test_the_decomposition_adds_up_to_the_logit_difference(text_model: TextModel) -> None:
    from streams.inference.explain import decomposition_weights

    text = "Worst customer service ever. Waited two hours and nobody helped."
    encoding = text_model.tokenizer.encode(text)
    logits, terms, _ = text_model.raw_outputs([encoding])
    part = text_model.manifest.head_slices["sentiment"]
    label = int(logits[0][part].argmax())
    weights = decomposition_weights(text, encoding, terms[0][:, part], label)
    relative = terms[0][:, part].sum(axis=0)
    assert sum(weights) == pytest.approx(float(relative[label] - relative.mean()), abs=1e-3)


def test_a_post_in_another_language_is_marked_unsupported_and_never_blocked(text_model: TextModel) -> None:
    from streams.inference.moderation import Thresholds
    from streams.ingest.enrich import enrich_batch
    from streams.ingest.parse import parse_post
    from streams.privacy.policy import PrivacyPolicy

    texts = ["you are a stupid idiot", "eres un idiota estúpido, cállate ya"]
    posts = [
        parse_post(orjson.dumps({"id": str(i), "user_id": "u", "text": t, "created_at": 0}), 1 << 20)
        for i, t in enumerate(texts)
    ]
    # Thresholds so low that every post would be blocked if its language were supported.
    thresholds = Thresholds.uniform(0.0001, 0.0002)
    results, _ = enrich_batch(text_model, posts, thresholds, PrivacyPolicy.create(b"k" * 16, "", ""))
    english, spanish = (r.record for r in results)
    assert english is not None and spanish is not None
    assert english["moderation"]["action"] == "block" and english["sentiment"]["supported"]
    assert spanish["language"] == "es"
    assert spanish["moderation"]["action"] == "review"
    assert spanish["moderation"]["supported"] is False
    assert spanish["sentiment"]["supported"] is False and spanish["emotion"]["supported"] is False
    assert "explanation" in spanish["moderation"]


def test_the_enrich_agent_loads_the_language_identifier_before_its_first_batch(text_model: TextModel) -> None:
    from streams.app import build_runtime
    from streams.inference import language
    from streams.settings import Settings

    language._identifier.cache_clear()
    build_runtime(Settings.from_env({"STREAMS_AGENTS": "enrich", "STREAMS_DEV_MODE": "1"}), text_model)
    assert language._identifier.cache_info().currsize == 1  # the first post finds it loaded


def test_cuda_is_used_where_the_runtime_has_it_and_the_cpu_otherwise_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from streams.inference.session import execution_providers

    gpu_build = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("cuda", gpu_build) == gpu_build
    assert execution_providers("cpu", gpu_build) == ["CPUExecutionProvider"]
    with caplog.at_level("WARNING"):
        assert execution_providers("cuda", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    [record] = caplog.records
    assert "no CUDA provider" in record.getMessage() and "onnxruntime-gpu" in record.getMessage()


def test_a_worker_asked_for_cuda_on_a_cpu_build_serves_the_model_on_the_cpu(model_dir: Path) -> None:
    model = TextModel(model_dir, device="cuda")  # this machine's onnxruntime is the CPU build
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    assert model.sub_batch in (1, SUB_BATCH)  # sized for the CPU, not for a GPU
    assert model.predict(["fine day"])[0].heads
