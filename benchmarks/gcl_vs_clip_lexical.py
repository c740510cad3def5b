"""The replication benchmark's keyword rows: BM25 and hybrid (each arm's dense ranking + BM25) per split.

`LEXICAL_ARMS` are evaluated per (arm, seed) by `gcl_vs_clip.run_arm` beside the dense figures, with the
same protocol, splits and seeds; `lexical_table` averages them over seeds. BM25 needs no model, so its
row is the same for every arm and seed (a check that the protocol is deterministic); "gcl + bm25" and
"clip + bm25" are the hybrid rows the issue asks for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LEXICAL_ARMS: dict[str, dict[str, str]] = {"bm25": {"vector": "bm25"}, "hybrid": {"vector": "hybrid", "fusion": "rrf"}}


def lexical_table(runs: Sequence[Mapping[str, Any]], metric: str = "ndcg@10") -> str:
    """Markdown: rows bm25 and `<arm> + bm25` (hybrid, RRF), columns the splits, mean ± std over seeds;
    empty when no run carries keyword figures (results cached before they existed)."""
    rows: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for mode, splits in run.get("lexical", {}).items():
            label = "bm25" if mode == "bm25" else f"{run['arm']} + bm25"
            for split, metrics in splits.items():
                rows.setdefault(label, {}).setdefault(split, []).append(metrics[metric])
    if not rows:
        return ""
    splits = list(next(iter(rows.values())))
    lines = [f"| {metric} | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for label, values in sorted(rows.items()):
        cells = [f"{np.mean(values[s]):.4f} ± {np.std(values[s], ddof=1) if len(values[s]) > 1 else 0.0:.4f}"
                 for s in splits]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return ("\n## Keyword rows: BM25 and hybrid (dense + BM25, RRF), same protocol and seeds\n\n"
            + "\n".join(lines) + "\n")
