"""Weighted k-NN on frozen features: cosine similarity of l2-normalized features, k nearest training samples vote
with weight exp(sim / T) (DINO-style, T = 0.07, k = 20). No training, no augmentation."""

from __future__ import annotations

import numpy as np
import torch


def knn_predict(train_feats: np.ndarray, train_labels: np.ndarray, test_feats: np.ndarray, n_classes: int,
                k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> np.ndarray:
    """train_feats (N, D), train_labels (N,), test_feats (M, D) -> predicted classes (M,)."""
    train = torch.nn.functional.normalize(torch.from_numpy(np.asarray(train_feats, dtype=np.float32)), dim=1)
    labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    k = min(k, len(train))
    preds = []
    for s in range(0, len(test_feats), chunk):
        test = torch.nn.functional.normalize(torch.from_numpy(np.asarray(test_feats[s : s + chunk], dtype=np.float32)), dim=1)
        sim = test @ train.T  # (m, N) cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(test), n_classes)
        votes.scatter_add_(1, labels[top_idx], torch.exp(top_sim / temperature))
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds).numpy()
