"""Recommenders behind one interface, shaped like the ``implicit`` library's.

Every model is fitted on a users x items matrix of interaction weights (``scipy.sparse`` CSR,
:meth:`~mercato.recommend.interactions.Interactions.matrix`) and then:

- ``scores(user_items, users=None)``: a dense ``(n, items)`` block of scores for ``n`` users
  given their interaction rows. With ``users`` (training row indices), models that learned a
  vector per user use it; without, they **fold the user in** from the rows (an unknown user
  scored from a list of recent items, no retraining): ALS solves the user's least-squares
  step against the fixed item factors, BPR projects onto them, NMF solves the non-negative
  step, the item-based models (item-kNN, EASE) never need a user vector.
- ``recommend(user_items, k, users=None, exclude_seen=True, filter_items=None)``: top ``k``
  item indices and scores per user, the user's own items removed unless asked otherwise.
- ``similar_items(item, k)``: the ``k`` items closest to one item.
- ``to_state()`` / :func:`model_from_state`: parameters as JSON and arrays as ``numpy``
  arrays: a web worker rebuilds the model without pickle or any training-time object.

Models:

=================  ==============================================================================
``popularity``     items by the number of users who touched them (global, or per segment)
``itemknn``        item-item cosine or BM25-weighted similarity, top neighbours per item
                   (``implicit``'s nearest-neighbour models)
``ease``           EASE (Steck 2019): the closed-form item-item ridge regression with a zero
                   diagonal; dense items x items, so for catalogues up to :data:`EASE_MAX_ITEMS`
``als``            implicit-feedback ALS (Hu, Koren, Volinsky 2008) through ``implicit``
``bpr``            Bayesian personalised ranking (Rendle 2009) through ``implicit``
``nmf``            non-negative matrix factorisation (scikit-learn), the seed's baseline
=================  ==============================================================================
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from mercato.errors import DataError, MercatoError, NotFittedError

__all__ = [
    "EASE_MAX_ITEMS",
    "MODELS",
    "ALS",
    "BPR",
    "EASE",
    "ItemKNN",
    "NMF",
    "Popularity",
    "Recommender",
    "make_model",
    "model_from_state",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: EASE keeps a dense items x items matrix (4 bytes a cell): 20,000 items = 1.6 GB
EASE_MAX_ITEMS = 25_000
#: above this many items EASE inverts with one BLAS thread (see EASE._fit)
EASE_THREADED_MAX_ITEMS = 10_000


def _csr(m: Any, n_items: int | None = None) -> sp.csr_matrix:
    if not sp.issparse(m):
        raise DataError("user_items must be a scipy sparse matrix (users x items)")
    out = sp.csr_matrix(m, dtype=np.float32)
    if n_items is not None and out.shape[1] != n_items:
        raise DataError(
            f"user_items has {out.shape[1]} item columns; the model knows {n_items} items"
        )
    return out


class _quiet:
    """Run ``implicit``: its own threads with BLAS on one (as it asks), its input-format
    warnings silenced (the matrices are converted on purpose)."""

    def __enter__(self) -> None:
        import warnings

        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(1, "blas")
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        warnings.filterwarnings("ignore", message="OpenBLAS is configured")
        warnings.filterwarnings("ignore", message=".*threadpool.*")

    def __exit__(self, *exc: Any) -> None:
        self._warnings.__exit__(*exc)
        self._limits.restore_original_limits()


def _threads() -> int:
    import os

    return max(1, min(2, os.cpu_count() or 1))


class Recommender(abc.ABC):
    """The shared interface (see the module's notes)."""

    kind: ClassVar[str] = ""
    #: keys of ``params`` a caller may set
    param_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.param_names)
        if unknown:
            raise DataError(
                f"{self.kind}: unknown setting {sorted(unknown)[0]!r}",
                column=sorted(unknown)[0],
                hint="settings: " + ", ".join(self.param_names),
            )
        self.params: dict[str, Any] = {**self.defaults(), **params}
        self.n_users = 0
        self.n_items = 0
        self.fitted = False

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({shown})"

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, user_items: Any, **context: Any) -> Recommender:
        """Learn from the users x items weights; returns ``self``."""
        X = _csr(user_items)
        if X.shape[0] == 0 or X.shape[1] == 0 or X.nnz == 0:
            raise DataError(f"{self.kind}: no interactions to learn from")
        self.n_users, self.n_items = X.shape
        self._fit(X, **context)
        self.fitted = True
        return self

    @abc.abstractmethod
    def _fit(self, X: sp.csr_matrix, **context: Any) -> None:
        """Learn from ``X`` (users x items, float32 CSR)."""

    def _check(self) -> None:
        if not self.fitted:
            raise NotFittedError(f"the {self.kind} model is not fitted")

    # -- scoring -----------------------------------------------------------------------------

    def scores(self, user_items: Any, users: Any = None, **context: Any) -> FloatArray:
        """Dense ``(n, items)`` scores for the users of ``user_items`` (see the module)."""
        self._check()
        X = _csr(user_items, self.n_items)
        idx = None
        if users is not None:
            idx = np.asarray(users, dtype=np.int64).reshape(-1)
            if len(idx) != X.shape[0]:
                raise DataError("users and user_items must have as many rows")
            if len(idx) and (idx.min() < 0 or idx.max() >= self.n_users):
                raise DataError("a user index outside the training users", column="users")
        out = self._scores(X, idx, **context)
        return np.asarray(out, dtype=np.float32)

    @abc.abstractmethod
    def _scores(self, X: sp.csr_matrix, users: IntArray | None, **context: Any) -> Any:
        """Scores of the rows of ``X`` (``users``: their training indices, or None)."""

    def recommend(
        self,
        user_items: Any,
        k: int = 10,
        *,
        users: Any = None,
        exclude_seen: bool = True,
        filter_items: Any = None,
        **context: Any,
    ) -> tuple[IntArray, FloatArray]:
        """Top ``k`` items per user: ``(items, scores)``, each ``(n, k)``; -1 and -inf pad a
        row when fewer than ``k`` items remain."""
        self._check()
        if not isinstance(k, int | np.integer) or k < 1:
            raise DataError("k must be a whole number >= 1", column="k", value=k)
        X = _csr(user_items, self.n_items)
        s = self.scores(X, users, **context)
        if exclude_seen:
            rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
            s[rows, X.indices] = -np.inf
        if filter_items is not None:
            s[:, np.asarray(filter_items, dtype=np.int64)] = -np.inf
        return top_k(s, int(k))

    def similar_items(self, item: int, k: int = 10) -> tuple[IntArray, FloatArray]:
        """The ``k`` items most similar to ``item`` (cosine of the model's item vectors or
        rows of its item-item matrix), the item itself left out."""
        self._check()
        if not 0 <= int(item) < self.n_items:
            raise DataError("no such item index", column="item", value=item)
        sims = np.asarray(self._similar(int(item)), dtype=np.float32).reshape(1, -1)
        sims[0, int(item)] = -np.inf
        ids, vals = top_k(sims, k)
        return ids[0], vals[0]

    @abc.abstractmethod
    def _similar(self, item: int) -> Any:
        """Similarity of every item to ``item``."""

    # -- state -------------------------------------------------------------------------------

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(JSON-ready parameters, named arrays)``: everything needed to score."""
        self._check()
        meta = {"kind": self.kind, "params": dict(self.params), "n_users": self.n_users,
                "n_items": self.n_items}  # fmt: skip
        return meta, self._arrays()

    @abc.abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """The fitted arrays."""

    @abc.abstractmethod
    def _load(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore from :meth:`_arrays`."""


def top_k(scores: Any, k: int) -> tuple[IntArray, FloatArray]:
    """Per row, the indices and values of the ``k`` largest finite scores, best first; equal
    scores in item order (so every path that ranks the same scores gives the same list)."""
    s = np.asarray(scores, dtype=np.float32)
    n, m = s.shape
    kk = min(k, m)
    idx = np.full((n, k), -1, dtype=np.int64)
    vals = np.full((n, k), -np.inf, dtype=np.float32)
    if kk == 0 or n == 0:
        return idx, vals
    kth = -np.partition(-s, kk - 1, axis=1)[:, kk - 1]
    rows, cols = np.nonzero(s >= kth[:, None])
    v = s[rows, cols]
    order = np.lexsort((cols, -v, rows))
    rows, cols, v = rows[order], cols[order], v[order]
    starts = np.searchsorted(rows, np.arange(n))
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < kk
    idx[rows[keep], rank[keep]] = cols[keep]
    vals[rows[keep], rank[keep]] = v[keep]
    idx[~np.isfinite(vals)] = -1
    return idx, vals


def _cosine_rows(M: np.ndarray, i: int) -> np.ndarray:
    v = M[i]
    norms = np.linalg.norm(M, axis=1) * (np.linalg.norm(v) or 1.0)
    norms[norms == 0] = 1.0
    return np.asarray((M @ v) / norms)


# -- popularity --------------------------------------------------------------------------------


class Popularity(Recommender):
    """Items by how many users touched them; per segment when ``segments`` are given to
    :meth:`fit` (one label per training user) and to :meth:`scores` (one per scored user;
    unknown or missing segments get the global list)."""

    kind = "popularity"
    param_names = ("min_segment_users",)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"min_segment_users": 50}

    def _fit(self, X: sp.csr_matrix, segments: Any = None, **_: Any) -> None:
        B = X.copy()
        B.data[:] = 1.0
        self.counts = np.asarray(B.sum(axis=0)).ravel().astype(np.float32)
        self.segment_names: list[str] = []
        self.segment_counts = np.zeros((0, self.n_items), dtype=np.float32)
        if segments is not None:
            seg = np.asarray(segments, dtype=object).astype(str)
            if len(seg) != X.shape[0]:
                raise DataError("one segment per training user is needed", column="segments")
            names, codes = np.unique(seg, return_inverse=True)
            keep = [
                j
                for j in range(len(names))
                if (codes == j).sum() >= self.params["min_segment_users"]
            ]
            self.segment_names = [str(names[j]) for j in keep]
            rows = []
            for j in keep:
                rows.append(np.asarray(B[codes == j].sum(axis=0)).ravel())
            if rows:
                self.segment_counts = np.vstack(rows).astype(np.float32)

    def _scores(
        self, X: sp.csr_matrix, users: IntArray | None, segments: Any = None, **_: Any
    ) -> Any:
        base = self.counts / max(float(self.counts.max()), 1.0)
        out = np.tile(base, (X.shape[0], 1))
        if segments is not None and self.segment_names:
            seg = np.asarray(segments, dtype=object).astype(str)
            where = {n: i for i, n in enumerate(self.segment_names)}
            for r, name in enumerate(seg):
                j = where.get(name)
                if j is not None:
                    row = self.segment_counts[j]
                    # the segment's popularity first, the global one breaks ties
                    out[r] = row / max(float(row.max()), 1.0) + 1e-3 * base
        return out

    def _similar(self, item: int) -> Any:
        return self.counts.astype(np.float32)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts, "segment_counts": self.segment_counts,
                "segment_names": np.array(self.segment_names, dtype=str)}  # fmt: skip

    def _load(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.counts = np.asarray(arrays["counts"], dtype=np.float32)
        self.segment_counts = np.asarray(arrays["segment_counts"], dtype=np.float32)
        self.segment_names = [str(v) for v in arrays["segment_names"]]


# -- item-item neighbours ------------------------------------------------------------------------


class ItemKNN(Recommender):
    """Item-item neighbours: ``similarity`` ``cosine`` or ``bm25`` (``k1``, ``b``), the
    ``neighbours`` most similar items kept per item (``implicit.nearest_neighbours``); a
    user's score for an item is the sum of its similarities to the user's items, weighted
    (``binary=False``) or not."""

    kind = "itemknn"
    param_names = ("similarity", "neighbours", "k1", "b", "binary")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"similarity": "cosine", "neighbours": 100, "k1": 1.2, "b": 0.75, "binary": True}

    def _fit(self, X: sp.csr_matrix, **_: Any) -> None:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        p = self.params
        if p["similarity"] not in ("cosine", "bm25"):
            raise DataError("similarity must be cosine or bm25", column="similarity")
        K = int(p["neighbours"])
        if K < 1:
            raise DataError("neighbours must be >= 1", column="neighbours")
        Xb = _binary(X) if p["binary"] else X
        if p["similarity"] == "bm25":
            m = BM25Recommender(K=K, K1=float(p["k1"]), B=float(p["b"]), num_threads=_threads())
        else:
            m = CosineRecommender(K=K, num_threads=_threads())
        with _quiet():
            m.fit(Xb.astype(np.float64), show_progress=False)
        S = sp.csr_matrix(m.similarity, dtype=np.float32)
        S.setdiag(0)
        S.eliminate_zeros()
        self.S = S

    def _scores(self, X: sp.csr_matrix, users: IntArray | None, **_: Any) -> Any:
        Xq = _binary(X) if self.params["binary"] else X
        return (Xq @ self.S).toarray()

    def _similar(self, item: int) -> Any:
        return self.S[item].toarray().ravel()

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"S_data": self.S.data, "S_indices": self.S.indices, "S_indptr": self.S.indptr}

    def _load(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.S = sp.csr_matrix(
            (arrays["S_data"], arrays["S_indices"], arrays["S_indptr"]),
            shape=(self.n_items, self.n_items),
        )


def _binary(X: sp.csr_matrix) -> sp.csr_matrix:
    B = X.copy()
    B.data = np.ones_like(B.data)
    return B


# -- EASE ------------------------------------------------------------------------------------------


class EASE(Recommender):
    """EASE: ``B = argmin ||X - XB||² + l2 ||B||²`` with ``diag(B) = 0``, in closed form
    (``P = (XᵀX + l2 I)⁻¹``, ``B = -P / diag(P)``); scores ``x·B``. ``binary`` reads the
    matrix as 0/1."""

    kind = "ease"
    param_names = ("l2", "binary")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"l2": 200.0, "binary": True}

    def _fit(self, X: sp.csr_matrix, **_: Any) -> None:
        from scipy.linalg import lapack

        if self.n_items > EASE_MAX_ITEMS:
            raise DataError(
                f"EASE keeps an items x items matrix: {self.n_items:,} items is more than "
                f"{EASE_MAX_ITEMS:,}",
                hint="leave EASE out, or keep the most frequent items",
            )
        l2 = float(self.params["l2"])
        if not l2 > 0:
            raise DataError("l2 must be > 0", column="l2", value=l2)
        Xq = _binary(X) if self.params["binary"] else X
        G = (Xq.T @ Xq).toarray().astype(np.float64)
        G[np.diag_indices_from(G)] += l2
        # the inverse from the Cholesky factor (LAPACK potrf + potri): a third of the work of
        # solving against the identity; G is symmetric positive definite (l2 > 0)
        # Multithreaded OpenBLAS (the copies numpy and scipy bundle) crashes in potrf on
        # matrices this large (measured here: fine at 12,000 items, a segfault at 16,000); one
        # BLAS thread is slower but sound
        import contextlib

        from threadpoolctl import threadpool_limits

        guard = (
            threadpool_limits(1, "blas")
            if self.n_items > EASE_THREADED_MAX_ITEMS
            else contextlib.nullcontext()
        )
        with guard:
            c, info = lapack.dpotrf(G, lower=False, overwrite_a=True)
            if info != 0:
                raise DataError("EASE: the Gram matrix is not positive definite", column="l2")
            P, info = lapack.dpotri(c, lower=False, overwrite_c=True)
            if info != 0:
                raise DataError("EASE: the Gram matrix could not be inverted", column="l2")
        P = np.triu(P) + np.triu(P, 1).T
        B = P / (-np.diag(P))
        B[np.diag_indices_from(B)] = 0.0
        self.B = B.astype(np.float32)

    def _scores(self, X: sp.csr_matrix, users: IntArray | None, **_: Any) -> Any:
        Xq = _binary(X) if self.params["binary"] else X
        return np.asarray(Xq @ self.B)

    def _similar(self, item: int) -> Any:
        return self.B[item]

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"B": self.B}

    def _load(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.B = arrays["B"]


# -- factor models -------------------------------------------------------------------------------


class _Factors(Recommender):
    """A user vector and an item vector per id; score = their dot product."""

    def _scores(self, X: sp.csr_matrix, users: IntArray | None, **_: Any) -> Any:
        U = self.user_factors[users] if users is not None else self.fold_in(X)
        return U @ self.item_factors.T

    @abc.abstractmethod
    def fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        """User vectors for the rows of ``X`` against the fixed item factors."""

    def _similar(self, item: int) -> Any:
        return _cosine_rows(self.item_factors, item)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _load(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.user_factors = arrays["user_factors"]
        self.item_factors = arrays["item_factors"]


def _implicit_arrays(model: Any) -> tuple[np.ndarray, np.ndarray]:
    uf, itf = model.user_factors, model.item_factors
    if hasattr(uf, "to_numpy"):  # a GPU model
        uf, itf = uf.to_numpy(), itf.to_numpy()
    return np.ascontiguousarray(uf, dtype=np.float32), np.ascontiguousarray(itf, dtype=np.float32)


class ALS(_Factors):
    """Implicit-feedback ALS (``implicit.cpu.als``): confidence ``alpha x weight`` as
    ``implicit`` 0.7 computes it, or ``alpha x log(1 + weight)`` with ``scaling="log"`` (Hu,
    Koren and Volinsky's second form, for weights such as quantities with a long tail)."""

    kind = "als"
    param_names = ("factors", "regularization", "alpha", "iterations", "seed", "scaling")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"factors": 64, "regularization": 0.05, "alpha": 10.0, "iterations": 15, "seed": 0,
                "scaling": "linear"}  # fmt: skip

    def _weights(self, X: sp.csr_matrix) -> sp.csr_matrix:
        scaling = self.params["scaling"]
        if scaling == "linear":
            return X
        if scaling != "log":
            raise DataError("scaling must be linear or log", column="scaling", value=scaling)
        out = X.copy()
        out.data = np.log1p(out.data).astype(np.float32)
        return out

    def _fit(self, X: sp.csr_matrix, **_: Any) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        p = self.params
        with _quiet():
            m = AlternatingLeastSquares(
                factors=int(p["factors"]), regularization=float(p["regularization"]),
                alpha=float(p["alpha"]), iterations=int(p["iterations"]),
                random_state=int(p["seed"]), num_threads=_threads(),
            )  # fmt: skip
            m.fit(self._weights(X), show_progress=False)
        self.user_factors, self.item_factors = _implicit_arrays(m)

    def fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        """The ALS user step as ``implicit`` trains it (confidence ``c = alpha x weight``):
        ``(YᵀY + λI + Σᵢ (cᵢ - 1) yᵢyᵢᵀ) u = Σᵢ cᵢ yᵢ`` over the user's items."""
        X = self._weights(X)
        Y = self.item_factors.astype(np.float64)
        f = Y.shape[1]
        alpha, lam = float(self.params["alpha"]), float(self.params["regularization"])
        YtY = Y.T @ Y + lam * np.eye(f)
        out = np.zeros((X.shape[0], f), dtype=np.float32)
        for r in range(X.shape[0]):
            a, b = X.indptr[r], X.indptr[r + 1]
            if a == b:
                continue
            idx, conf = X.indices[a:b], alpha * X.data[a:b].astype(np.float64)
            Yi = Y[idx]
            A = YtY + (Yi.T * (conf - 1.0)) @ Yi
            out[r] = np.linalg.solve(A, Yi.T @ conf)
        return out


class BPR(_Factors):
    """Bayesian personalised ranking (``implicit.cpu.bpr``; the last factor is the item
    bias, against a constant 1 in the user vector). ``threads`` 1 (the default) makes the
    result depend on the seed alone; more threads update the factors without locks (faster,
    not reproducible: NDCG@10 on MovieLens 100k moved between 0.35 and 0.37 from run to
    run)."""

    kind = "bpr"
    param_names = ("factors", "learning_rate", "regularization", "iterations", "seed", "threads")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100,
                "seed": 0, "threads": 1}  # fmt: skip

    def _implicit(self, iterations: int) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        p = self.params
        t = p["threads"]
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or t < 0:
            raise DataError("threads must be a whole number >= 0 (0: every core)",
                            column="threads", value=t)  # fmt: skip
        return BayesianPersonalizedRanking(
            factors=int(p["factors"]), learning_rate=float(p["learning_rate"]),
            regularization=float(p["regularization"]), iterations=iterations,
            random_state=int(p["seed"]), num_threads=int(p["threads"]) or _threads(),
        )  # fmt: skip

    def _fit(self, X: sp.csr_matrix, **_: Any) -> None:
        # in stages of STAGE iterations, exactly as fit_stages goes: the model the tuner
        # stopped at n iterations is the model a fit with n iterations gives
        n = self.params["iterations"]
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise DataError("iterations must be a whole number >= 1", column="iterations",
                            value=n)  # fmt: skip
        for _done in self._stages(X, BPR.STAGE, int(n)):
            pass

    #: iterations per stage (``implicit`` draws each stage's samples from the seed afresh)
    STAGE = 10

    def fit_stages(self, user_items: Any, every: int, most: int) -> Iterator[int]:
        """Fit ``every`` iterations at a time up to ``most`` (the last stage shorter if need
        be), yielding the iterations done after each stage; between stages the model is
        fitted and ``params["iterations"]`` says how far it got. With ``every =``
        :attr:`STAGE` the model after ``n`` iterations is the one ``fit`` gives with
        ``iterations=n``. SGD on BPR's loss overfits after a data-dependent number of passes,
        so :func:`~mercato.recommend.evaluate.evaluate` stops it on validation."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise DataError("every must be a whole number >= 1", column="every", value=every)
        if isinstance(most, bool) or not isinstance(most, int) or most < 1:
            raise DataError("most must be a whole number >= 1", column="most", value=most)
        X = _csr(user_items)
        if X.nnz == 0:
            raise DataError(f"{self.kind}: no interactions to learn from")
        self.n_users, self.n_items = X.shape
        yield from self._stages(X, every, most)

    def _stages(self, X: sp.csr_matrix, every: int, most: int) -> Iterator[int]:
        B = _binary(X)
        m = self._implicit(every)
        done = 0
        while done < most:
            m.iterations = min(every, most - done)
            with _quiet():
                m.fit(B, show_progress=False)  # implicit continues from the current factors
            done += m.iterations
            self.user_factors, self.item_factors = _implicit_arrays(m)
            self.params["iterations"] = done
            self.fitted = True
            yield done

    def fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        """A ridge projection: the user vector whose scores of the user's items are 1 (the
        bias column kept at 1), with the fitted regularisation."""
        V = self.item_factors[:, :-1].astype(np.float64)
        f = V.shape[1]
        lam = max(float(self.params["regularization"]), 1e-3)
        out = np.zeros((X.shape[0], f + 1), dtype=np.float32)
        out[:, -1] = 1.0
        bias = self.item_factors[:, -1].astype(np.float64)
        for r in range(X.shape[0]):
            a, b = X.indptr[r], X.indptr[r + 1]
            if a == b:
                continue
            Vi = V[X.indices[a:b]]
            target = 1.0 - bias[X.indices[a:b]]
            out[r, :-1] = np.linalg.solve(Vi.T @ Vi + lam * np.eye(f), Vi.T @ target)
        return out


class NMF(_Factors):
    """Non-negative matrix factorisation (scikit-learn): ``X ≈ W H``; unknown users solve the
    ``W`` step with ``H`` fixed."""

    kind = "nmf"
    param_names = ("components", "l2", "iterations", "seed", "binary")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"components": 32, "l2": 0.0, "iterations": 200, "seed": 0, "binary": True}

    def _fit(self, X: sp.csr_matrix, **_: Any) -> None:
        import warnings

        from sklearn.decomposition import NMF as SkNMF
        from sklearn.exceptions import ConvergenceWarning

        p = self.params
        c = int(p["components"])
        if c < 1:
            raise DataError("components must be >= 1", column="components")
        m = SkNMF(n_components=min(c, min(X.shape)), init="nndsvda", max_iter=int(p["iterations"]),
                  alpha_W=float(p["l2"]), alpha_H="same", l1_ratio=0.0,
                  random_state=int(p["seed"]))  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            W = m.fit_transform(_binary(X) if p["binary"] else X)
        self.user_factors = np.ascontiguousarray(W, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(m.components_.T, dtype=np.float32)

    def fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        import warnings

        from sklearn.decomposition import non_negative_factorization
        from sklearn.exceptions import ConvergenceWarning

        p = self.params
        H = self.item_factors.T.astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            W, _, _ = non_negative_factorization(
                (_binary(X) if p["binary"] else X).astype(np.float64), H=H,
                n_components=H.shape[0], update_H=False, max_iter=int(p["iterations"]),
                alpha_W=float(p["l2"]), l1_ratio=0.0, init=None,
            )  # fmt: skip
        return np.asarray(W, dtype=np.float32)


MODELS: dict[str, type[Recommender]] = {
    c.kind: c for c in (Popularity, ItemKNN, EASE, ALS, BPR, NMF)
}


def make_model(kind: str, **params: Any) -> Recommender:
    """A model by name (``popularity``, ``itemknn``, ``ease``, ``als``, ``bpr``, ``nmf``)."""
    if kind not in MODELS:
        raise DataError(
            f"unknown model {kind!r}", column="models", value=kind,
            hint="one of " + ", ".join(MODELS),
        )  # fmt: skip
    return MODELS[kind](**params)


def model_from_state(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Recommender:
    """Rebuild a fitted model from :meth:`Recommender.to_state` (no training-time objects)."""
    kind = str(meta.get("kind"))
    if kind not in MODELS:
        raise MercatoError(f"unknown recommender kind in a saved model: {kind!r}")
    model = MODELS[kind](**dict(meta.get("params") or {}))
    model.n_users, model.n_items = int(meta["n_users"]), int(meta["n_items"])
    model._load(arrays)
    model.fitted = True
    return model
