"""Label errors, summary text, charts and the predictions page on hand-made examples with known answers."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Dict, List, Optional

import pytest

from ner_runner.charts import learning_curve, per_entity_chart, read_metrics_journal
from ner_runner.predictions_html import write_predictions_html
from ner_runner.report import (
    confusion_markdown,
    confusion_summary,
    diff_example,
    diff_spans,
    format_summary,
    mlflow_run_link,
    per_type_scores,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _doc(nlp, words, ents: Optional[List[Optional[str]]] = None, spaces=None):
    from spacy.tokens import Doc

    return Doc(nlp.vocab, words=words, spaces=spaces, ents=ents)


@pytest.fixture(scope="module")
def examples():
    """Every kind of outcome once, plus what spaCy's scorer ignores and a tokenisation mismatch."""
    import spacy
    from spacy.training import Example

    nlp = spacy.blank("en")
    egs = []
    # correct PERSON, wrong label (ORG given as GPE), missed DATE
    words = ["Ann", "joined", "Acme", "in", "May"]
    ref = _doc(nlp, words, ["B-PERSON", "O", "B-ORG", "O", "B-DATE"])
    pred = _doc(nlp, words, ["B-PERSON", "O", "B-GPE", "O", "O"])
    egs.append(Example(pred, ref))
    # boundary (GPE "New York City" predicted as "New York") and spurious ORG
    words = ["New", "York", "City", "and", "friends"]
    ref = _doc(nlp, words, ["B-GPE", "I-GPE", "I-GPE", "O", "O"])
    pred = _doc(nlp, words, ["B-GPE", "I-GPE", "O", "O", "B-ORG"])
    egs.append(Example(pred, ref))
    # a prediction over tokens without gold annotation: neither right nor wrong
    words = ["see", "Bob", "there"]
    ref = _doc(nlp, words, ["O", None, "O"])
    pred = _doc(nlp, words, ["O", "B-PERSON", "O"])
    egs.append(Example(pred, ref))
    # other tokenisation in the prediction: "ACME-Corp" is one token there, three in the gold
    ref = _doc(nlp, ["ACME", "-", "Corp", "hires"], ["B-ORG", "I-ORG", "I-ORG", "O"], [False, False, True, False])
    pred = _doc(nlp, ["ACME-Corp", "hires"], ["B-ORG", "O"], [True, False])
    egs.append(Example(pred, ref))
    # nothing to find, nothing found
    words = ["quiet", "day"]
    egs.append(Example(_doc(nlp, words, ["O", "O"]), _doc(nlp, words, ["O", "O"])))
    return egs


def test_diff_spans_sorts_each_span_into_one_kind():
    gold = [(0, 1, "A"), (2, 3, "B"), (4, 6, "C"), (8, 9, "D")]
    pred = [(0, 1, "A"), (2, 3, "X"), (5, 7, "C"), (10, 11, "E")]
    d = diff_spans(gold, pred)
    assert d.correct == [(0, 1, "A")]
    assert d.wrong_label == [((2, 3, "B"), (2, 3, "X"))]
    assert d.boundary == [((4, 6, "C"), (5, 7, "C"))]
    assert d.missed == [(8, 9, "D")]
    assert d.spurious == [(10, 11, "E")]
    assert d.n_errors == 4


def test_confusion_reproduces_spacys_entity_scores(examples):
    from spacy.scorer import get_ner_prf

    expected = get_ner_prf(examples)
    summary = confusion_summary([diff_example(eg) for eg in examples])
    assert summary["totals"] == {"correct": 2, "wrong_label": 1, "boundary": 1, "missed": 1, "spurious": 1}
    assert summary["examples"] == 5 and summary["examples_with_errors"] == 2
    assert summary["wrong_label"] == [{"gold": "ORG", "predicted": "GPE", "count": 1}]
    assert summary["boundary"] == [{"gold": "GPE", "predicted": "GPE", "count": 1}]
    for key in ("p", "r", "f"):
        assert summary["overall"][key] == pytest.approx(expected[f"ents_{key}"])
    assert set(summary["per_label"]) == set(expected["ents_per_type"])
    for label, prf in expected["ents_per_type"].items():
        for key in ("p", "r", "f"):
            assert summary["per_label"][label][key] == pytest.approx(prf[key]), (label, key)
    org = summary["per_label"]["ORG"]
    assert (org["gold"], org["correct"], org["wrong_label_gold"], org["spurious"]) == (2, 1, 1, 1)
    assert summary["per_label"]["PERSON"]["predicted"] == 1  # the unannotated "Bob" is not counted

    md = confusion_markdown(summary)
    assert "| missed | 1 |" in md and "| ORG | GPE | 1 |" in md
    section = md.split("## Per label")[1].split("##")[0]
    labels_in_order = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")][1:]
    f_by_label = {k: v["f"] for k, v in summary["per_label"].items()}
    assert [f_by_label[l] for l in labels_in_order] == sorted(f_by_label.values())


def test_per_type_scores_are_worst_first():
    scores = {"ents_per_type": {"A": {"p": 1, "r": 1, "f": 1}, "B": {"p": 0.5, "r": 0.2, "f": 0.3}, "C": {"p": 0.2, "r": 0.5, "f": 0.3}}}
    assert [s.label for s in per_type_scores(scores)] == ["B", "C", "A"]
    assert per_type_scores({"ents_per_type": None}) == []


def test_summary_text_has_scores_table_model_link_and_time():
    scores = {"ents_p": 0.8, "ents_r": 0.6, "ents_f": 0.6857, "ents_per_type": {"A": {"p": 0.9, "r": 0.9, "f": 0.9}, "B": {"p": 0.5, "r": 0.25, "f": 0.3333}}}
    text = format_summary(scores, model_path="/m/model-best", wall_time_s=3725, run_link="http://x/#/r", support={"A": 7, "B": 3}, examples=12)
    assert "dev  P 0.800  R 0.600  F 0.686  (12 examples)" in text
    rows = [l.split() for l in text.splitlines() if l.startswith(("A ", "B "))]
    assert rows == [["B", "0.500", "0.250", "0.333", "3"], ["A", "0.900", "0.900", "0.900", "7"]]
    assert "model:     /m/model-best" in text and "MLflow:    http://x/#/r" in text
    assert "wall time: 1h 02m 05s" in text
    assert "not tracked" in format_summary({}, model_path="m", wall_time_s=1, run_link=None)


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000/#/experiments/3/runs/abc"),
        ("https://user:pw@mlflow.example.com/prefix/", "https://mlflow.example.com/prefix/#/experiments/3/runs/abc"),
        (
            "sqlite:///mlflow.db",
            "mlflow ui --backend-store-uri sqlite:///mlflow.db  then open http://127.0.0.1:5000/#/experiments/3/runs/abc",
        ),
    ],
)
def test_run_link(uri, expected):
    assert mlflow_run_link(uri, "3", "abc") == expected


def test_per_entity_chart_draws_the_scores_worst_first(tmp_path):
    scores = {"ents_f": 0.5, "ents_per_type": {"A": {"p": 0.9, "r": 0.8, "f": 0.85}, "B": {"p": 0.4, "r": 0.1, "f": 0.16}, "C": {"p": 0.5, "r": 0.5, "f": 0.5}}}
    data = per_entity_chart(scores, tmp_path / "per_entity.png")
    assert data["labels"] == ["B", "C", "A"]
    assert data["f"] == [0.16, 0.5, 0.85] and data["p"] == [0.4, 0.5, 0.9] and data["r"] == [0.1, 0.5, 0.8]
    assert (tmp_path / "per_entity.png").read_bytes().startswith(PNG_MAGIC)
    assert json.loads((tmp_path / "per_entity.json").read_text()) == data
    assert per_entity_chart({"ents_per_type": {}}, tmp_path / "none.png") is None


def test_learning_curve_plots_the_journal(tmp_path):
    journal = tmp_path / "metrics.jsonl"
    records = [
        {"step": 0, "metrics": {"wall_time_s": 9.0}},  # not an evaluation step
        {"step": 20, "metrics": {"ents_f": 0.4, "ents_p": 0.5, "ents_r": 0.33, "loss/ner": 50.0, "loss/tok2vec": 1.0}},
        {"step": 10, "metrics": {"ents_f": 0.2, "ents_p": 0.3, "ents_r": 0.15, "loss/ner": 90.0, "loss/tok2vec": 2.0}},
        {"step": 20, "metrics": {"dev_ents_f": 0.4}},
    ]
    journal.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    data = learning_curve(read_metrics_journal(journal), tmp_path / "lc.png")
    assert data["steps"] == [10, 20]
    assert data["scores"]["ents_f"] == [0.2, 0.4]
    assert data["losses"] == {"loss/ner": [90.0, 50.0], "loss/tok2vec": [2.0, 1.0]}
    assert (tmp_path / "lc.png").read_bytes().startswith(PNG_MAGIC)
    assert learning_curve([records[0]], tmp_path / "none.png") is None


class _Marks(HTMLParser):
    """Counts displaCy <mark> elements per column and the order of the example rows."""

    def __init__(self) -> None:
        super().__init__()
        self.cell: Optional[str] = None
        self.marks: Dict[str, int] = {"gold": 0, "pred": 0}
        self.rows: List[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td" and attrs.get("class") in ("gold", "pred"):
            self.cell = attrs["class"]
        elif tag == "tr" and attrs.get("id", "").startswith("ex"):
            self.rows.append(attrs["id"])
        elif tag == "mark" and self.cell:
            self.marks[self.cell] += 1

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None


def count_marks(html_text: str) -> _Marks:
    parser = _Marks()
    parser.feed(html_text)
    return parser


def test_predictions_page_puts_errors_first_and_shows_every_entity(examples, tmp_path):
    diffs = [diff_example(eg) for eg in examples]
    info = write_predictions_html(examples, diffs, tmp_path / "p.html")
    page = count_marks((tmp_path / "p.html").read_text())
    assert page.rows == ["ex0", "ex1", "ex2", "ex3", "ex4"]  # 2 errors each, then correct ones
    gold = sum(len(eg.reference.ents) for eg in examples)
    pred = sum(len(eg.predicted.ents) for eg in examples)
    assert page.marks == {"gold": gold, "pred": pred} == {"gold": info["gold_entities"], "pred": info["predicted_entities"]}
    text = (tmp_path / "p.html").read_text()
    assert "missed: &#x27;May&#x27; DATE" in text and "wrong label: &#x27;Acme&#x27; ORG predicted as GPE" in text

    info = write_predictions_html(examples[::-1], diffs[::-1], tmp_path / "q.html", limit=2)
    page = count_marks((tmp_path / "q.html").read_text())
    assert info["shown"] == 2 and page.rows == ["ex3", "ex4"]  # the two with errors, in the reversed list
