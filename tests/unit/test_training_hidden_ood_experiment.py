"""The hidden-layer unknown-score experiment computes what docs/model.md says it computes."""

from __future__ import annotations

import numpy as np
import pytest

from pigeonhole.model.features import normalize_batch
from pigeonhole_tools.training import hidden_ood_experiment as exp
from pigeonhole_tools.training.train import TrainedModel
from pigeonhole_tools.training.unknown_eval import auroc


@pytest.fixture(scope="module")
def model(intent_model: TrainedModel) -> TrainedModel:
    return intent_model


def test_the_numpy_forward_pass_reproduces_scikit_learns_probabilities(model: TrainedModel) -> None:
    texts = normalize_batch(["where is my card", "rate for yen", "something else entirely"])
    hidden, logits = exp.hidden_and_logits(model, texts)
    assert hidden.shape == (3, 8)
    assert (hidden >= 0).all()  # ReLU activations
    np.testing.assert_allclose(exp.softmax(logits), model.predict_proba(texts), atol=1e-5)
    np.testing.assert_allclose(exp.logsumexp(logits), np.log(np.exp(logits).sum(axis=1)), rtol=1e-9)


def test_mahalanobis_is_smallest_at_a_class_mean_and_grows_away_from_it() -> None:
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0]])
    y = np.repeat([0, 1], 200)
    h = means[y] + rng.normal(size=(400, 3))
    for dims in (None, 2):
        m = exp.Mahalanobis(h, y, 2, dims)
        near, far = m.score(means), m.score(np.array([[20.0, -20.0, 0.0]]))
        assert near.max() < 0.5
        assert far[0] > 50 * near.max()


def test_the_combination_is_cross_fitted_so_a_row_never_scores_with_a_fit_that_saw_it() -> None:
    rng = np.random.default_rng(1)
    known = rng.normal(size=(200, 2))
    unseen = rng.normal(loc=2.0, size=(100, 2))
    group = np.arange(100) % 2
    s_known, s_unseen = exp.cross_fitted_combo(known, unseen, group, seed=0)
    assert s_known.shape == (200,)
    assert s_unseen.shape == (100,)
    assert s_unseen.mean() > s_known.mean()  # the never-seen rows score higher (more unknown)
    # Pure noise as features: a fit that had seen the rows could still separate them; cross-fitted cannot.
    noise_k, noise_u = exp.cross_fitted_combo(rng.normal(size=(200, 8)), rng.normal(size=(100, 8)), group, seed=0)
    assert abs(auroc(noise_k, noise_u) - 0.5) < 0.1
