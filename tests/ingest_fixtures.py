"""Fixtures and references for the ingest and query tests: datasets, an ingested store, expected vectors,
and a harness that stops a real `gcl-vdb` process at a known point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from gcl_vectordb.data import ImageRejected, decode_image, open_dataset


@pytest.fixture(scope="session")
def ingest_gs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~200-product synthetic dataset (official layout, 32 px images), read-only."""
    from gcl_vectordb.data.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("ingest-gs") / "gs"
    synthesize(SynthConfig(out=out, products=400, queries=20, image_size=32, seed=11, results_per_query=10))
    return out


@pytest.fixture(scope="session")
def ingested(tmp_path_factory: pytest.TempPathFactory, tiny_gs: Path, micro_bundle: Path) -> Path:
    """An embedded store holding collection `gs` = tiny_gs embedded by the micro bundle (read-only)."""
    from gcl_vectordb.ingest import IngestConfig, ingest_dataset

    store = tmp_path_factory.mktemp("ingested") / "store"
    ingest_dataset(IngestConfig(collection="gs", data=tiny_gs, model_ref=str(micro_bundle), store=str(store),
                                batch_size=16, workers=0))
    return store


HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def hostile_store(tmp_path_factory: pytest.TempPathFactory, tiny_gs: Path, micro_bundle: Path) -> Path:
    """tiny_gs with a product titled `<script>alert(1)</script>`, ingested as collection `gs` (read-only)."""
    from gcl_vectordb.ingest import IngestConfig, ingest_dataset

    root = copy_dataset(tiny_gs, tmp_path_factory.mktemp("hostile"))

    def edit(entries):
        entries[0][1]["title"] = HOSTILE
        return entries

    edit_corpus(root, 1, edit)
    store = root.parent / "store"
    ingest_dataset(IngestConfig(collection="gs", data=root, model_ref=str(micro_bundle), store=str(store),
                                workers=0))
    return store


def copy_dataset(source: Path, dest: Path) -> Path:
    """A private copy of a session dataset that a test may change."""
    return Path(shutil.copytree(source, dest / source.name))


def edit_corpus(root: Path, corpus: int, edit) -> None:
    """Rewrite corpus_N.json through `edit(entries: list[(id, fields)]) -> list[(id, fields)]`
    (a list, so that a repeated id can be written as it appears in a real file)."""
    path = root / f"corpus_{corpus}.json"
    entries = edit(list(json.loads(path.read_text(encoding="utf-8")).items()))
    body = ", ".join(f"{json.dumps(key)}: {json.dumps(value)}" for key, value in entries)
    path.write_text("{" + body + "}", encoding="utf-8")


def reference_vectors(data: Path, encoder, weights: dict[str, float]) -> dict[str, dict[str, np.ndarray]]:
    """Expected vectors per product id, computed product by product without the ingest code:
    image = encode_images([decode_image(p)]), title = encode_texts([title]),
    fused = normalize(Σ_f w_f e_f) over the fields the product has (a scale of α does not matter)."""
    expected = {}
    dataset = open_dataset(data)
    for corpus in dataset.corpora:
        for batch in dataset.iter_products(corpus, batch_size=64):
            for product in batch:
                vectors = {"title": encoder.encode_texts([product.title])[0]}
                try:
                    vectors["image"] = encoder.encode_images([decode_image(product)])[0]
                except ImageRejected:  # title only (the ingest rejects such a product, or keeps it if imageless)
                    pass
                total = sum(weights.as_dict()[f] * vectors[f] for f in vectors)
                vectors["fused"] = total / np.linalg.norm(total)
                expected[product.product_id] = vectors
    return expected


def stored_points(store_location: str, collection: str, product_ids: list[str]) -> dict[str, object]:
    """product id → PointRecord (vectors and payload) as the store holds them."""
    from gcl_vectordb.store import open_store

    with open_store(store_location) as store:
        return {p.product_id: p for p in store.retrieve(collection, product_ids, with_vectors=True)}


def all_product_ids(data: Path) -> list[str]:
    dataset = open_dataset(data)
    return [p.product_id for c in dataset.corpora for b in dataset.iter_products(c, check_images=False)
            for p in b]


# ---- a real CLI process stopped mid-run
#
# The harness runs `gcl-vdb <command> …` with a progress display that signals its own process once the bar
# shows k items (right after a batch is written, usually before its cursor is saved), so each stop lands at
# a known place while the decode workers, the encoder and the reader are mid-work.
# Usage: run_harness(path_of_HARNESS, signum, k, ["ingest", "--collection", ...], env).

HARNESS = textwrap.dedent("""
    import os, sys

    def main():
        signum, threshold = int(sys.argv[1]), int(sys.argv[2])
        from gcl_vectordb.cli import output

        class Task:
            done, sent = 0, False

            def advance(self, amount=1):
                Task.done += amount
                if signum and Task.done >= threshold and not Task.sent:
                    Task.sent = True
                    os.kill(os.getpid(), signum)

            def update(self, *, completed=None, total=None):
                if completed is not None and not Task.done:
                    Task.done = completed

            def close(self):
                pass

        class Progress:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                pass

            def task(self, description, total=None, unit="it"):
                return Quiet() if unit == "B" else Task()  # byte counts (verifying files) do not count

        class Quiet(Task):
            def advance(self, amount=1):
                pass

            def update(self, *, completed=None, total=None):
                pass

        output.ProgressBars = Progress
        sys.argv = ["gcl-vdb", *sys.argv[3:]]
        from gcl_vectordb.cli.app import main as app_main
        app_main()

    if __name__ == "__main__":  # decode workers are spawned: they import this file without running it
        main()
""")


def run_harness(harness: Path, signum: int, threshold: int, args: list[str], env: dict[str, str]):
    return subprocess.run([sys.executable, str(harness), str(signum), str(threshold), *args], env=env,
                          capture_output=True, text=True, timeout=180)


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_until_gone(marker: str, timeout_s: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
