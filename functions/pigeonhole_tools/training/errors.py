"""Exceptions of the model builder: each message says what to fix, because the CLI prints it as is."""

from __future__ import annotations


class TrainingError(Exception):
    """Base class: the build stopped and wrote nothing to the output directory."""


class DataError(TrainingError):
    """The labelled data cannot be read or is not usable for training (bad file, columns, labels)."""


class BuildRefusedError(TrainingError):
    """The model was built but fails a release gate (accuracy drop, int8 share, self-check): not packaged."""
