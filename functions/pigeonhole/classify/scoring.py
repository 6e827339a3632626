"""The batch's unknown scores in one numpy pass, with the per-event fallback the service relies on.

Why apart from the service: the scores need the model's probabilities *and* its hidden-layer distances
(a second graph output), and keeping that bookkeeping here keeps the service about the batch's fate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from aws_lambda_powertools import Logger

from pigeonhole.model.runtime import ModelRuntime


def per_event(hidden_distance: np.ndarray | None, n: int) -> list[float | None]:
    """The graph's hidden distances as one entry per event (None for a package without them)."""
    if hidden_distance is None:
        return [None] * n
    return [float(v) for v in hidden_distance]


def batch_unknown_scores(
    runtime: ModelRuntime,
    texts: Sequence[str],
    rows: Sequence[np.ndarray],
    distances: Sequence[float | None],
    logger: Logger | None = None,
) -> list[float] | None:
    """One score per event, or None: the package has no unknown score, or the batch pass failed (the caller
    then scores each event on its own, so a failure is that event's alone)."""
    if not rows:
        return None
    try:
        known = None if any(d is None for d in distances) else np.asarray(distances, dtype=np.float64)
        scores = runtime.unknown_scores(texts, np.stack(rows), known)
    except Exception as exc:
        if logger is not None:
            logger.warning("batch unknown scoring failed; scoring one by one", extra={"error_type": type(exc).__name__})
        return None
    return None if scores is None else [float(v) for v in scores]
