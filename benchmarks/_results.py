"""Where benchmark scripts put their figures: benchmarks/results/<name>.{json,md}.

A run at another size than the one the issue asks for writes `<name>.quick.{json,md}` (git-ignored),
so a smoke run never replaces a result the README quotes.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, result: dict, markdown: str, *, full_size: bool,
                  out_dir: Path | None = None, echo: bool = True) -> Path:
    """Print the JSON (unless `echo` is False), write both files into `out_dir` (default
    benchmarks/results; a device run writes under its $OUT); returns the JSON path."""
    if echo:
        print(json.dumps(result, indent=2))
    stem = name if full_size else f"{name}.quick"
    folder = RESULTS if out_dir is None else Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.md").write_text(markdown)
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
