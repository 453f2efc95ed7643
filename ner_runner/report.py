"""Where a model fails: per-entity scores worst first, label errors by kind, and the end-of-run summary.

The error breakdown follows spaCy's own entity scorer (`spacy.scorer.get_ner_prf`) span for span, so
its counts reproduce the P/R/F in `evaluation.json`: every false negative is a missed, wrong-label or
boundary error and every false positive a spurious, wrong-label or boundary error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

# (start, end, label) in tokens of the reference (gold) doc, like spaCy's scorer
Span = Tuple[int, int, str]
NONE = "(none)"
ERROR_KINDS = ("wrong_label", "boundary", "missed", "spurious")


# --------------------------------------------------------------------------- tables


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str], align: str = "") -> str:
    """A plain fixed-width table; `align` holds 'l' or 'r' per column (default: first left, rest right)."""
    cells = [[str(h) for h in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    align = align or "l" + "r" * (len(header) - 1)

    def fmt(row: List[str]) -> str:
        return "  ".join(
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)
        ).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    out = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join("" if c is None else str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------- per-entity scores


@dataclass(frozen=True)
class TypeScore:
    label: str
    p: float
    r: float
    f: float


def per_type_scores(scores: Mapping[str, Any]) -> List[TypeScore]:
    """spaCy's `ents_per_type`, worst F first (ties: lower recall first, then by name)."""
    rows = [
        TypeScore(label, float(prf.get("p") or 0.0), float(prf.get("r") or 0.0), float(prf.get("f") or 0.0))
        for label, prf in (scores.get("ents_per_type") or {}).items()
    ]
    return sorted(rows, key=lambda s: (s.f, s.r, s.label))


# --------------------------------------------------------------------------- error breakdown


@dataclass
class ExampleDiff:
    """Gold against predicted entities of one example, in the scorer's terms."""

    correct: List[Span] = field(default_factory=list)
    wrong_label: List[Tuple[Span, Span]] = field(default_factory=list)  # same span, other label
    boundary: List[Tuple[Span, Span]] = field(default_factory=list)  # overlapping, other boundaries
    missed: List[Span] = field(default_factory=list)  # gold with no overlapping prediction
    spurious: List[Span] = field(default_factory=list)  # prediction with no overlapping gold
    pred_labels: List[str] = field(default_factory=list)  # every predicted label the scorer saw

    @property
    def n_errors(self) -> int:
        return len(self.wrong_label) + len(self.boundary) + len(self.missed) + len(self.spurious)


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def diff_spans(gold: Iterable[Span], pred: Iterable[Span]) -> ExampleDiff:
    """Classify gold and predicted spans: exact match, then same span, then overlap, then the rest."""
    diff = ExampleDiff()
    gold_left = sorted(set(gold))
    pred_left = []
    for span in sorted(pred):
        if span in gold_left:
            diff.correct.append(span)
            gold_left.remove(span)
        else:
            pred_left.append(span)
    for g in list(gold_left):
        same = next((p for p in pred_left if p[:2] == g[:2]), None)
        if same is not None:
            diff.wrong_label.append((g, same))
            gold_left.remove(g)
            pred_left.remove(same)
    for g in list(gold_left):
        near = next((p for p in pred_left if _overlaps(g, p)), None)
        if near is not None:
            diff.boundary.append((g, near))
            gold_left.remove(g)
            pred_left.remove(near)
    diff.missed = gold_left
    diff.spurious = pred_left
    return diff


def diff_example(eg: Any) -> ExampleDiff:
    """Scored spans of a spaCy `Example`, mapped onto the gold tokens exactly as the scorer does.

    A prediction that cannot be aligned, or that covers tokens without gold annotation, is neither right
    nor wrong for spaCy and is left out here too.
    """
    gold = [(e.start, e.end, e.label_) for e in eg.reference.ents]
    pred: List[Span] = []
    labels: List[str] = []
    if not eg.reference.has_annotation("ENT_IOB"):
        return ExampleDiff()
    align = eg.alignment.x2y
    for ent in eg.predicted.ents:
        labels.append(ent.label_)
        indices = align[ent.start : ent.end]
        if not len(indices):
            continue
        g_span = eg.reference[indices[0] : indices[-1] + 1]
        if all(t.ent_iob != 0 for t in g_span):
            pred.append((int(indices[0]), int(indices[-1]) + 1, ent.label_))
    diff = diff_spans(gold, pred)
    diff.pred_labels = labels
    return diff


def _prf(tp: int, fp: int, fn: int) -> Dict[str, float]:
    # the same arithmetic as spacy.scorer.PRFScore
    p = tp / (tp + fp + 1e-100)
    r = tp / (tp + fn + 1e-100)
    return {"p": p, "r": r, "f": 2 * ((p * r) / (p + r + 1e-100))}


def confusion_summary(diffs: Sequence[ExampleDiff]) -> Dict[str, Any]:
    """Label errors over a dev set: counts by kind, per label, and which labels get confused."""
    labels: Dict[str, Counter] = {}

    def lab(name: str) -> Counter:
        return labels.setdefault(name, Counter())

    wrong: Counter = Counter()
    boundary: Counter = Counter()
    for d in diffs:
        for name in d.pred_labels:
            lab(name)
        for _, _, label in d.correct:
            lab(label)["correct"] += 1
        for g, p in d.wrong_label:
            wrong[(g[2], p[2])] += 1
            lab(g[2])["wrong_label_gold"] += 1
            lab(p[2])["wrong_label_pred"] += 1
        for g, p in d.boundary:
            boundary[(g[2], p[2])] += 1
            lab(g[2])["boundary_gold"] += 1
            lab(p[2])["boundary_pred"] += 1
        for _, _, label in d.missed:
            lab(label)["missed"] += 1
        for _, _, label in d.spurious:
            lab(label)["spurious"] += 1

    per_label: Dict[str, Any] = {}
    for name in sorted(labels):
        c = labels[name]
        tp = c["correct"]
        fn = c["missed"] + c["wrong_label_gold"] + c["boundary_gold"]
        fp = c["spurious"] + c["wrong_label_pred"] + c["boundary_pred"]
        per_label[name] = {
            "gold": tp + fn,
            "predicted": tp + fp,
            "correct": tp,
            "missed": c["missed"],
            "spurious": c["spurious"],
            "wrong_label_gold": c["wrong_label_gold"],
            "wrong_label_pred": c["wrong_label_pred"],
            "boundary_gold": c["boundary_gold"],
            "boundary_pred": c["boundary_pred"],
            "tp": tp,
            "fp": fp,
            "fn": fn,
            **_prf(tp, fp, fn),
        }
    totals = {
        "correct": sum(len(d.correct) for d in diffs),
        **{kind: sum(len(getattr(d, kind)) for d in diffs) for kind in ERROR_KINDS},
    }
    tp = sum(v["tp"] for v in per_label.values())
    fp = sum(v["fp"] for v in per_label.values())
    fn = sum(v["fn"] for v in per_label.values())
    return {
        "examples": len(diffs),
        "examples_with_errors": sum(1 for d in diffs if d.n_errors),
        "totals": totals,
        "overall": {"tp": tp, "fp": fp, "fn": fn, **_prf(tp, fp, fn)},
        "per_label": per_label,
        "wrong_label": [
            {"gold": g, "predicted": p, "count": n} for (g, p), n in sorted(wrong.items(), key=lambda x: (-x[1], x[0]))
        ],
        "boundary": [
            {"gold": g, "predicted": p, "count": n}
            for (g, p), n in sorted(boundary.items(), key=lambda x: (-x[1], x[0]))
        ],
    }


def confusion_markdown(summary: Mapping[str, Any]) -> str:
    """The confusion summary as tables a person reads (also fine as plain text)."""
    t = summary["totals"]
    parts = [
        "# Label errors on dev",
        "",
        f"{summary['examples']} examples, {summary['examples_with_errors']} with at least one error. "
        "wrong label: right span, other label; boundary: overlapping span, other boundaries; "
        "missed: no prediction overlaps the gold entity; spurious: no gold entity overlaps the prediction.",
        "",
        markdown_table(
            [(k.replace("_", " "), t[k]) for k in ("correct", *ERROR_KINDS)], ("kind", "count")
        ),
        "",
        "## Per label (worst F first)",
        "",
    ]
    order = sorted(summary["per_label"].items(), key=lambda kv: (kv[1]["f"], kv[1]["r"], kv[0]))
    parts.append(
        markdown_table(
            [
                (
                    name,
                    v["gold"],
                    v["predicted"],
                    v["correct"],
                    v["missed"],
                    v["spurious"],
                    v["wrong_label_gold"],
                    v["wrong_label_pred"],
                    v["boundary_gold"],
                    f"{v['f']:.3f}",
                )
                for name, v in order
            ],
            (
                "label",
                "gold",
                "predicted",
                "correct",
                "missed",
                "spurious",
                "predicted as another label",
                "another label predicted as this",
                "boundary",
                "F",
            ),
        )
    )
    for key, title in (("wrong_label", "Wrong label"), ("boundary", "Boundary errors")):
        if summary[key]:
            parts += [
                "",
                f"## {title} (gold -> predicted)",
                "",
                markdown_table([(r["gold"], r["predicted"], r["count"]) for r in summary[key]], ("gold", "predicted", "count")),
            ]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- the run summary


def mlflow_run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI, or how to open one for a local store."""
    parts = urlsplit(tracking_uri)
    if parts.scheme in ("http", "https"):
        host = parts.netloc.rsplit("@", 1)[-1]  # never print credentials
        base = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    return (
        f"mlflow ui --backend-store-uri {tracking_uri}  then open "
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{seconds:.1f}s"


def _score(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def format_summary(
    scores: Mapping[str, Any],
    *,
    model_path: Any,
    wall_time_s: float,
    run_link: Optional[str],
    support: Optional[Mapping[str, int]] = None,
    examples: Optional[int] = None,
) -> str:
    """The block printed at the end of a run: what it scored, where the model and run are, how long."""
    lines = ["", "=" * 24 + " ner-runner run summary " + "=" * 24]
    dev = f"dev  P {_score(scores.get('ents_p'))}  R {_score(scores.get('ents_r'))}  F {_score(scores.get('ents_f'))}"
    if examples is not None:
        dev += f"  ({examples} examples)"
    lines.append(dev)
    rows = per_type_scores(scores)
    if rows:
        header = ["entity type (worst first)", "P", "R", "F"]
        body: List[List[Any]] = [[r.label, _score(r.p), _score(r.r), _score(r.f)] for r in rows]
        if support is not None:
            header.append("gold")
            for row, r in zip(body, rows):
                row.append(support.get(r.label, 0))
        lines += ["", format_table(body, header)]
    lines += [
        "",
        f"model:     {model_path}",
        f"MLflow:    {run_link or 'not tracked (tracking.enabled=false)'}",
        f"wall time: {_duration(wall_time_s)}",
        "=" * 72,
    ]
    return "\n".join(lines)
