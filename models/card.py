"""Write MODEL_CARD.md for a model folder from its manifest, evaluation.json and live examples.

    python models/card.py [models/social-minilm]

evaluation.json holds the figures the card reports: calibration and thresholds
(models/calibrate.py), the bias audit (benchmarks/bias.py --save), the
explanation metrics (benchmarks/explanations.py --save) and, under ``before``,
the same figures measured on the previous version with the same scripts.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.inference.folder import EVALUATION  # noqa: E402
from streams.inference.moderation import Thresholds, decide, explain_flag  # noqa: E402
from streams.inference.session import TextModel  # noqa: E402

EXAMPLE_SEED = 11  # real examples are drawn by this seed, not picked by hand
EXAMPLES_PER_HEAD = 5


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f}%"


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def metrics_table(manifest: dict[str, Any], before: dict[str, Any]) -> str:
    metrics, old = manifest.get("metrics_val", {}), before.get("metrics_val", {})
    rows = [
        ("sentiment", "macro-averaged recall", 71.3),
        ("offensive", "macro-F1", 79.5),
        ("hate", "macro-F1", 46.6),
        ("emotion", "macro-F1", 76.1),
    ]
    lines = [
        f"| head | metric | this model | {before.get('model', 'before')} | RoBERTa-base (test) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {head} | {metric} | {metrics.get(head, 'n/a')} | {old.get(head, 'n/a')} | {roberta} |"
        for head, metric, roberta in rows
    ]
    return "\n".join(lines)


def calibration_table(evaluation: dict[str, Any]) -> str:
    lines = ["| head | temperature | ECE before | ECE after |", "|---|---|---|---|"]
    for head, c in evaluation.get("calibration", {}).items():
        lines.append(f"| {head} | {c['temperature']:.3f} | {c['ece_before']:.4f} | {c['ece_after']:.4f} |")
    return "\n".join(lines)


def thresholds_table(evaluation: dict[str, Any]) -> str:
    chosen = evaluation.get("thresholds", {}).get("chosen", {})
    tables = evaluation.get("thresholds", {}).get("val", {})
    lines = [
        "| head | review | precision / recall on val | block | precision / recall on val |",
        "|---|---|---|---|---|",
    ]
    for head, t in chosen.items():
        at = {row["threshold"]: row for row in tables.get(head, [])}
        review, block = at.get(t["review"], {}), at.get(t["block"], {})
        lines.append(
            f"| {head} | {t['review']} | {_num(review.get('precision'), 2)} / {_num(review.get('recall'), 2)} "
            f"| {t['block']} | {_num(block.get('precision'), 2)} / {_num(block.get('recall'), 2)} |"
        )
    return "\n".join(lines)


def tradeoff_table(evaluation: dict[str, Any]) -> str:
    tables = evaluation.get("thresholds", {}).get("val", {})
    heads = list(tables)
    lines = [
        "| threshold | " + " | ".join(f"{h} precision / recall" for h in heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        cells = []
        for head in heads:
            row = next((r for r in tables[head] if abs(r["threshold"] - t) < 1e-9), None)
            cells.append("n/a" if row is None else f"{row['precision']:.2f} / {row['recall']:.2f}")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def audit_summary(evaluation: dict[str, Any], before: dict[str, Any]) -> str:
    now, old = evaluation.get("bias_audit", {}), before.get("bias_audit", {})
    rows = [
        ("benign statements flagged", "benign_flagged", _pct),
        ("benign statements blocked", "benign_blocked", lambda v: "n/a" if v is None else str(v)),
        ("toxic statements flagged", "toxic_flagged", _pct),
        ("terms with > 10% of benign flagged", "terms_over_10pct", lambda v: "n/a" if v is None else str(v)),
        ("worst term, flagged", "worst_term_flagged", _pct),
        ("gap between best and worst term", "flagged_gap", _pct),
        ("overall AUC", "overall_auc", _num),
        ("lowest subgroup AUC", "lowest_subgroup_auc", _num),
        ("lowest BPSN AUC", "lowest_bpsn", _num),
    ]
    # The real-tweet figures, flattened for the table.
    now = {**now, **{f"real_{k}": v for k, v in now.get("real_tweets", {}).items()}}
    old = {**old, **{f"real_{k}": v for k, v in old.get("real_tweets", {}).items()}}
    rows += [
        ("real benign tweets naming an identity, flagged", "real_with_identity_flagged", _pct),
        ("other real benign tweets, flagged", "real_without_identity_flagged", _pct),
    ]
    lines = [f"| | this model | {old.get('model', 'before')} |", "|---|---|---|"]
    for name, key, fmt in rows:
        extra_now = f" ({now['worst_term']})" if key == "worst_term_flagged" and now else ""
        extra_old = f" ({old['worst_term']})" if key == "worst_term_flagged" and old else ""
        lines.append(f"| {name} | {fmt(now.get(key))}{extra_now} | {fmt(old.get(key))}{extra_old} |")
    return "\n".join(lines)


def per_term_table(evaluation: dict[str, Any]) -> str:
    lines = [
        "| group | term | flagged | blocked | negative | subgroup AUC | BPSN | BNSP |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in evaluation.get("bias_audit", {}).get("per_term", []):
        lines.append(
            f"| {r['group']} | {r['term']} | {_pct(r['flagged'])} | {_pct(r['blocked'])} | {_pct(r['negative'])} "
            f"| {_num(r['subgroup_auc'])} | {_num(r['bpsn_auc'])} | {_num(r['bnsp_auc'])} |"
        )
    return "\n".join(lines)


def explanation_table(evaluation: dict[str, Any]) -> str:
    methods = evaluation.get("explanations", {}).get("methods", {})
    lines = [
        "| head | method | comprehensiveness ↑ | sufficiency ↓ | function words in top 3 ↓ | ms per post |",
        "|---|---|---|---|---|---|",
    ]
    for head, by_method in methods.items():
        for name, m in by_method.items():
            lines.append(
                f"| {head} | {name} | {m['comprehensiveness']:.3f} | {m['sufficiency']:.3f} "
                f"| {100 * m['function_words_top3']:.0f}% | {m['ms_per_post']:.1f} |"
            )
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def real_examples(model: TextModel) -> str:
    """Five TweetEval val posts per head, drawn by a fixed seed, with the words behind the label or flag."""
    from data import load_all

    _, val = load_all()
    rng = random.Random(EXAMPLE_SEED)
    thresholds = Thresholds.resolve(model.manifest.thresholds, None, None)
    lines = ["| head | post (TweetEval val) | label | words behind it |", "|---|---|---|---|"]
    short = [t for t in val["sentiment"].texts if len(t) <= 140]
    sample = rng.sample(short, EXAMPLES_PER_HEAD)
    for text, p in zip(sample, model.predict(sample), strict=True):
        s = p.heads["sentiment"]
        words = ", ".join(f"{c.token} ({c.weight:+.2f})" for c in p.explanation[:4])
        lines.append(f"| sentiment | {_cell(text)} | {s.label} {s.scores[s.label]:.2f} | {_cell(words)} |")
    for head in ("offensive", "hate"):
        texts = [t for t in val[head].texts if len(t) <= 140]
        rng.shuffle(texts)
        shown = 0
        for start in range(0, len(texts), 64):
            chunk = texts[start : start + 64]
            for text, p in zip(chunk, model.predict(chunk), strict=True):
                decision = decide({h: r.scores for h, r in p.heads.items()}, thresholds)
                if decision.action == "allow" or max(decision.reasons, key=decision.scores.get) != head:
                    continue
                explained = explain_flag(model, text, decision)
                words = explained.explanation.get("words", [])
                listed = ", ".join(f"{w['token']} ({w['weight']:+.2f})" for w in words[:4])  # type: ignore[index]
                lines.append(
                    f"| {head} | {_cell(text)} | {decision.action} {decision.scores[head]:.2f} | {_cell(listed)} |"
                )
                shown += 1
                if shown == EXAMPLES_PER_HEAD:
                    break
            if shown == EXAMPLES_PER_HEAD:
                break
    return "\n".join(lines)


def previous_thresholds(before: dict[str, Any]) -> str:
    """The previous version's review / block thresholds, per head (1.x had none of its own: 0.5 / 0.9)."""
    chosen = before.get("thresholds") or {"all heads": {"review": 0.5, "block": 0.9}}
    return "; ".join(f"{head} {t['review']} / {t['block']}" for head, t in chosen.items())


def distillation_line(training: dict[str, Any]) -> str:
    """The card's line on distillation, for a student model (empty for a fine-tuned one)."""
    d = training.get("distillation")
    if not d:
        return ""
    layers = d.get("layers_kept", [])
    return (
        f"- Distilled from {d.get('teacher', 'the teacher')} (`models/distill.py`): {len(layers)} of its layers "
        f"kept ({', '.join(map(str, layers))}), trained on {d.get('data', 'its data')} against {d.get('losses', '')}; "
        f"{d.get('epochs')} epochs, {d.get('steps')} steps, on {d.get('device', 'n/a')}.\n"
    )


def render(folder: Path) -> str:
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    path = folder / EVALUATION
    evaluation = orjson.loads(path.read_bytes()) if path.exists() else {}
    before = evaluation.get("before", {})
    model = TextModel(folder, threads=2)
    heads = "\n".join(f"- **{head}**: {', '.join(labels)}" for head, labels in manifest["heads"].items())
    size_mb = (folder / manifest["onnx"]).stat().st_size / 1e6
    stream = evaluation.get("general_stream", {})
    explanations = evaluation.get("explanations", {})
    distilled = manifest.get("training", {}).get("distillation")
    layer_note = f", distilled to {len(distilled['layers_kept'])} of its 6 layers" if distilled else ""
    return f"""# {manifest["name"]} {manifest["version"]}

A multi-task English tweet model: one pass of a fine-tuned MiniLM encoder
({manifest["base_encoder"]}{layer_note}) feeds a linear head per task, and yields the pooled,
L2-normalised embedding. ONNX, {manifest["quantisation"]}, {size_mb:.0f} MB.
Version 2 is retrained against identity-term bias, serves calibrated probabilities,
recommends its own moderation thresholds, and explains flags as well as sentiment.

## Heads
{heads}
- **embedding**: {manifest["embedding_dim"]} floats, mean of the content tokens' final states, L2-normalised
- **explanations**: the content words behind the sentiment label (every post) and behind a
  moderation flag (flagged posts)

## Validation metrics (TweetEval val, official metrics, x100)

{metrics_table(manifest, before)}

Measured on val through the worker's own inference module on the served ONNX file
(`python models/evaluate.py {folder}`). The official test sets are held out and evaluated
independently; HatEval's test set is known to be much harder than its val.

## Calibration

Each head's logits are divided by a temperature fitted on val (Guo et al. 2017; the worker
applies it, `calibration.temperature` in the manifest), so a score of 0.8 means about
8 in 10. Expected calibration error (15 bins, top-label confidence), cross-fitted: the
temperature is fitted on one half of val and the error measured on the other, both ways
(`python models/calibrate.py {folder}`).

{calibration_table(evaluation)}

## Moderation thresholds

A post is reviewed when a head's calibrated score reaches that head's review threshold, and
blocked at its block threshold. The block threshold is the lowest from which val precision
stays at or above 0.95 (with at least 20 posts flagged); review, at or above 0.75.

{thresholds_table(evaluation)}

On a general stream, the SemEval-2017 pool's tweets whose id ends in 0
({stream.get("posts", "n/a")} distinct tweets of 2013–2016, never used as moderation training
rows), these thresholds send **{_pct(stream.get("flagged"))} of posts to `posts.flagged`** and block
**{_pct(stream.get("blocked"))}**; the uncalibrated scores at the thresholds of 1.x (review 0.5,
block 0.9) sent {_pct(stream.get("flagged_uncalibrated_0.5"))} and blocked
{_pct(stream.get("blocked_uncalibrated_0.9"))}.

**Picking your own.** `STREAMS_REVIEW_THRESHOLD` and `STREAMS_BLOCK_THRESHOLD` set one value for
both heads (default `model`: the values above). Precision and recall on val at each threshold
are in `evaluation.json` (`thresholds.val`); a selection of them:

{tradeoff_table(evaluation)}

A team with reviewers to spare lowers review for recall; one that must not remove posts
wrongly keeps block where precision is 0.95 or higher. Val has far more offensive posts
(a third) than a general stream, so a stream's precision at the same threshold is lower.

## Bias audit

`python benchmarks/bias.py` (Dixon et al. 2018; Kiritchenko & Mohammad 2018; the AUCs of
Borkan et al. 2019): {evaluation.get("bias_audit", {}).get("terms", "n/a")} identity terms in 7 groups, 16 benign
and 10 toxic templates each, at the model's thresholds. The previous column is the same
script on {before.get("model", "the previous version")} at its thresholds then ({previous_thresholds(before)}).

{audit_summary(evaluation, before)}

Per term (this model):

{per_term_table(evaluation)}

The templates are the audit's own and were never trained on; the training rows against
this bias (below) come from a different grammar, real tweets and counterfactual copies.
The last two rows are real tweets the SemEval-2017 annotators labelled positive or neutral,
from the pool's held-out tenth (never a training row for moderation): the share flagged
among those that name one of the audit's identity terms, and among the others.

## Explanations

Two methods, chosen from these figures (`python benchmarks/explanations.py`, ERASER metrics
of DeYoung et al. 2020 averaged over the top 1, 3 and 5 words, on
{explanations.get("posts_per_head", "n/a")} val posts per head; offensive and hate on the
posts the model flags):

{explanation_table(evaluation)}

- **Sentiment, every post: decomposition over content words.** Pooling is the mean over
  content tokens and each head is linear, so a head's logit is exactly
  `sum_t (h_t · w_k) / n + b_k`; the graph outputs these per-token terms and a word's weight
  is its share toward the label (exact, and free: the same run). Function words, `@user`
  and links are not listed: their contextual states carry their neighbours' meaning ("a"
  in "I am a gay man"), which made them top words before.
- **Moderation, flagged posts only: occlusion of the strongest content words.** A word's
  weight is how much the flagging head's probability drops when the word is deleted: the
  most faithful method here, paid only for the few posts that are flagged. Only the 8
  content words the decomposition ranks highest get a row (a flagged tweet has 13 on
  average, up to 30): about half the rows of occluding every content word, for nearly the
  same faithfulness (last two rows of each moderation head above). A flagged post's rows
  delay the posts behind it in its worker, so their cost is latency, not only CPU.

Five val posts per head, drawn by a fixed seed (the words behind the label or the flag):

{real_examples(model)}

## Language support

The model reads English. The worker identifies each post's language (py3langid, restricted
to 64 common languages); a post in another language keeps its scores but is marked
`supported: false` on sentiment, emotion and moderation, and is never blocked automatically
(at most reviewed). `python benchmarks/language.py`: on 144 short posts in 12 other
languages, none was taken for English and 97% got their exact language; 0.2% of 2,000
English val tweets are marked unsupported (none of the 120 of at most 60 characters).

## Training
- Data: {manifest["provenance"]}.
- Sentiment: the SemEval-2017 task 4A pool, minus every tweet whose normalised text
  matches a TweetEval sentiment val tweet (1,995 of 2,000 found) and duplicates:
  47,446 tweets. Offensive, hate, emotion: TweetEval train.
- Against identity-term bias (`models/identity.py`, `--fairness`): counterfactual copies of
  offensive and hate training tweets that name an identity, with the term swapped for
  another of its kind and the label kept (Garg et al. 2019); 1,200 positive or neutral
  pool tweets that name an identity, as neither offensive nor hateful, and copies of some
  with the term swapped (Dixon et al. 2018 used Wikipedia the same way); 1,400 statements
  from a grammar of everyday posts about people, over 93 identity terms, 15% of them
  group-targeted abuse, so that the predicate, not the group, decides.
{distillation_line(manifest.get("training", {}))}- Normalisation (training and serving): {manifest["normalisation"]}.
- Max length {manifest["max_length"]} tokens (tweets average ~30).
- Run: {orjson.dumps(manifest.get("training", {})).decode()}
- Rebuild: `pip install -e '.[train]' && models/build.sh`

## Intended use and limits
For monitoring the tone and toxicity of public English posts in aggregate, and for
routing posts to human moderators. Not for decisions about individuals without review.
Trained on English tweets of 2013–2019; slang drifts, and the hate and offensive labels
carry the annotators' biases. The audit covers identity terms in English templates; it
does not cover dialect (African-American English is known to be over-flagged by models
trained on these sets, Sap et al. 2019), reclaimed slurs, or identity named by
names and pictures. Fine-tuning moved the embedding away from the general-purpose
sentence space of the base encoder toward these tasks.

## Licence
{manifest.get("licence", "see the README")}.

## Citation
Barbieri et al., TweetEval, Findings of EMNLP 2020. Rosenthal, Farra, Nakov, SemEval-2017
Task 4, 2017. Zampieri et al., OffensEval 2019. Basile et al., HatEval 2019. Mohammad et al.,
SemEval-2018 Task 1. Wang et al., MiniLM, 2020. Dixon et al., Measuring and Mitigating
Unintended Bias in Text Classification, AIES 2018. Borkan et al., Nuanced Metrics for
Measuring Unintended Bias, WWW 2019. Kiritchenko & Mohammad, Examining Gender and Race Bias
in Two Hundred Sentiment Analysis Systems, *SEM 2018. Garg et al., Counterfactual Fairness
in Text Classification through Robustness, AIES 2019. Guo et al., On Calibration of Modern
Neural Networks, ICML 2017. DeYoung et al., ERASER, ACL 2020.
"""


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models/social-minilm")
    (folder / "MODEL_CARD.md").write_text(render(folder), encoding="utf-8")
    print(f"wrote {folder / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
