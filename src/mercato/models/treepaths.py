"""Path attributions of a LightGBM model, fast enough to explain a million customers.

Each split on a row's path through a tree moves the tree's expected value from the node to the
child the row takes; that change is credited to the split's feature. Over a tree the changes
add up, by telescoping, to ``leaf value - the tree's expected value``; over the model,
``bias + sum of the contributions == raw score`` exactly. This is the attribution of Saabas
(the ``treeinterpreter`` method, XGBoost's ``approx_contribs``). A node's expected value is the
training-count-weighted mean of the leaves below it, the definition TreeSHAP uses, so the two
methods share the same bias.

Against TreeSHAP (LightGBM's ``pred_contrib``) it is:

- **exact in the same sense**: per row, bias + contributions = the model's raw score;
- **not a Shapley value**: a feature split near the root takes credit that TreeSHAP shares
  with the features it interacts with below, so the two can order a row's reasons
  differently (``benchmarks/bench_propensity.py`` measures how often the top reason agrees);
- **far faster**: one walk down each tree per row (numba, on every core) where TreeSHAP costs
  ``O(leaves x depth^2)`` per tree and row.

The walk follows LightGBM's own decision rules (missing-value type, default direction, zero
threshold, categorical sets). Every call checks the raw scores of up to 256 rows spread over
the input against LightGBM's prediction; should they differ, the rows are routed by LightGBM
itself (``pred_leaf``) and only the attribution is done here (and if even that does not add up,
a ``ValueError`` says to use TreeSHAP). Multiclass models and linear trees are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["TreePaths", "top_k"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: LightGBM's kZeroThreshold (1e-35 as a float32): values this close to 0 are 0
ZERO = float(np.float32(1e-35))
#: rows (spread over the input) whose raw score is checked against LightGBM's on every call
CHECK_ROWS = 256


def _jit(fn: Any) -> Any:
    """Compiled for every core, cached on disk where the package folder (or numba's user
    cache) is writable, else compiled once per process."""
    try:
        return numba.njit(parallel=True, cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache location
        return numba.njit(parallel=True, cache=False, nogil=True)(fn)


def _code(node: dict[str, Any], node_base: int, leaf_base: int) -> int:
    """A child as one int: >= 0 an internal node, < 0 the leaf ``-code - 1`` (global ids)."""
    if "leaf_index" in node:
        return -(leaf_base + int(node["leaf_index"])) - 1
    return node_base + int(node["split_index"])


@dataclass(frozen=True)
class TreePaths:
    """A LightGBM model's trees as flat arrays, for walking and attributing in numba."""

    n_features: int
    roots: npt.NDArray[np.int64]
    leaf_base: npt.NDArray[np.int64]  # each tree's first global leaf id
    feature: npt.NDArray[np.int64]
    threshold: FloatArray
    categorical: npt.NDArray[np.bool_]
    missing: npt.NDArray[np.int8]  # 0 none, 1 zero, 2 NaN
    default_left: npt.NDArray[np.bool_]
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    parent: npt.NDArray[np.int64]  # of internal nodes; -1 for a root
    expected: FloatArray  # of internal nodes
    leaf_value: FloatArray
    leaf_parent: npt.NDArray[np.int64]
    cat_start: npt.NDArray[np.int64]
    cat_len: npt.NDArray[np.int64]
    cat_member: npt.NDArray[np.bool_]
    bias: float

    @classmethod
    def from_booster(cls, booster: Any) -> TreePaths:
        """The arrays of a ``lightgbm.Booster`` (read from its ``dump_model``)."""
        dump = booster.dump_model()
        if int(dump.get("num_tree_per_iteration", 1)) != 1:
            raise ValueError("path attributions need one tree per iteration (not multiclass)")
        if "is_linear=1" in booster.model_to_string():
            raise ValueError("path attributions cannot explain linear trees: use TreeSHAP")
        trees = dump["tree_info"]
        sizes = [int(t["num_leaves"]) for t in trees]
        m, n_leaves = sum(max(s - 1, 0) for s in sizes), sum(sizes)
        feature = np.zeros(m, dtype=np.int64)
        threshold = np.zeros(m)
        categorical = np.zeros(m, dtype=bool)
        missing = np.zeros(m, dtype=np.int8)
        default_left = np.zeros(m, dtype=bool)
        left = np.zeros(m, dtype=np.int64)
        right = np.zeros(m, dtype=np.int64)
        parent = np.full(m, -1, dtype=np.int64)
        cat_start = np.zeros(m, dtype=np.int64)
        cat_len = np.zeros(m, dtype=np.int64)
        leaf_value = np.zeros(n_leaves)
        leaf_count = np.zeros(n_leaves)
        leaf_parent = np.full(n_leaves, -1, dtype=np.int64)
        leaf_base = np.zeros(len(trees), dtype=np.int64)
        roots = np.zeros(len(trees), dtype=np.int64)
        members: list[bool] = []
        kinds = {"None": 0, "Zero": 1, "NaN": 2}
        node_base = leaf_at = 0
        for i, t in enumerate(trees):
            leaf_base[i] = leaf_at
            root = t["tree_structure"]
            if "split_index" not in root and "leaf_index" not in root:  # a constant tree
                root = {"leaf_index": 0, "leaf_value": root.get("leaf_value", 0.0)}
            roots[i] = _code(root, node_base, leaf_at)
            stack: list[tuple[dict[str, Any], int, bool]] = [(root, -1, True)]
            while stack:
                node, up, is_left = stack.pop()
                code = _code(node, node_base, leaf_at)
                if up >= 0:
                    (left if is_left else right)[up] = code
                if code < 0:
                    g = -code - 1
                    leaf_value[g] = float(node["leaf_value"])
                    leaf_count[g] = float(node.get("leaf_count", 0))
                    leaf_parent[g] = up
                    continue
                parent[code] = up
                feature[code] = int(node["split_feature"])
                missing[code] = kinds.get(str(node.get("missing_type", "None")), 0)
                default_left[code] = bool(node.get("default_left", False))
                if node["decision_type"] == "==":
                    categorical[code] = True
                    cats = [int(c) for c in str(node["threshold"]).split("||") if c != ""]
                    size = max(cats) + 1 if cats else 0
                    cat_start[code], cat_len[code] = len(members), size
                    flags = [False] * size
                    for c in cats:
                        flags[c] = True
                    members.extend(flags)
                else:
                    threshold[code] = float(node["threshold"])
                stack.append((node["left_child"], code, True))
                stack.append((node["right_child"], code, False))
            node_base += max(sizes[i] - 1, 0)
            leaf_at += sizes[i]
        expected = _expected(left, right, leaf_value, leaf_count, roots)
        root_values = [expected[r] if r >= 0 else leaf_value[-r - 1] for r in roots]
        return cls(
            n_features=int(dump["max_feature_idx"]) + 1,
            roots=roots,
            leaf_base=leaf_base,
            feature=feature,
            threshold=threshold,
            categorical=categorical,
            missing=missing,
            default_left=default_left,
            left=left,
            right=right,
            parent=parent,
            expected=expected,
            leaf_value=leaf_value,
            leaf_parent=leaf_parent,
            cat_start=cat_start,
            cat_len=cat_len,
            cat_member=np.array(members, dtype=bool),
            bias=float(np.sum(root_values)),
        )

    def explain(self, M: FloatArray, booster: Any = None) -> tuple[FloatArray, FloatArray, str]:
        """Contributions ``(n, n_features)``, raw scores (the sum of the leaves' values, computed
        apart from the contributions) and the routing used (``"walk"`` or ``"pred_leaf"``).

        With ``booster``, the raw scores of up to 256 rows spread over ``M`` are checked
        against LightGBM's; on any difference the rows are routed by
        ``booster.predict(pred_leaf=True)``.
        """
        M = np.ascontiguousarray(M, dtype=np.float64)
        if M.ndim != 2 or M.shape[1] < self.n_features:
            raise ValueError(f"the matrix has shape {M.shape}; the model reads {self.n_features}")
        out, raw = _walk(
            M,
            self.roots,
            self.feature,
            self.threshold,
            self.categorical,
            self.missing,
            self.default_left,
            self.left,
            self.right,
            self.expected,
            self.leaf_value,
            self.cat_start,
            self.cat_len,
            self.cat_member,
            self.n_features,
        )
        if booster is None or len(M) == 0:
            return out, raw, "walk"
        rows = np.unique(np.linspace(0, len(M) - 1, min(len(M), CHECK_ROWS)).astype(np.int64))
        theirs = np.asarray(booster.predict(M[rows], raw_score=True, num_threads=1), dtype=float)
        if np.allclose(raw[rows], theirs, rtol=1e-12, atol=1e-9):
            return out, raw, "walk"
        leaves = np.ascontiguousarray(booster.predict(M, pred_leaf=True), dtype=np.int64)
        out, raw = self.explain_leaves(leaves)
        if not np.allclose(raw[rows], theirs, rtol=1e-12, atol=1e-9):
            raise ValueError("the trees' leaves do not add up to LightGBM's score: use TreeSHAP")
        return out, raw, "pred_leaf"

    def explain_leaves(self, leaves: npt.NDArray[Any]) -> tuple[FloatArray, FloatArray]:
        """As :meth:`explain`, from LightGBM's ``pred_leaf`` output ``(n, trees)``."""
        leaves = np.ascontiguousarray(leaves, dtype=np.int64)
        if leaves.ndim != 2 or leaves.shape[1] != len(self.roots):
            raise ValueError(
                f"pred_leaf output has shape {leaves.shape}; the model has {len(self.roots)} trees"
            )
        return _climb(  # type: ignore[no-any-return]
            leaves,
            self.leaf_base,
            self.feature,
            self.parent,
            self.left,
            self.expected,
            self.leaf_value,
            self.leaf_parent,
            self.n_features,
        )


def _expected(left: Any, right: Any, value: Any, count: Any, roots: Any) -> FloatArray:
    """Each internal node's count-weighted mean of the leaf values below it."""
    m = len(left)
    total = np.zeros(m)
    weight = np.zeros(m)
    order: list[int] = []
    stack = [int(r) for r in roots if r >= 0]
    while stack:
        v = stack.pop()
        order.append(v)
        for c in (left[v], right[v]):
            if c >= 0:
                stack.append(int(c))
    for v in reversed(order):  # children before parents
        for c in (left[v], right[v]):
            if c < 0:
                total[v] += count[-c - 1] * value[-c - 1]
                weight[v] += count[-c - 1]
            else:
                total[v] += total[c]
                weight[v] += weight[c]
    out = np.zeros(m)
    ok = weight > 0
    out[ok] = total[ok] / weight[ok]
    return out


@_jit
def _walk(
    M: Any,
    roots: Any,
    feature: Any,
    threshold: Any,
    categorical: Any,
    missing: Any,
    default_left: Any,
    left: Any,
    right: Any,
    expected: Any,
    leaf_value: Any,
    cat_start: Any,
    cat_len: Any,
    cat_member: Any,
    n_features: int,
) -> tuple[Any, Any]:  # pragma: no cover - compiled
    n = M.shape[0]
    out = np.zeros((n, n_features))
    raw = np.zeros(n)
    zero = ZERO
    for r in numba.prange(n):
        total = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while node >= 0:
                f = feature[node]
                x = M[r, f]
                if categorical[node]:
                    go_left = False
                    if not np.isnan(x):
                        c = np.int64(np.trunc(x)) if abs(x) < 2.0e9 else np.int64(-1)
                        if 0 <= c < cat_len[node]:
                            go_left = cat_member[cat_start[node] + c]
                else:
                    kind = missing[node]
                    if np.isnan(x) and kind != 2:
                        x = 0.0
                    if -zero <= x <= zero:
                        x = 0.0
                    if (kind == 1 and x == 0.0) or (kind == 2 and np.isnan(x)):
                        go_left = default_left[node]
                    else:
                        go_left = x <= threshold[node]
                child = left[node] if go_left else right[node]
                value = expected[child] if child >= 0 else leaf_value[-child - 1]
                out[r, f] += value - expected[node]
                node = child
            total += leaf_value[-node - 1]
        raw[r] = total
    return out, raw


@_jit
def _climb(
    leaves: Any,
    first: Any,
    feature: Any,
    parent: Any,
    left: Any,
    expected: Any,
    leaf_value: Any,
    leaf_parent: Any,
    n_features: int,
) -> tuple[Any, Any]:  # pragma: no cover - compiled
    n, trees = leaves.shape
    out = np.zeros((n, n_features))
    raw = np.zeros(n)
    for r in numba.prange(n):
        total = 0.0
        for t in range(trees):
            g = first[t] + leaves[r, t]
            value = leaf_value[g]
            total += value
            node = leaf_parent[g]
            while node >= 0:
                out[r, feature[node]] += value - expected[node]
                value = expected[node]
                node = parent[node]
        raw[r] = total
    return out, raw


def top_k(values: FloatArray, k: int) -> tuple[IntArray, FloatArray]:
    """Per row, the columns of the ``k`` largest ``|values|`` (ties: the first column) and
    their signed values; slots beyond a row's non-zero values hold column -1 and value 0."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    k = max(0, min(int(k), values.shape[1]))
    return _top_k(values, k)  # type: ignore[no-any-return]


@_jit
def _top_k(values: Any, k: int) -> tuple[Any, Any]:  # pragma: no cover - compiled
    n, m = values.shape
    idx = np.full((n, k), -1, dtype=np.int64)
    val = np.zeros((n, k))
    for r in numba.prange(n):
        for j in range(m):
            a = abs(values[r, j])
            if a == 0.0 or k == 0:
                continue
            pos = k
            while pos > 0 and (idx[r, pos - 1] < 0 or a > abs(val[r, pos - 1])):
                pos -= 1
            if pos < k:
                for s in range(k - 1, pos, -1):
                    idx[r, s] = idx[r, s - 1]
                    val[r, s] = val[r, s - 1]
                idx[r, pos] = j
                val[r, pos] = values[r, j]
    return idx, val
