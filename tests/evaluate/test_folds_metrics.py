import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.utils.class_weight import compute_class_weight

from tessera.evaluate.folds import balanced_class_weights, stratified_folds
from tessera.evaluate.metrics import aggregate, fold_metrics, recall_matrix


def test_folds_stratified_disjoint_reproducible():
    labels = np.array([0] * 30 + [1] * 60 + [2] * 12)
    folds = stratified_folds(labels, k=3, seed=0)
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(len(labels)))  # disjoint, covering
    for tr, te in folds:
        assert not set(tr) & set(te)
        assert np.array_equal(np.bincount(labels[te]), [10, 20, 4])  # stratified
    again = stratified_folds(labels, k=3, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    other = stratified_folds(labels, k=3, seed=1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other))


def test_class_weights_match_sklearn_balanced():
    y = np.array([0] * 7 + [1] * 20 + [2] * 3 + [3] * 11)
    ref = compute_class_weight("balanced", classes=np.arange(4), y=y)
    assert np.allclose(balanced_class_weights(y, 4), ref)


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    m = fold_metrics(y, p, 4)
    assert np.isclose(m["macro_f1"], f1_score(y, p, average="macro"))
    assert np.isclose(m["weighted_f1"], f1_score(y, p, average="weighted"))
    assert np.isclose(m["accuracy"], accuracy_score(y, p))
    assert m["confusion"] == confusion_matrix(y, p).tolist()
    agg = aggregate([m, fold_metrics(y, y, 4)])
    assert np.isclose(agg["macro_f1"]["mean"], (m["macro_f1"] + 1.0) / 2)
    assert np.isclose(agg["macro_f1"]["std"], abs(1.0 - m["macro_f1"]) / 2)
    assert np.array_equal(agg["confusion"], np.asarray(m["confusion"]) + confusion_matrix(y, y))
    r = recall_matrix([[3, 1], [0, 0]])
    assert np.allclose(r, [[75, 25], [0, 0]])
