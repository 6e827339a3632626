"""Text featurizing shared by training and inference, so the two can never drift apart.

The ONNX graph holds the TF-IDF vectorizers; what happens before the graph lives here and nowhere
else: lower-casing in Python (the graph's StringNormalizer needs a locale Lambda may not have) and
collapsing whitespace runs (scikit-learn's char analyzer does, the ONNX tokenizer does not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

NORMALIZATION = "lower-collapse-whitespace-v1"
# Word tokens as the word vectorizer sees them (onnxruntime's regex engine rejects `(?u)`).
TOKEN_PATTERN = r"\b\w+\b"  # noqa: S105 (a regex, not a secret)
_TOKEN_RE = re.compile(TOKEN_PATTERN)

# Names of the per-event input features whose histograms form the drift baseline.
FEATURE_LENGTH_CHARS = "length_chars"
FEATURE_TOKENS = "tokens"
FEATURE_OOV_SHARE = "oov_share"


def normalize_text(text: str) -> str:
    """Lower-case and collapse every whitespace run to one space."""
    return " ".join(text.lower().split())


def normalize_batch(texts: Iterable[str]) -> list[str]:
    return [normalize_text(t) for t in texts]


def tokens(normalized: str) -> list[str]:
    return _TOKEN_RE.findall(normalized)


def input_features(normalized_texts: Sequence[str], vocabulary: frozenset[str]) -> dict[str, np.ndarray]:
    """Per-event features for drift: character length, token count, share of out-of-vocabulary tokens."""
    n = len(normalized_texts)
    length = np.empty(n, dtype=np.float64)
    count = np.empty(n, dtype=np.float64)
    oov = np.empty(n, dtype=np.float64)
    for i, text in enumerate(normalized_texts):
        toks = tokens(text)
        length[i] = len(text)
        count[i] = len(toks)
        oov[i] = (sum(1 for t in toks if t not in vocabulary) / len(toks)) if toks else 1.0
    return {FEATURE_LENGTH_CHARS: length, FEATURE_TOKENS: count, FEATURE_OOV_SHARE: oov}
