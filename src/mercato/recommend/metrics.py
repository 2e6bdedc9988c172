"""Ranking metrics of top-k lists against held-out items.

For one user with relevant (held-out) items ``R`` and a list ``L`` of ``k`` recommendations
(``rel_i`` = 1 when the item at rank ``i`` is in ``R``):

- ``precision@k`` = hits / k; ``recall@k`` = hits / |R|; ``hit_rate@k`` = 1 if any hit.
- ``ndcg@k`` = DCG / IDCG, DCG = sum rel_i / log2(i + 1), IDCG the DCG of ``min(|R|, k)``
  hits at the top (binary relevance).
- ``map@k`` = sum_i precision@i x rel_i / min(|R|, k) (the common definition: a perfect list
  scores 1 even when |R| > k); ``map@k (recommenders)`` divides by |R| instead, as Microsoft
  Recommenders' ``map_at_k`` did up to version 1.1 and its ``map`` does (comparable with
  numbers published with that library).
- ``mrr@k`` = 1 / the rank of the first hit (0 without one).

Each is averaged over the users evaluated. Over all lists: ``coverage`` = distinct items
recommended / items in the catalogue; ``novelty`` = mean self-information -log2(p) of the
recommended items, p the share of training users who had the item (higher = less obvious).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["METRICS", "ranking_metrics"]

METRICS = (
    "precision",
    "recall",
    "ndcg",
    "map",
    "map_recommenders",
    "hit_rate",
    "mrr",
    "coverage",
    "novelty",
)


def hits_matrix(recs: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """``(n, k)`` booleans: is the item at each rank among the row's relevant items."""
    rel = sp.csr_matrix(relevant)
    rel.sort_indices()
    n, k = recs.shape
    m = rel.shape[1]
    keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(rel.indptr)) * m + rel.indices
    probe = np.arange(n, dtype=np.int64)[:, None] * m + np.where(recs >= 0, recs, 0)
    pos = np.searchsorted(keys, probe)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    found = (keys[pos] == probe) if len(keys) else np.zeros_like(probe, dtype=bool)
    return np.asarray(found & (recs >= 0))


def ranking_metrics(
    recs: np.ndarray,
    relevant: sp.csr_matrix,
    k: int,
    *,
    n_items: int | None = None,
    item_users: np.ndarray | None = None,
    n_train_users: int | None = None,
) -> dict[str, Any]:
    """The metrics of the module, averaged over the rows of ``recs`` (``(n, >= k)`` item
    indices, -1 for an empty slot) against the rows of ``relevant`` (``n`` x items, non-zero =
    relevant). Rows without a relevant item should not be passed."""
    recs = np.asarray(recs)[:, :k]
    rel = sp.csr_matrix(relevant)
    n = recs.shape[0]
    n_rel = np.diff(rel.indptr).astype(float)
    if n == 0:
        return {"users": 0, **{m: float("nan") for m in METRICS}}
    if (n_rel == 0).any():
        raise ValueError("every evaluated user needs at least one relevant item")
    hits = hits_matrix(recs, rel).astype(float)
    ranks = np.arange(1, k + 1, dtype=float)
    discount = 1.0 / np.log2(ranks + 1.0)
    dcg = (hits * discount).sum(axis=1)
    ideal_n = np.minimum(n_rel, k).astype(int)
    idcg = np.cumsum(discount)[ideal_n - 1]
    cum_hits = np.cumsum(hits, axis=1)
    prec_at_i = cum_hits / ranks
    ap_sum = (prec_at_i * hits).sum(axis=1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    out: dict[str, Any] = {
        "users": int(n),
        "precision": float(np.mean(hits.sum(axis=1) / k)),
        "recall": float(np.mean(hits.sum(axis=1) / n_rel)),
        "ndcg": float(np.mean(dcg / idcg)),
        "map": float(np.mean(ap_sum / np.minimum(n_rel, k))),
        "map_recommenders": float(np.mean(ap_sum / n_rel)),
        "hit_rate": float(np.mean(hits.any(axis=1))),
        "mrr": float(np.mean(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0))),
    }
    m = int(n_items if n_items is not None else rel.shape[1])
    shown = recs[(recs >= 0) & (recs < m)]  # items of the catalogue (an oracle may name others)
    out["coverage"] = float(len(np.unique(shown)) / m) if m else float("nan")
    if item_users is not None and n_train_users:
        p = np.asarray(item_users, dtype=float)[shown] / float(n_train_users)
        out["novelty"] = (
            float(np.mean(-np.log2(np.clip(p, 1e-12, 1.0)))) if len(p) else float("nan")
        )
    else:
        out["novelty"] = float("nan")
    return out
