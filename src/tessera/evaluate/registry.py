"""The protocol registry (DESIGN §2.1): every protocol declares what it needs and how it runs.

A *fold* protocol (linear, logistic, knn, finetune, ridge) gives a ``predictor(inp)``: a function
``(train_idx, test_idx, seed) -> FoldResult`` that the K-fold driver (``protocol.py``) calls once per fold, and
label efficiency calls on subsets of the training fold. A *summary* protocol (retrieval) needs no folds and
returns its metrics directly. Protocol modules never write files or print; the driver does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tessera.errors import ConfigError

NEEDS = ("features", "d4_features", "encoder", "labels", "targets", "pairs")
TASKS = ("classification", "regression", "retrieval")


@dataclass
class FoldResult:
    """One held-out fold: y_true (n,), y_pred (n,) (class ids or regression values), scores (n, C) class scores
    (probabilities / vote shares; None for regression), info: what the protocol recorded (C, convergence...)."""

    y_true: np.ndarray
    y_pred: np.ndarray
    scores: np.ndarray | None = None
    info: dict = field(default_factory=dict)


@dataclass
class ProtocolInput:
    """Everything a protocol may use for one model at one layer. ``features`` is the run's
    :class:`~tessera.evaluate.features.FeatureProvider`; ``targets_*`` are set for regression only."""

    encoder: Any
    data: Any  # EvalData
    layer: int
    readout: str
    cfg: Any  # EvalConfig
    features: Any
    device: Any
    task: str = "classification"
    targets_train: np.ndarray | None = None
    targets_test: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return len(self.data.train.classes)

    @property
    def test_set(self):
        return self.data.test if self.data.test is not None else self.data.train

    @property
    def y_train(self) -> np.ndarray:
        """Training targets: class ids, or regression values."""
        return self.targets_train if self.task == "regression" else self.data.train.labels

    @property
    def y_test(self) -> np.ndarray:
        if self.task == "regression":
            return self.targets_test if self.targets_test is not None else self.targets_train
        return self.test_set.labels


Predictor = Callable[[np.ndarray, np.ndarray, int], FoldResult]


@dataclass(frozen=True)
class Protocol:
    """name; needs (subset of NEEDS); tasks it supports; ``predictor`` (fold protocols) or ``summary``
    (fold-free protocols, ``inp -> dict``); whether a layer sweep and label efficiency apply."""

    name: str
    needs: frozenset
    tasks: frozenset
    predictor: Callable[[ProtocolInput], Predictor] | None = None
    summary: Callable[[ProtocolInput], dict] | None = None
    sweepable: bool = True
    label_efficiency: bool = False

    def __post_init__(self):
        if (self.predictor is None) == (self.summary is None):
            raise ValueError(f"protocol {self.name}: give exactly one of predictor and summary")
        if not set(self.needs) <= set(NEEDS) or not set(self.tasks) <= set(TASKS):
            raise ValueError(f"protocol {self.name}: unknown needs/tasks")


def protocols() -> dict[str, Protocol]:
    """Every registered protocol by name (imported lazily: protocol modules pull in torch and scikit-learn)."""
    from tessera.evaluate import finetune, knn, linear, logistic, mlp, retrieval, ridge, segmentation

    found = [linear.PROTOCOL, logistic.PROTOCOL, knn.PROTOCOL, finetune.PROTOCOL, ridge.PROTOCOL, retrieval.PROTOCOL,
             segmentation.PROTOCOL, mlp.PROTOCOL]
    return {p.name: p for p in found}


# the CLI's choices, in this order
PROTOCOL_NAMES = ("linear", "logistic", "knn", "finetune", "ridge", "retrieval", "segmentation", "mlp")


def get_protocol(name: str) -> Protocol:
    table = protocols()
    if name not in table:
        raise ConfigError(f"protocol {name!r} is not one of {', '.join(table)}")
    return table[name]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, computed stably."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
