"""Hydra launcher that runs each job of a sweep as a Vertex AI custom job (`hydra/launcher=vertex`)."""

__version__ = "0.1.0"
