"""The offline demo as a resumable pipeline of the library's own steps.

synthetic dataset → GCL training of gcl-tiny → ONNX export → ingest into the embedded store → showcase
queries (and an HTML page) → `evaluate --split all`; with `baseline`, the CLIP-loss model takes the same
path into a second collection and the two are compared side by side.

Each stage records a fingerprint of its inputs in `<work>/demo-state.json`; a re-run skips a stage whose
fingerprint is unchanged and whose output is still there, so an interrupted demo continues where it
stopped (training itself resumes from its last checkpoint). This module lives in the CLI layer because it
drives `trainer` and `exporters`, which the library proper never imports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gcl_vectordb.data.synth import SynthConfig, synthesize
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.evaluation.runner import EvalConfig, evaluate
from gcl_vectordb.files import write_json_atomic
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from gcl_vectordb.search.html import write_demo_page
from gcl_vectordb.search.query import search_products
from gcl_vectordb.store import open_store

log = logging.getLogger(__name__)

STATE_FILE = "demo-state.json"
SHOWCASE_QUERIES: tuple[str, ...] = ("red summer dress", "striped shirt", "leather bag", "blue denim jacket")
LOSSES: tuple[str, ...] = ("gcl", "clip")


@dataclass(frozen=True)
class DemoConfig:
    """The demo's settings: where it works, which store and collection, how big the synthetic dataset is.

    `collection` holds the GCL model's products; the baseline (CLIP loss) goes to `<collection>-clip`.
    `epochs` / `max_steps`: None keeps the trainer's defaults (tuned for this demo on 2 CPU cores);
    `train_overrides` change any other training setting of both models.
    """

    work: Path
    store: str
    collection: str = "gs10m"
    products: int = 3000
    queries: int = 400
    seed: int = 0
    epochs: int | None = None
    max_steps: int | None = None
    baseline: bool = False
    fresh: bool = False
    queries_to_show: tuple[str, ...] = SHOWCASE_QUERIES
    train_overrides: tuple[str, ...] = ()  # `key.sub=value` training settings, as `gcl-vdb train -o`

    def __post_init__(self) -> None:
        if self.products < 50 or self.queries < 20:
            raise ConfigError("the demo needs at least 50 products and 20 queries")
        if self.epochs is not None and self.epochs < 1 or self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("epochs and max steps must be ≥ 1")

    def collection_for(self, loss: str) -> str:
        return self.collection if loss == "gcl" else f"{self.collection}-{loss}"


@dataclass(frozen=True)
class StageRun:
    """One stage of one demo run: ran or skipped (finished earlier with the same inputs), seconds, a note."""

    name: str
    status: str  # "ran" | "skipped"
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class DemoReport:
    """What the demo did and found: stages, showcase query results per loss, the evaluation per loss."""

    work: Path
    stages: tuple[StageRun, ...]
    queries: dict[str, list[Any]]  # loss → [QueryResult] of the showcase queries
    evaluations: dict[str, dict[str, dict[str, float]]]  # loss → split → headline metrics
    html: Path
    seconds: float
    collections: dict[str, str] = field(default_factory=dict)  # loss → collection name


class _StageState:
    """`demo-state.json`: the fingerprint and result of every finished stage."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        self.stages: dict[str, dict[str, Any]] = {}
        if path.is_file() and not fresh:
            try:
                self.stages = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                log.warning("ignoring an unreadable %s: every stage runs again", path)

    def finished(self, name: str, fingerprint: str) -> dict[str, Any] | None:
        entry = self.stages.get(name)
        return entry if entry and entry.get("fingerprint") == fingerprint else None

    def record(self, name: str, fingerprint: str, **result: Any) -> None:
        self.stages[name] = {"fingerprint": fingerprint, **result}
        write_json_atomic(self.path, self.stages)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able inputs."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class DemoRunner:
    """Runs the stages in order; `run()` returns the `DemoReport`."""

    def __init__(self, config: DemoConfig, progress: Progress = NULL_PROGRESS,
                 on_stage: Callable[[StageRun], None] | None = None) -> None:
        self.config = config
        self.progress = progress
        self.on_stage = on_stage or (lambda stage: None)
        config.work.mkdir(parents=True, exist_ok=True)
        self.state = _StageState(config.work / STATE_FILE, config.fresh)
        self.stages: list[StageRun] = []

    # ------------------------------------------------------------------ helpers

    def _stage(self, name: str, inputs: str, output_ok: bool, work: Callable[[], tuple[str, dict]]) -> dict:
        """Run `work` unless the stage finished with the same inputs and its output still exists."""
        done = self.state.finished(name, inputs)
        if done is not None and output_ok:
            stage = StageRun(name, "skipped", 0.0, done.get("detail", ""))
            self.stages.append(stage)
            self.on_stage(stage)
            return done
        start = time.perf_counter()
        detail, result = work()
        seconds = time.perf_counter() - start
        self.state.record(name, inputs, detail=detail, seconds=seconds, **result)
        stage = StageRun(name, "ran", seconds, detail)
        self.stages.append(stage)
        self.on_stage(stage)
        return self.state.stages[name]

    @property
    def data_dir(self) -> Path:
        return self.config.work / "data"

    def run_dir(self, loss: str) -> Path:
        return self.config.work / "runs" / loss

    def model_dir(self, loss: str) -> Path:
        return self.config.work / ("model" if loss == "gcl" else f"model-{loss}")

    # ------------------------------------------------------------------ stages

    def synthesize(self) -> str:
        c = self.config
        synth = SynthConfig(out=self.data_dir, products=c.products, queries=c.queries, seed=c.seed, overwrite=True)
        inputs = fingerprint("synth", c.products, c.queries, c.seed)

        def work() -> tuple[str, dict]:
            report = synthesize(synth, self.progress)
            pairs = sum(s.pairs for s in report.info.splits)
            return f"{report.catalogue:,} products, {report.queries_train + report.queries_unseen:,} queries, " \
                   f"{pairs:,} judged pairs, {report.images:,} images", {}

        self._stage("data", inputs, (self.data_dir / "corpus_1.json").is_file(), work)
        return inputs

    def train(self, loss: str, data_inputs: str) -> str:
        from trainer.config import load_config  # cold start: torch, only when the demo trains
        from trainer.recipe import run_training

        c = self.config
        run_dir = self.run_dir(loss)
        updates = {"out": run_dir, "data.root": self.data_dir, "loss.kind": loss, "seed": c.seed,
                   "epochs": c.epochs, "max_steps": c.max_steps}
        train_config = load_config(None, updates=updates, overrides=self.config.train_overrides)
        inputs = fingerprint("train", data_inputs, train_config.to_dict())

        def work() -> tuple[str, dict]:
            # A run folder from an interrupted demo with the same settings continues from its checkpoint.
            resume = (run_dir / "run.json").is_file() and self.state.stages.get(f"train-{loss}-started") == inputs
            self.state.record(f"train-{loss}-started", inputs)
            if not resume and run_dir.exists():
                _clear_run_folder(run_dir)
            result = run_training(train_config, resume=resume, progress=self.progress)
            if result.interrupted:
                raise KeyboardInterrupt
            after = result.eval_after or {}
            before = result.eval_before or {}
            detail = (f"{result.steps} steps, {result.pairs_per_second:,.0f} pairs/s, held-out NDCG@10 "
                      f"{before.get('ndcg@10', float('nan')):.3f} → {after.get('ndcg@10', float('nan')):.3f}")
            return detail, {"checkpoint": str(result.checkpoint)}

        done = self._stage(f"train-{loss}", inputs, (run_dir / "run.json").is_file(), work)
        return fingerprint(inputs, done.get("checkpoint"))

    def export(self, loss: str, train_inputs: str) -> str:
        from exporters import ExportConfig, export_bundle  # cold start: torch and onnx

        out = self.model_dir(loss)
        inputs = fingerprint("export", train_inputs)

        def work() -> tuple[str, dict]:
            manifest = export_bundle(ExportConfig(out=out, checkpoint=self.run_dir(loss)), self.progress)
            worst = max(p.max_cosine_deviation for p in manifest.parity["fp32"].values())
            return f"{out} (fp32 parity: max 1−cos {worst:.1e})", {}

        self._stage(f"export-{loss}", inputs, (out / "manifest.json").is_file(), work)
        return inputs

    def ingest(self, loss: str, export_inputs: str) -> str:
        c = self.config
        collection = c.collection_for(loss)
        inputs = fingerprint("ingest", export_inputs, c.store, collection)
        with open_store(c.store) as store:
            present = collection in {r.name for r in store.list_collections()}

        def work() -> tuple[str, dict]:
            if present and self.state.stages.get(f"ingest-{loss}-started") != inputs:
                # Built from another model or dataset: the demo owns this collection, so it starts over.
                with open_store(c.store) as store:
                    store.drop(collection)
            self.state.record(f"ingest-{loss}-started", inputs)
            report = ingest_dataset(IngestConfig(collection=collection, data=self.data_dir,
                                                 model_ref=str(self.model_dir(loss).resolve()), store=c.store),
                                self.progress)
            rejected = sum(report.rejects.values())
            return (f"{report.points_total:,} points into {collection} ({report.points_per_s:,.0f} points/s), "
                    f"{rejected:,} rejected"), {}

        self._stage(f"ingest-{loss}", inputs, present, work)
        return inputs

    def show_queries(self, loss: str) -> list[Any]:
        with open_store(self.config.store) as store:
            return [search_products(store, self.config.collection_for(loss), text, limit=8)
                    for text in self.config.queries_to_show]

    def evaluate(self, loss: str, ingest_inputs: str) -> dict[str, dict[str, float]]:
        c = self.config
        report_path = c.work / f"evaluation-{loss}.json"
        inputs = fingerprint("evaluate", ingest_inputs)

        def work() -> tuple[str, dict]:
            report = evaluate(EvalConfig(splits=("all",), collection=c.collection_for(loss), store=c.store),
                              self.progress)
            report.write_json(report_path)
            headline = {s.split: s.headline() for s in report.splits}
            mean = sum(h["ndcg@10"] for h in headline.values()) / len(headline)
            return f"4 splits, mean NDCG@10 {mean:.3f} → {report_path}", {"headline": headline}

        done = self._stage(f"evaluate-{loss}", inputs, report_path.is_file(), work)
        return done["headline"]

    # ------------------------------------------------------------------ the whole demo

    def run(self) -> DemoReport:
        start = time.perf_counter()
        data_inputs = self.synthesize()
        losses = LOSSES if self.config.baseline else ("gcl",)
        queries: dict[str, list[Any]] = {}
        evaluations: dict[str, dict[str, dict[str, float]]] = {}
        for loss in losses:
            trained = self.train(loss, data_inputs)
            exported = self.export(loss, trained)
            ingested = self.ingest(loss, exported)
            queries[loss] = self.show_queries(loss)
            evaluations[loss] = self.evaluate(loss, ingested)
        html = write_demo_page(self.config.work / "demo.html", queries, evaluations)
        return DemoReport(
            work=self.config.work, stages=tuple(self.stages), queries=queries, evaluations=evaluations,
            html=html, seconds=time.perf_counter() - start,
            collections={loss: self.config.collection_for(loss) for loss in losses},
        )


def _clear_run_folder(run_dir: Path) -> None:

    shutil.rmtree(run_dir)


def run_demo(config: DemoConfig, progress: Progress = NULL_PROGRESS,
             on_stage: Callable[[StageRun], None] | None = None) -> DemoReport:
    """Run (or resume) the demo; see the module docstring."""
    return DemoRunner(config, progress, on_stage).run()
