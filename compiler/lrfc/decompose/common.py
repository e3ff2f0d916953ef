"""Helpers every decomposition method may use: rank checks and eigenvector bases."""

from __future__ import annotations

import numpy as np


def check_ranks(ranks, top: tuple[int, ...], method: str) -> tuple[int, ...]:
    """Ranks as a tuple of ints in [1, top]; the error names what was received."""
    ranks = tuple(int(r) for r in ranks)
    if len(ranks) != len(top) or any(r < 1 or r > t for r, t in zip(ranks, top)):
        raise ValueError(f"{method} ranks must be {len(top)} integers in [1, {top}], received {ranks}")
    return ranks


def top_eigvecs(gram: np.ndarray) -> np.ndarray:
    """All eigenvectors of a symmetric matrix, largest eigenvalue first, signs fixed."""
    vals, vecs = np.linalg.eigh(0.5 * (gram + gram.T))
    vecs = vecs[:, ::-1]
    pivot = np.argmax(np.abs(vecs), axis=0)
    return vecs * np.sign(vecs[pivot, np.arange(vecs.shape[1])])
