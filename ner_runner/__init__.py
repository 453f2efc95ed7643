"""ner-runner: Hydra-configured spaCy NER training, tracked in MLflow, trained locally or on Vertex AI."""

__version__ = "0.1.0"
