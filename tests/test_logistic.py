"""``logistic``: conformance, the analytic gradient and Hessian, the optimum against scipy's
L-BFGS-B on the same objective, and the real split's figure."""

from __future__ import annotations

import numpy as np
import pytest

from animerec_bench.builtin.logistic import LogisticRegression, Objective
from animerec_bench.metrics import auc
from animerec_bench.model import Interactions
from animerec_bench.testing import check_model, synthetic_split


@pytest.fixture(scope="module")
def small():
    return synthetic_split(seed=2, n_users=100, n_items=60, pairs_per_user=15)


def _objective(part: Interactions, C: float = 1.0) -> Objective:
    labelled, y = part.for_task("interaction")
    return Objective(labelled.user.astype(np.int64), labelled.item.astype(np.int64), y.astype(np.float64),
                     part.n_users, part.n_items, C)


def test_logistic_passes_check_model():
    assert LogisticRegression.baseline is False and LogisticRegression.tasks == ("interaction",)
    check_model(LogisticRegression)
    check_model(LogisticRegression, C=0.01, max_iter=3)


def test_gradient_and_hessian_products_match_finite_differences(small):
    objective = _objective(small[0], C=0.7)
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, 1 + objective.n_users + objective.n_items)
    grad, curvature = objective.gradient_and_curvature(w, objective.margin(w))
    h = 1e-5
    for j in (0, 1, 50, objective.n_users + 3, len(w) - 1):
        e = np.zeros_like(w)
        e[j] = h
        numeric = (objective.value(w + e) - objective.value(w - e)) / (2 * h)
        assert grad[j] == pytest.approx(numeric, rel=1e-6, abs=1e-6)
    v = rng.normal(0, 1, len(w))
    g_plus, _ = objective.gradient_and_curvature(w + h * v, objective.margin(w + h * v))
    g_minus, _ = objective.gradient_and_curvature(w - h * v, objective.margin(w - h * v))
    np.testing.assert_allclose(objective.hessian_times(curvature, v), (g_plus - g_minus) / (2 * h), rtol=1e-5, atol=1e-6)


def test_fit_reaches_the_optimum_scipy_finds(small):
    """The same objective minimised by scipy's L-BFGS-B to a tight tolerance lands on our weights."""
    from scipy.optimize import minimize

    train, valid, _ = small
    for C in (1.0, 0.1):
        model = LogisticRegression(C=C).fit(train, valid, tasks=("interaction",), seed=0)
        assert model.converged_ and 0 < model.epochs_ < 30
        ours = np.r_[model.intercept_, model.user_weight_, model.item_weight_]
        objective = _objective(train, C)
        reference = minimize(lambda w: (objective.value(w), objective.gradient_and_curvature(w, objective.margin(w))[0]),
                             np.zeros_like(ours), jac=True, method="L-BFGS-B",
                             options={"maxiter": 20000, "gtol": 1e-10, "ftol": 1e-15}).x
        np.testing.assert_allclose(ours, reference, atol=1e-4)
        assert objective.value(ours) <= objective.value(reference) + 1e-9
    weak = LogisticRegression(C=1.0).fit(train, valid, tasks=("interaction",), seed=0)
    strong = LogisticRegression(C=0.1).fit(train, valid, tasks=("interaction",), seed=0)
    assert np.linalg.norm(strong.user_weight_) < np.linalg.norm(weak.user_weight_)  # L2 shrinks


def test_one_class_only_predicts_the_clipped_rate():
    train = Interactions(np.array([0, 1, 1], np.int32), np.array([0, 0, 1], np.int32), np.zeros(3, np.float32),
                         np.ones(3, np.int8), 2, 2)
    model = LogisticRegression().fit(train, None, tasks=("interaction",), seed=0)
    p = model.predict(np.array([0, 1]), np.array([1, 0]))["interaction"]
    assert np.all(np.isfinite(p)) and np.all(p > 0.99) and np.all(p <= 1.0)


def test_on_the_embedded_split_it_scores_the_optimums_auc(embedded_split):
    """mal2016-5k / v1 / seed 0: scikit-learn's LogisticRegression on one-hot user and anime
    columns, run to convergence (tol 1e-10), scores test AUC 0.86866 (its default tol 1e-4
    stops early: 0.86799)."""
    model = LogisticRegression().fit(embedded_split.train, embedded_split.valid, tasks=("interaction",), seed=0)
    assert model.converged_
    labelled, y = embedded_split.test.for_task("interaction")
    assert auc(y, model.predict(labelled.user, labelled.item)["interaction"]) == pytest.approx(0.86866, abs=5e-5)
