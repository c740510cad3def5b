"""The pretrained start of the replication: gcl-tiny trained with the plain CLIP loss on a separate collection.

The paper fine-tunes a *pretrained* CLIP. Offline there are no pretrained weights, so this stage makes
them: an image–caption collection (`gcl_vectordb.data.synth.synthesize_captions`: products drawn and
titled like the benchmark's, from the same attribute vocabulary, but from their own seed, each with a
caption, a short description such as "photo of a red dress" — no queries, no result lists, no splits)
and gcl-tiny trained on its (caption, product) pairs from random initialisation with the plain CLIP loss
(`data.pairs=captions`, `loss.kind=clip`). The product is the document as the benchmark stores it, the
fused image + title vector: trained against the image alone, gcl-tiny never learnt the categories —
after 3 epochs its image embeddings separated colours (linear probe 95 %) but not categories (11 %,
chance 8 %) and its text embeddings of "a dress" and "a shirt" were identical (cosine 1.00): neither
tower can start on the silhouette before the other has; a title that names the category gives the
text tower that start. Before training, `check_separate` proves the collection shares no product id,
no image and no query text with the benchmark dataset and holds no list (a `DataError` otherwise).

The checkpoint is cached under --work, keyed by every setting: a later call (or the benchmarks that
start from it, `gcl_vs_clip_pretrained.py`, `gcl_weight_study.py`) reuses it; an interrupted pretraining
resumes from its last checkpoint. One command makes it:

    python benchmarks/gcl_pretrain.py [--quick] [--work gcl-vdb-work/gcl_vs_clip_pretrained]

Full size: 20,000 captioned products (64 px, seed 1001), 6 epochs of batch 64 (1,872 steps), lr 5e-4,
100 warm-up steps, cosine schedule. --quick: 300 products, 12 steps of batch 16 (proves it runs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gcl_vectordb.data import open_dataset  # noqa: E402
from gcl_vectordb.data.synth.text import DESCRIPTION_ODDS  # noqa: E402
from gcl_vectordb.errors import DataError  # noqa: E402
from gcl_vectordb.files import write_json_atomic  # noqa: E402

FULL: dict[str, Any] = {"captions": 20000, "caption_seed": 1001, "description_odds": DESCRIPTION_ODDS,
                        "document": "image+title", "image_size": 64, "model": "gcl-tiny",
                        "epochs": 6, "batch_size": 64, "lr": 5e-4, "warmup_steps": 100, "max_steps": None}
QUICK: dict[str, Any] = {**FULL, "captions": 300, "epochs": 1, "batch_size": 16, "warmup_steps": 2, "max_steps": 12}


def caption_collection(work: Path, settings: dict[str, Any]) -> Path:
    """The image–caption collection of `settings` under work/ (generated once)."""
    from benchmarks.gcl_vs_clip import generated_once
    from gcl_vectordb.data.synth import CaptionConfig, synthesize_captions

    root = work / (f"captions-{settings['captions']}-{settings['caption_seed']}-odds{DESCRIPTION_ODDS:.2f}-"
                   f"{settings['image_size']}px")
    return generated_once(root, lambda: synthesize_captions(CaptionConfig(
        out=root, products=settings["captions"], seed=settings["caption_seed"], image_size=settings["image_size"],
        overwrite=True)))


def _products(root: Path) -> dict[str, tuple[bytes, str]]:
    """{product_id: (sha256 of its image file, its caption in lower case or "")} over every corpus of the
    dataset at `root`."""
    dataset = open_dataset(root)
    return {p.product_id: (hashlib.sha256(p.read_image_bytes() or b"").digest(), p.extra.get("caption", "").lower())
            for corpus in dataset.corpora for batch in dataset.iter_products(corpus) for p in batch}


def check_separate(captions: Path, benchmark: Path) -> dict[str, int]:
    """Raise a DataError unless the caption collection is disjoint from the benchmark: no split files (no
    queries, no lists), no product id, no image (by content) in common, and no caption (the pretraining's
    text side) that equals one of the benchmark's queries. Returns the sizes compared."""
    pretraining, evaluated = open_dataset(captions), open_dataset(benchmark)
    if pretraining.splits:
        raise DataError(f"{captions} holds splits ({', '.join(s.name for s in pretraining.splits)}): "
                        "a pretraining collection must hold no queries or result lists")
    ours, theirs = _products(captions), _products(benchmark)
    queries = {text.lower() for split in evaluated.splits for text in evaluated.queries(split).values()}
    shared_ids = sorted(set(ours) & set(theirs))
    shared_images = {image for image, _ in ours.values()} & {image for image, _ in theirs.values()}
    shared_queries = sorted({caption for _, caption in ours.values()} & queries)
    if shared_ids or shared_images or shared_queries:
        raise DataError(f"the caption collection {captions} shares {len(shared_ids)} product ids, "
                        f"{len(shared_images)} images and {len(shared_queries)} query texts with the benchmark "
                        f"{benchmark} (e.g. {(shared_ids + shared_queries)[:3]})", "draw it from another seed")
    return {"caption_products": len(ours), "benchmark_products": len(theirs), "benchmark_queries": len(queries),
            "shared_ids": 0, "shared_images": 0, "shared_queries": 0}


def pretrain_config(captions: Path, out: Path, settings: dict[str, Any]):
    from trainer.config import load_config

    overrides = ["data.pairs=captions", "loss.kind=clip", "eval.holdout_fraction=0",
                 f"optim.warmup_steps={settings['warmup_steps']}"]
    updates = {"out": out, "data.root": captions, "model.name": settings["model"], "epochs": settings["epochs"],
               "batch_size": settings["batch_size"], "optim.lr": settings["lr"], "max_steps": settings["max_steps"]}
    return load_config(None, updates=updates, overrides=overrides)


def settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def pretrained_checkpoint(work: Path, settings: dict[str, Any], benchmark: Path) -> tuple[Path, dict[str, Any]]:
    """The run folder of the pretrained model (trained now unless cached) and its record: settings,
    the separation check, steps, seconds, final loss."""
    from trainer.checkpointing import RunFolder
    from trainer.recipe import run_training

    run_dir = work / f"pretrain-{settings_key(settings)}"
    done = run_dir / "pretrain.json"
    if done.is_file():
        return run_dir, json.loads(done.read_text())
    captions = caption_collection(work, settings)
    separation = check_separate(captions, benchmark)
    resume = RunFolder(run_dir).latest_checkpoint() is not None
    print(f"pretraining {settings['model']} on {captions.name}{' (resuming)' if resume else ''} ...", flush=True)
    clock, cpu = time.perf_counter(), time.process_time()
    result = run_training(pretrain_config(captions, run_dir, settings), resume=resume)
    if result.interrupted:
        raise SystemExit("pretraining interrupted: run the same command again to resume it")
    record = {"settings": settings, "captions": str(captions), "separation": separation, "steps": result.steps,
              "train_pairs": result.data.train_pairs, "final_loss": result.final_loss,
              "seconds": time.perf_counter() - clock, "cpu_seconds": time.process_time() - cpu,
              "pairs_per_s": result.pairs_per_second}
    write_json_atomic(done, record)
    return run_dir, record


def main() -> None:
    from benchmarks.gcl_vs_clip import make_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny size: proves the script runs")
    parser.add_argument("--work", type=Path, default=Path("gcl-vdb-work") / "gcl_vs_clip_pretrained")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    benchmark = make_dataset(args.work, {"products": 300 if args.quick else 3000, "queries": 40 if args.quick else 400,
                                         "data_seed": 0})
    run_dir, record = pretrained_checkpoint(args.work, settings, benchmark)
    print(json.dumps({"checkpoint": str(run_dir), **record}, indent=2))


if __name__ == "__main__":
    main()
