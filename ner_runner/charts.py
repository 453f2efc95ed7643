"""PNG charts for a run: per-entity P/R/F and the learning curve.

Each function returns the numbers it actually drew, read back from the matplotlib artists, and writes
them beside the PNG as JSON, so what a chart shows can be checked against `evaluation.json` and the
metrics journal. matplotlib runs on the Agg backend: no display is needed on a server or in CI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .report import per_type_scores


def _figure(width: float, height: float) -> Any:
    """A figure on the Agg canvas, without pyplot: no global backend state, safe in any process."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def read_metrics_journal(path: Path) -> List[Dict[str, Any]]:
    """The per-step records MetricSink journalled (`tracking/metrics.jsonl`), in step order."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(json.loads(line))
    return sorted(records, key=lambda r: r["step"])


def per_entity_chart(scores: Mapping[str, Any], png: Path) -> Optional[Dict[str, Any]]:
    """Grouped horizontal P/R/F bars per entity type, worst F at the top; None when there are no types."""
    rows = per_type_scores(scores)
    if not rows:
        return None
    labels = [r.label for r in rows]
    height = 0.27
    fig = _figure(8, 1.2 + 0.6 * len(rows))
    ax = fig.subplots()
    drawn: Dict[str, List[float]] = {}
    for i, (key, color) in enumerate((("p", "#4c72b0"), ("r", "#dd8452"), ("f", "#55a868"))):
        values = [getattr(r, key) for r in rows]
        bars = ax.barh(
            [y + (i - 1) * height for y in range(len(rows))], values, height=height, label=key.upper(), color=color
        )
        drawn[key] = [float(b.get_width()) for b in bars]
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()  # worst first, at the top
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("dev score")
    ax.set_title(f"Dev P/R/F per entity type (overall F {float(scores.get('ents_f') or 0):.3f})")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    data = {"labels": [t.get_text() for t in ax.get_yticklabels()], **drawn}
    png.with_suffix(".json").write_text(json.dumps(data, indent=2))
    return data


def learning_curve(records: List[Dict[str, Any]], png: Path) -> Optional[Dict[str, Any]]:
    """Dev ents_f (and P, R) and the training losses against step; None when no step was evaluated."""
    steps_rec = [r for r in records if "ents_f" in r.get("metrics", {})]
    if not steps_rec:
        return None
    steps = [int(r["step"]) for r in steps_rec]
    loss_keys = sorted({k for r in steps_rec for k in r["metrics"] if k.startswith("loss/")})
    fig = _figure(8, 6)
    top, bottom = fig.subplots(2, 1, sharex=True)
    drawn: Dict[str, Any] = {"steps": steps, "scores": {}, "losses": {}}
    for key, style in (("ents_f", "-o"), ("ents_p", "--"), ("ents_r", ":")):
        if all(key in r["metrics"] for r in steps_rec):
            (line,) = top.plot(steps, [r["metrics"][key] for r in steps_rec], style, label=key, markersize=3)
            drawn["scores"][key] = [float(v) for v in line.get_ydata()]
    top.set_ylabel("dev score")
    top.set_ylim(0, 1.05)
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    top.set_title("Learning curve")
    for key in loss_keys:
        points = [(int(r["step"]), r["metrics"][key]) for r in steps_rec if key in r["metrics"]]
        (line,) = bottom.plot([s for s, _ in points], [v for _, v in points], "-", label=key)
        drawn["losses"][key] = [float(v) for v in line.get_ydata()]
    bottom.set_xlabel("step")
    bottom.set_ylabel("training loss")
    if loss_keys:
        bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    png.with_suffix(".json").write_text(json.dumps(drawn, indent=2))
    return drawn
