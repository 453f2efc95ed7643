"""MLflow pyfunc loader for spaCy NER pipelines: `predict(texts)` returns each text's entities.

MLflow's spaCy flavor only offers a pyfunc for text classifiers. Our models carry this module in their
`code/` directory and name it as the pyfunc loader, so `mlflow.pyfunc.load_model(uri).predict(texts)` and
`mlflow models serve` work with nothing but spaCy installed, so it imports nothing from this package.
"""

from __future__ import annotations

from typing import Any, Dict, List


def _texts(model_input: Any) -> List[str]:
    """Accept a string, a list/array of strings, a Series or a DataFrame (a `text` column or the first)."""
    if isinstance(model_input, str):
        return [model_input]
    columns = getattr(model_input, "columns", None)
    if columns is not None:  # pandas.DataFrame
        column = "text" if "text" in columns else columns[0]
        return [str(t) for t in model_input[column].tolist()]
    if hasattr(model_input, "tolist"):  # Series, numpy array
        model_input = model_input.tolist()
    if isinstance(model_input, dict) and "text" in model_input:
        model_input = model_input["text"]
        if isinstance(model_input, str):
            return [model_input]
    flat: List[str] = []
    for item in model_input:
        if isinstance(item, (list, tuple)) and len(item) == 1:
            item = item[0]
        if isinstance(item, dict):
            item = item.get("text", "")
        flat.append(str(item))
    return flat


class SpacyNerModel:
    """The pyfunc's model object: a loaded spaCy pipeline that answers with entity spans."""

    def __init__(self, nlp: Any):
        self.nlp = nlp

    def predict(self, model_input: Any, params: Any = None) -> List[List[Dict[str, Any]]]:
        return [
            [
                {"start": ent.start_char, "end": ent.end_char, "label": ent.label_, "text": ent.text}
                for ent in doc.ents
            ]
            for doc in self.nlp.pipe(_texts(model_input))
        ]


def _load_pyfunc(data_path: str, model_config: Any = None) -> SpacyNerModel:
    import spacy

    return SpacyNerModel(spacy.load(data_path))
