"""A displaCy page of dev examples: gold and predicted entities side by side, errors first.

People judge an NER model by reading its mistakes; this page puts the worst examples at the top and
names each error under its row. The number of examples is bounded so the page stays small enough to
open from the MLflow UI.
"""

from __future__ import annotations

import colorsys
import html
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from .report import ExampleDiff

DEFAULT_LIMIT = 50

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; table-layout: fixed; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.6em; vertical-align: top; text-align: left; }}
th.idx, td.idx {{ width: 4em; color: #666; }}
tr.error td.idx {{ border-left: 4px solid #c0392b; }}
tr.ok td.idx {{ border-left: 4px solid #27ae60; }}
td.errors {{ font-size: 0.85em; color: #8e2b20; padding-top: 0; }}
.legend span {{ padding: 0.2em 0.5em; margin-right: 0.4em; border-radius: 0.3em; font-size: 0.85em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{intro}</p>
<p class="legend">{legend}</p>
<table>
<thead><tr><th class="idx">#</th><th>gold</th><th>predicted</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def label_colors(labels: Sequence[str]) -> Dict[str, str]:
    """Distinct pastel colours, stable for a given label set."""
    names = sorted(set(labels))
    colors = {}
    for i, name in enumerate(names):
        r, g, b = colorsys.hls_to_rgb((i * 0.618034) % 1.0, 0.82, 0.65)
        colors[name] = "#{:02x}{:02x}{:02x}".format(int(r * 255), int(g * 255), int(b * 255))
    return colors


def _render(text: str, ents: List[Dict[str, Any]], colors: Dict[str, str]) -> str:
    from spacy import displacy

    return displacy.render(
        [{"text": text, "ents": ents, "title": None}],
        style="ent",
        manual=True,
        page=False,
        jupyter=False,
        options={"colors": colors},
    )


def _quote(doc: Any, span: Tuple[int, int, str]) -> str:
    return f"{doc[span[0]:span[1]].text!r} {span[2]}"


def _error_notes(eg: Any, diff: ExampleDiff) -> List[str]:
    ref = eg.reference
    notes = [f"wrong label: {_quote(ref, g)} predicted as {p[2]}" for g, p in diff.wrong_label]
    notes += [f"boundary: gold {_quote(ref, g)}, predicted {_quote(ref, p)}" for g, p in diff.boundary]
    notes += [f"missed: {_quote(ref, g)}" for g in diff.missed]
    notes += [f"spurious: {_quote(ref, p)}" for p in diff.spurious]
    return notes


def order_for_review(examples: Sequence[Any], diffs: Sequence[ExampleDiff]) -> List[int]:
    """Indices: most errors first, then correct examples with entities, then those without any."""

    def key(i: int) -> Tuple[int, int, int]:
        has_ents = bool(len(examples[i].reference.ents) or len(examples[i].predicted.ents))
        return (-diffs[i].n_errors, 0 if has_ents else 1, i)

    return sorted(range(len(examples)), key=key)


def write_predictions_html(
    examples: Sequence[Any], diffs: Sequence[ExampleDiff], path: Path, *, limit: int = DEFAULT_LIMIT
) -> Dict[str, Any]:
    """Write the page; returns what it shows (examples, entity counts) for the run's records."""
    order = order_for_review(examples, diffs)[: max(0, limit)]
    labels = {e.label_ for eg in examples for doc in (eg.reference, eg.predicted) for e in doc.ents}
    colors = label_colors(list(labels))
    rows = []
    gold_count = pred_count = 0
    for i in order:
        eg, diff = examples[i], diffs[i]
        text = eg.reference.text
        gold = [{"start": e.start_char, "end": e.end_char, "label": e.label_} for e in eg.reference.ents]
        pred = [{"start": e.start_char, "end": e.end_char, "label": e.label_} for e in eg.predicted.ents]
        gold_count += len(gold)
        pred_count += len(pred)
        status = "error" if diff.n_errors else "ok"
        rows.append(
            f'<tr class="{status}" id="ex{i}"><td class="idx">{i}</td>'
            f'<td class="gold">{_render(text, gold, colors)}</td>'
            f'<td class="pred">{_render(text, pred, colors)}</td></tr>'
        )
        notes = _error_notes(eg, diff)
        if notes:
            rows.append(
                '<tr class="notes"><td></td><td class="errors" colspan="2">'
                + "<br>".join(html.escape(n) for n in notes)
                + "</td></tr>"
            )
    with_errors = sum(1 for d in diffs if d.n_errors)
    intro = (
        f"Showing {len(order)} of {len(examples)} dev examples, errors first "
        f"({with_errors} have at least one error). # is the example's position in the dev set."
    )
    legend = "".join(
        f'<span style="background: {c}">{html.escape(name)}</span>' for name, c in sorted(colors.items())
    )
    page = _PAGE.format(
        title="Dev predictions: gold vs predicted", intro=html.escape(intro), legend=legend, rows="\n".join(rows)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return {
        "shown": len(order),
        "examples": len(examples),
        "examples_with_errors": with_errors,
        "gold_entities": gold_count,
        "predicted_entities": pred_count,
        "shown_indices": order,
    }
