"""Where benchmark scripts put their figures: benchmarks/results/<name>.{json,md}.

A run at another size than the one the issue asks for writes `<name>.quick.{json,md}` (git-ignored),
so a smoke run never replaces a result the README quotes.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, result: dict, markdown: str, *, full_size: bool) -> Path:
    """Print the JSON, write both files; returns the JSON path."""
    print(json.dumps(result, indent=2))
    stem = name if full_size else f"{name}.quick"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(markdown)
    path = RESULTS / f"{stem}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
