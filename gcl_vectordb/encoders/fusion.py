"""The fused document vector: one embedding per product from its per-field embeddings (docs/protocol.md).

    v = normalize( Σ_f α_f · normalize(e_f) ),   α_f = w_f · present_f / Σ_g w_g · present_g

so a product without an image is represented by its title alone (α renormalised over present fields).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gcl_vectordb.domain import FieldWeights
from gcl_vectordb.encoders.protocol import l2_normalize
from gcl_vectordb.errors import DataError, ModelError


def fused_document_vector(
    fields: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray],
    weights: FieldWeights,
) -> np.ndarray:
    """Per-field embeddings `{field: (n, d)}` + presence masks `{field: (n,) bool}` → `(n, d)` float32.

    Rows of an absent field may hold anything (zeros, NaN); they get weight 0. A row with no present
    field of positive weight raises `DataError` naming the rows.
    Example: `fused_document_vector({"image": I, "title": T}, {"image": has_img, "title": has_title},
    DEFAULT_FIELD_WEIGHTS)`.
    """
    if not fields:
        raise ModelError("fused_document_vector needs at least one field")
    names = list(fields)
    alphas = weights.as_dict()
    missing = [f for f in names if f not in alphas or f not in present]
    if missing:
        raise ModelError(f"no weight or presence mask for field(s) {missing}",
                         f"give weights and masks for every field in {list(alphas)}")
    first = np.asarray(fields[names[0]])
    n, d = first.shape
    alpha = np.zeros((n, len(names)), dtype=np.float64)
    for j, f in enumerate(names):
        emb, mask = np.asarray(fields[f]), np.asarray(present[f], dtype=bool)
        if emb.shape != (n, d) or mask.shape != (n,):
            raise ModelError(f"field {f!r}: embeddings {emb.shape} / mask {mask.shape}, expected ({n}, {d}) / ({n},)")
        alpha[:, j] = mask * alphas[f]
    total = alpha.sum(axis=1)
    empty = np.flatnonzero(total <= 0)
    if empty.size:
        raise DataError(f"{empty.size} document(s) have no field to embed (rows {empty[:10].tolist()})",
                        "give every product an image or a title, or drop those rows")
    alpha /= total[:, None]
    fused = np.zeros((n, d), dtype=np.float64)
    for j, f in enumerate(names):
        rows = alpha[:, j] > 0
        fused[rows] += alpha[rows, j, None] * l2_normalize(np.asarray(fields[f])[rows])
    return l2_normalize(fused)
