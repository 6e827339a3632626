"""Fixtures shared by the unit tests of the training code."""

from __future__ import annotations

import pytest

from pigeonhole.model.features import normalize_batch
from pigeonhole_tools.training.train import TrainedModel, TrainParams, train

INTENT_TEXTS = [
    "where is my card",
    "my card has not arrived yet",
    "i lost my card",
    "someone stole my card",
    "what is the exchange rate",
    "rate for euros to dollars",
    "how do i top up",
    "my top up failed",
    "a b c d card",  # one-character tokens: the graph and scikit-learn must still agree on bigrams
] * 6
INTENT_LABELS = ["arrival", "arrival", "lost", "lost", "rate", "rate", "topup", "topup", "arrival"] * 6


@pytest.fixture(scope="session")
def intent_model() -> TrainedModel:
    """A tiny real recipe (hidden 8) on four hand-written intents: seconds to train, real enough to export."""
    return train(normalize_batch(INTENT_TEXTS), INTENT_LABELS, TrainParams(hidden=8, epochs=30, batch_size=16))
