"""The text model: tokenise a batch, run the ONNX graph once, split it into heads.

One encoder pass serves every head. The graph returns the logits of all heads
side by side, each head's per-token terms (whose sum plus the bias is exactly
the logit), and the pooled, L2-normalised embedding.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from streams.errors import ModelError
from streams.inference.explain import Contribution, decomposition_weights, top_contributions
from streams.inference.folder import Manifest, load_manifest
from streams.inference.normalize import normalize_for_model

log = logging.getLogger(__name__)

REQUIRED_OUTPUTS = ("logits", "token_logits", "embedding")
# Sub-batches are padded separately after sorting by length: tweets vary from
# 5 to 60 tokens, and padding a 5-token post to 60 wastes most of the work.
SUB_BATCH = 32
# On a GPU a call costs a launch per operator whatever its size: fewer, larger calls.
GPU_SUB_BATCH = 256
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


@dataclass(frozen=True)
class HeadResult:
    label: str
    scores: dict[str, float]


@dataclass(frozen=True)
class GraphRow:
    """One input's raw graph outputs, kept with its prediction: a flagged post's
    explanation starts from them instead of running the post again."""

    encoding: Encoding
    logits: np.ndarray
    token_logits: np.ndarray


@dataclass(frozen=True)
class Prediction:
    heads: dict[str, HeadResult]
    embedding: list[float]
    explanation: list[Contribution]
    tokens: int
    truncated: bool
    row: GraphRow | None = field(default=None, repr=False, compare=False)


class TextModel:
    """A loaded model folder. ``predict`` is thread-safe (ONNX Runtime's run is)."""

    def __init__(
        self, folder: Path, threads: int = 1, max_chars: int = 10_000, calibrated: bool = True, device: str = "cpu"
    ) -> None:
        self.folder = folder
        self.providers = execution_providers(device, ort.get_available_providers())
        self.manifest: Manifest = load_manifest(folder)
        self.max_chars = max_chars
        # Temperature scaling per head (fitted on val by models/calibrate.py):
        # logits / T keep the ranking and make the probabilities mean what they say.
        self.temperatures = self.manifest.temperatures if calibrated else {}
        self.tokenizer = self._load_tokenizer()
        # Dynamic int8 quantisation scales activations per call, so a post's
        # scores would depend on its batch-mates: such graphs run one post per
        # call (as fast here: short posts then need no padding), and use their
        # threads to run posts side by side rather than inside one small matmul.
        row_by_row = bool(self.manifest.raw.get("batch_dependent"))
        self.pool = ThreadPoolExecutor(threads, "onnx-rows") if row_by_row and threads > 1 else None
        self.session = self._load_session(1 if row_by_row else threads)
        on_gpu = self.session.get_providers()[0] == CUDA_PROVIDER
        self._warn_about_device(on_gpu, row_by_row)
        self.sub_batch = 1 if row_by_row else GPU_SUB_BATCH if on_gpu else SUB_BATCH
        log.info(
            "model %s loaded from %s: provider %s, %d thread(s), %s",
            self.manifest.tag,
            folder,
            self.session.get_providers()[0],
            threads,
            "one post per call" if row_by_row else f"batches of up to {self.sub_batch}",
        )

    def _warn_about_device(self, on_gpu: bool, row_by_row: bool) -> None:
        if CUDA_PROVIDER in self.providers and not on_gpu:
            # The build has the provider but CUDA or cuDNN did not load (ONNX Runtime logged why).
            log.warning(
                "STREAMS_MODEL_DEVICE=cuda, but ONNX Runtime's CUDA provider did not start: the model runs on the CPU"
            )
        if on_gpu and row_by_row:
            log.warning(
                "%s is int8 with dynamic quantisation, which runs one post per call and mostly on the CPU: "
                "on a GPU serve an fp16 folder (python models/export.py --fp16 --out FOLDER; STREAMS_MODEL_DIR=FOLDER)",
                self.folder,
            )

    def _load_tokenizer(self) -> Tokenizer:
        tokenizer = Tokenizer.from_file(str(self.folder / self.manifest.tokenizer_file))
        tokenizer.enable_truncation(self.manifest.max_length)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        return tokenizer

    def _load_session(self, threads: int) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning threads burn the shared cores the event loop also needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        path = self.folder / self.manifest.onnx_file
        try:
            session = ort.InferenceSession(str(path), options, providers=self.providers)
        except Exception as exc:  # ORT raises its own untyped errors
            raise ModelError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        self._check_signature(session)
        return session

    def _check_signature(self, session: ort.InferenceSession) -> None:
        inputs = {i.name for i in session.get_inputs()}
        outputs = {o.name for o in session.get_outputs()}
        missing_in = set(self.manifest.inputs) - inputs
        extra_in = inputs - set(self.manifest.inputs)
        missing_out = set(REQUIRED_OUTPUTS) - outputs
        if missing_in or extra_in or missing_out:
            raise ModelError(
                f"{self.folder}: ONNX graph does not fit the manifest: "
                f"missing inputs {sorted(missing_in)}, unexpected inputs {sorted(extra_in)}, "
                f"missing outputs {sorted(missing_out)}"
            )

    def prepare(self, text: str) -> tuple[str, bool]:
        """The model's view of a text, and whether it was truncated."""
        truncated = len(text) > self.max_chars
        return normalize_for_model(text[: self.max_chars]), truncated

    def predict(self, texts: list[str]) -> list[Prediction]:
        prepared = [self.prepare(text) for text in texts]
        encodings = self.tokenizer.encode_batch([text for text, _ in prepared])
        order = sorted(range(len(texts)), key=lambda i: sum(encodings[i].attention_mask))
        groups = [order[start : start + self.sub_batch] for start in range(0, len(order), self.sub_batch)]
        batches = [[(prepared[i][0], encodings[i]) for i in rows] for rows in groups]
        outputs = self.pool.map(self._run, batches) if self.pool else map(self._run, batches)
        results: list[Prediction | None] = [None] * len(texts)
        for rows, predictions in zip(groups, outputs, strict=True):
            for row, prediction in zip(rows, predictions, strict=True):
                results[row] = prediction
        return [replace(p, truncated=prepared[i][1] or p.truncated) for i, p in enumerate(results) if p is not None]

    def raw_outputs(self, encodings: list[Encoding]) -> list[np.ndarray]:
        """The graph's (logits, token_logits, embedding) for a group of encodings."""
        length = max(sum(e.attention_mask) for e in encodings)
        ids = np.array([e.ids[:length] for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask[:length] for e in encodings], dtype=np.int64)
        return list(self.session.run(list(REQUIRED_OUTPUTS), {"input_ids": ids, "attention_mask": mask}))

    def head_probabilities(self, texts: list[str], head: str) -> np.ndarray:
        """One head's calibrated probabilities [texts, classes] for model input texts
        (already normalised): the occlusion explanation's extra rows."""
        encodings = self.tokenizer.encode_batch(texts)
        groups = [encodings[start : start + self.sub_batch] for start in range(0, len(encodings), self.sub_batch)]
        run = self.pool.map(self.raw_outputs, groups) if self.pool else map(self.raw_outputs, groups)
        logits = np.concatenate([outputs[0] for outputs in run])[:, self.manifest.head_slices[head]]
        return np.stack([self.probabilities(head, row) for row in logits])

    def label_evidence(
        self, text: str, head: str, label: int, prediction: Prediction | None = None
    ) -> tuple[float, list[float]]:
        """For a model input text: p(label) under ``head``, and each word's decomposition
        weight toward it. From the post's own graph row when ``prediction`` carries one,
        else from one more row."""
        row = prediction.row if prediction is not None else None
        if row is None:
            encoding = self.tokenizer.encode(text)
            logits, token_logits, _ = self.raw_outputs([encoding])
            row = GraphRow(encoding, logits[0], token_logits[0])
        part = self.manifest.head_slices[head]
        base = float(self.probabilities(head, row.logits[part])[label])
        return base, decomposition_weights(text, row.encoding, row.token_logits[:, part], label)

    def probabilities(self, head: str, logits: np.ndarray) -> np.ndarray:
        return _softmax(logits / self.temperatures.get(head, 1.0))

    def _run(self, batch: list[tuple[str, Encoding]]) -> list[Prediction]:
        encodings = [encoding for _, encoding in batch]
        logits, token_logits, embedding = self.raw_outputs(encodings)
        return [
            self._postprocess(batch[i][0], encodings[i], logits[i], token_logits[i], embedding[i])
            for i in range(len(encodings))
        ]

    def _postprocess(
        self, text: str, encoding: Encoding, logits: np.ndarray, token_logits: np.ndarray, embedding: np.ndarray
    ) -> Prediction:
        heads: dict[str, HeadResult] = {}
        for head, part in self.manifest.head_slices.items():
            probs = self.probabilities(head, logits[part])
            labels = self.manifest.heads[head]
            heads[head] = HeadResult(
                label=labels[int(probs.argmax())],
                scores={label: round(float(p), 5) for label, p in zip(labels, probs, strict=True)},
            )
        explained = self.manifest.explained_head
        part = self.manifest.head_slices[explained]
        label_index = self.manifest.heads[explained].index(heads[explained].label)
        explanation = top_contributions(text, encoding, token_logits[:, part], label_index)
        tokens = sum(encoding.attention_mask)
        truncated = tokens >= self.manifest.max_length and encoding.overflowing != []
        # Rounded as float64: a float32 rounded to 5 decimals is written back as its exact
        # binary value (0.0742 -> 0.07419999688863754), 2.5 times the JSON for the same numbers.
        rounded = np.round(embedding.astype(np.float64), 5).tolist()
        return Prediction(heads, rounded, explanation, tokens, truncated, GraphRow(encoding, logits, token_logits))


def execution_providers(device: str, available: list[str]) -> list[str]:
    """ONNX Runtime's providers for ``device``: CUDA first where asked for and present
    (operators it lacks run on the CPU), else the CPU, saying so once."""
    if device == "cuda":
        if CUDA_PROVIDER in available:
            return [CUDA_PROVIDER, CPU_PROVIDER]
        log.warning(
            "STREAMS_MODEL_DEVICE=cuda, but this ONNX Runtime has no CUDA provider (it has %s): the model runs "
            "on the CPU; install onnxruntime-gpu in place of onnxruntime to use a GPU", ", ".join(available)
        )  # fmt: skip
    return [CPU_PROVIDER]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()
