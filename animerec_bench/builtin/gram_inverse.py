"""The inverse of a shifted Gram matrix, ``(XᵀX + D)⁻¹``: EASE's closed form and SLIM's ADMM
step both start from it (``ease``, ``slim``; ``edlae`` and ``dlae`` through ``ease``)."""

from __future__ import annotations

import numpy as np


def spd_inverse(gram: np.ndarray, shift, dtype=np.float32, what: str = "XᵀX + shift") -> np.ndarray:
    """``(gram + diag(shift))⁻¹`` for a PSD ``gram`` and a ``shift`` > 0 (a scalar, or one value
    per row): Cholesky inverse (LAPACK potrf + potri, about half the work of a general inverse),
    symmetric, C-ordered, in ``dtype``. ``what`` names the matrix in the error if it is not
    positive definite."""
    import scipy.linalg

    m = len(gram)
    g = np.array(gram, dtype=dtype, order="F")
    g[np.diag_indices(m)] += np.asarray(shift, dtype=dtype)
    if m == 0:
        return g
    potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (g,))
    c, info = potrf(g, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        p, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"{what} is not positive definite (LAPACK info {info})")
    symmetrize_upper(p)
    return np.ascontiguousarray(p.T)  # symmetric: the transpose is the same matrix, C-ordered


def symmetrize_upper(a: np.ndarray, block: int = 512) -> None:
    """Copy the upper triangle of square ``a`` onto its lower one, in place, block by block (no
    full-size temporary)."""
    m = len(a)
    for j0 in range(0, m, block):
        j1 = min(j0 + block, m)
        a[j1:, j0:j1] = a[j0:j1, j1:].T
        d = a[j0:j1, j0:j1]
        d[...] = np.triu(d) + np.triu(d, 1).T
