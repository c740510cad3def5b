"""Fixtures and references for the ingest and query tests: datasets, an ingested store, expected vectors,
and a harness that runs a real `gcl-vdb` command (ingest, embed) and acts on it once k points are written."""

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
from gcl_vectordb.encoders import load_encoder
from gcl_vectordb.store import SearchRequest, open_store


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
    with open_store(store_location) as store:
        return {p.product_id: p for p in store.retrieve(collection, product_ids, with_vectors=True)}


def all_product_ids(data: Path) -> list[str]:
    dataset = open_dataset(data)
    return [p.product_id for c in dataset.corpora for b in dataset.iter_products(c, check_images=False)
            for p in b]


def top10(store_location: Path, queries: list[np.ndarray]) -> list[tuple[list[float], set[str]]]:
    """Per query and mode (fused, rrf; exact), the top-10 scores and the ids scoring above the 10th: which
    of the products tied at the 10th place is kept (RRF scores tie often: equal rank sums) and the order
    of equal scores depend on storage order, which a resumed load may change."""
    with open_store(store_location) as store:
        requests = [SearchRequest(q, mode=mode, limit=10, exact=True) for q in queries for mode in ("fused", "rrf")]
        results = store.search_batch("gs", requests)
    tops = []
    for hits in results:
        scores = [round(hit.score, 5) for hit in hits]
        tops.append((scores, {hit.product_id for hit, score in zip(hits, scores, strict=True) if score > scores[-1]}))
    return tops


def assert_same_collection(resumed: Path, reference: Path, data: Path, bundle: Path) -> None:
    """Collection `gs` of `resumed` holds what `reference` holds: the same ids, payloads and vectors, nothing
    more, and the same top-10s (fused and rrf, exact) for queries of two splits."""
    ids = all_product_ids(data)
    got, want = stored_points(str(resumed), "gs", ids), stored_points(str(reference), "gs", ids)
    assert set(got) == set(want) and len(want) > 0
    with open_store(resumed) as store:
        assert store.count("gs") == len(want)  # nothing duplicated, nothing extra
    for pid, point in want.items():
        assert got[pid].payload == point.payload
        assert set(got[pid].vectors) == set(point.vectors)
        for name, vector in point.vectors.items():
            np.testing.assert_allclose(got[pid].vectors[name], vector, atol=1e-6, err_msg=f"{pid} {name}")
    dataset = open_dataset(data)
    texts = [*list(dataset.queries("in-domain").values())[:6], *list(dataset.queries("novel-doc").values())[:6]]
    queries = list(load_encoder(str(bundle)).encode_texts(texts))
    assert top10(resumed, queries) == top10(reference, queries)


INGEST_HARNESS = textwrap.dedent("""
    import os, shutil, sys, time
    from pathlib import Path

    def act(action):
        if action.startswith("pause:"):  # say so in FILE.paused, then wait until FILE exists
            marker = Path(action[len("pause:"):])
            marker.with_name(marker.name + ".paused").write_text(str(os.getpid()))
            while not marker.exists():
                time.sleep(0.05)
        elif action.startswith("fill:"):  # fill the disk of FILE, leaving BYTES free
            path, left = action[len("fill:"):].rsplit(":", 1)
            with open(path, "wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, max(shutil.disk_usage(Path(path).parent).free - int(left), 1))
        else:
            os.kill(os.getpid(), int(action))

    def main():
        action, threshold = sys.argv[1], int(sys.argv[2])
        # Ctrl-C as a terminal delivers it: a test run started in the background (`pytest &`) inherits SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler, so the stop would never arrive.
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from gcl_vectordb.cli import output

        class Task:
            done, sent = 0, False

            def advance(self, amount=1):
                Task.done += amount
                if action != "0" and Task.done >= threshold and not Task.sent:
                    Task.sent = True
                    act(action)

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
"""`python HARNESS ACTION K COMMAND ARGS…` runs `gcl-vdb COMMAND ARGS…` (ingest, embed) with a progress
display that, once the bar shows K points (right after a batch is written, usually before its cursor is saved), acts: ACTION is a
signal number (sent to itself; 0: none), `pause:FILE` (writes FILE.paused, waits until FILE exists) or
`fill:FILE:BYTES` (fills the disk FILE is on with FILE, leaving BYTES free)."""


def ingest_args(data: Path, model: Path | str, store: Path, *, batch_size: int, workers: int) -> list[str]:
    """The `gcl-vdb ingest` command line loading `data` into collection `gs` of the embedded store `store`."""
    return ["ingest", "--collection", "gs", "--data", str(data), "--model", str(model), "--qdrant", str(store),
            "--batch-size", str(batch_size), "--workers", str(workers)]


def ingest_harness(folder: Path) -> Path:
    """The harness script, written into `folder`."""
    path = folder / "ingest_harness.py"
    path.write_text(INGEST_HARNESS)
    return path


def run_harness(harness: Path, action: str | int, threshold: int, args: list[str], env: dict[str, str],
                *, wait: bool = True, timeout: float = 180) -> subprocess.CompletedProcess | subprocess.Popen:
    """Run the harness (see `INGEST_HARNESS`); `wait=False` returns the running process (text pipes)."""
    command = [sys.executable, str(harness), str(action), str(threshold), *args]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


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
