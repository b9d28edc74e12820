"""The booster's trees as flat arrays, walked by a compiled kernel."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from classifier._jit import njit
from classifier.formats import LABELS

#: Rows walked together through each tree: their slice of the matrix stays in cache while
#: the tree's nodes do too (a larger batch is walked block after block).
_ROW_BLOCK = 64
#: Top bit of a node's feature code: a NaN at this node goes right.
_NAN_RIGHT = np.uint32(1 << 31)


@lru_cache(maxsize=1)
def _walk_kernel() -> Any:
    """The tree walk compiled with numba (a librosa dependency), built on first use."""

    @njit
    def walk(
        X: np.ndarray,
        roots: np.ndarray,
        depth: np.ndarray,
        code: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        value: np.ndarray,
        baseline: np.ndarray,
        n_classes: int,
    ) -> np.ndarray:
        n, n_features = X.shape
        flat_x = X.ravel()
        out = np.empty((n, n_classes))
        for i in range(n):
            for k in range(n_classes):
                out[i, k] = baseline[k]
        at = np.empty(_ROW_BLOCK, np.uint32)
        # Unsigned offsets and indices: numba adds no negative-index fix-up to each load.
        row_at = np.empty(_ROW_BLOCK, np.uint64)
        feature_mask = ~_NAN_RIGHT
        for start in range(0, n, _ROW_BLOCK):
            m = min(_ROW_BLOCK, n - start)
            for j in range(m):
                row_at[j] = np.uint64((start + j) * n_features)
            # Tree by tree, the block's rows side by side: the rows' walks are independent,
            # so the CPU overlaps them instead of waiting on one row's chain of loads.
            for t in range(roots.size):
                for j in range(m):
                    at[j] = roots[t]
                for _ in range(depth[t]):
                    moved = False
                    for j in range(m):
                        node = at[j]
                        c = code[node]
                        x = flat_x[row_at[j] + (c & feature_mask)]
                        # Arithmetic, not a branch: which way a row goes is unpredictable.
                        # NaN compares false: it goes right only where the node says so.
                        go_right = np.uint32(x > value[node]) | (
                            np.uint32(x != x) & (c >> np.uint32(31))
                        )
                        to = left[node]
                        to += go_right * (right[node] - to)
                        moved |= to != node
                        at[j] = to
                    if not moved:  # every row of the block is at its leaf
                        break
                # Trees are stored iteration by iteration, class by class: each class's
                # sum is built in scikit-learn's own order, so the floats come out identical.
                k = t % n_classes
                for j in range(m):
                    out[start + j, k] += value[at[j]]
        return out

    return walk


class _FlatForest:
    """The booster's trees as flat arrays, walked by compiled code.

    scikit-learn predicts tree by tree in a Python loop: 1,200 trees cost about 10 ms per
    call however few rows there are. The compiled walk over the same arrays takes tens of
    microseconds per call and gives the same raw scores, summed in the same order; a numpy
    walk of all trees at once is kept for when numba cannot compile.

    A node is three uint32, ``code`` (feature index, top bit set when a NaN goes right),
    ``left`` and ``right`` (children; a leaf is its own children), and one float64,
    ``value``: the split threshold (float64, so comparisons are exact) or the leaf's value.
    """

    def __init__(self, booster: HistGradientBoostingClassifier) -> None:
        predictors = booster._predictors
        self.n_iter = len(predictors)
        self.n_classes = len(predictors[0])
        trees = [tree.nodes for iteration in predictors for tree in iteration]
        sizes = np.asarray([len(t) for t in trees], dtype=np.int64)
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        flat = np.concatenate(trees)
        if flat.size >= 2**32 or booster.n_features_in_ >= 2**31:
            raise ValueError("the booster is too large for 32-bit node indices")
        if flat["is_categorical"].any():
            raise ValueError("categorical splits are not supported by the flat walk")
        shift = np.repeat(roots, sizes)
        leaf = flat["is_leaf"].astype(bool)
        here = np.arange(flat.size, dtype=np.int64)
        nan_right = ~flat["missing_go_to_left"].astype(bool) & ~leaf
        feature = np.where(leaf, 0, flat["feature_idx"]).astype(np.uint32)
        self.code = feature | np.where(nan_right, _NAN_RIGHT, np.uint32(0))
        # Leaves point to themselves, so extra levels of the walk leave them in place.
        self.left = np.where(leaf, here, flat["left"].astype(np.int64) + shift).astype(np.uint32)
        self.right = np.where(leaf, here, flat["right"].astype(np.int64) + shift).astype(np.uint32)
        self.value = np.where(leaf, flat["value"], flat["num_threshold"]).astype(np.float64)
        self.roots = roots.astype(np.uint32)
        # Levels below a tree's root: the walk of that tree needs at most this many steps.
        self.depth = np.maximum.reduceat(flat["depth"].astype(np.int64), roots).astype(np.uint32)
        self.baseline = np.asarray(booster._baseline_prediction, dtype=np.float64).ravel()
        self.loss = booster._loss
        self.booster = booster
        # The booster's column of each of LABELS (its classes are sorted by name), or None
        # when it never saw some class (CallClassifier._expand fills in zeros).
        classes = [str(c) for c in booster.classes_]
        self.label_columns = (
            np.asarray([classes.index(c) for c in LABELS], dtype=np.intp)
            if sorted(classes) == sorted(LABELS)
            else None
        )

    def raw(self, M: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(M, dtype=np.float64)
        try:
            kernel = _walk_kernel()
        except Exception:  # no numba on this platform: the numpy walk is exact too
            return self._raw_numpy(X)
        return np.asarray(
            kernel(
                X,
                self.roots,
                self.depth,
                self.code,
                self.left,
                self.right,
                self.value,
                self.baseline,
                self.n_classes,
            )
        )

    def _raw_numpy(self, M: np.ndarray) -> np.ndarray:
        n, n_features = M.shape
        flat_x = np.ascontiguousarray(M, dtype=np.float64).ravel()
        feature = (self.code & ~_NAN_RIGHT).astype(np.int64)
        nan_right = self.code >= _NAN_RIGHT
        left = self.left.astype(np.int64)
        right = self.right.astype(np.int64)
        idx = np.broadcast_to(self.roots.astype(np.int64), (n, self.roots.size)).copy()
        row_start = (np.arange(n, dtype=np.int64) * n_features)[:, None]
        for level in range(int(self.depth.max(initial=0))):
            x = flat_x.take(row_start + feature.take(idx))
            go_right = (x > self.value.take(idx)) | (np.isnan(x) & nan_right.take(idx))
            nxt = np.where(go_right, right.take(idx), left.take(idx))
            # Most trees are shallow: stop once every walk has reached its leaf.
            if level >= 3 and np.array_equal(nxt, idx):
                break
            idx = nxt
        values = self.value[idx].reshape(n, self.n_iter, self.n_classes)
        start = np.broadcast_to(self.baseline, (n, 1, self.n_classes))
        # cumsum adds in sequence, exactly as scikit-learn accumulates its iterations.
        return np.cumsum(np.concatenate([start, values], axis=1), axis=1)[:, -1, :]

    def predict_proba(self, M: np.ndarray) -> np.ndarray:
        raw = self.raw(M)
        if self.n_classes == 1:  # binary boosting: one tree per iteration
            p = self.loss.predict_proba(raw.ravel())
            return np.asarray(p)
        # scikit-learn's softmax step for step (same floats), without its array checks; the
        # reductions called as ufuncs, which is what .max and .sum call, minus their wrappers.
        X = raw - np.maximum.reduce(raw, axis=1).reshape(-1, 1)
        np.exp(X, out=X)
        X /= np.add.reduce(X, axis=1).reshape(-1, 1)
        return X
