"""GCLRecipe: fine-tune an open_clip model with the GCL loss — setup → train → save_checkpoint → cleanup.

    result = run_training(load_config(overrides=["out=runs/demo", "data.root=gcl-vdb-work/data"]))

One code path for one process and for torchrun (`torchrun --nproc_per_node=N -m trainer train ...`):
the batch sampler plans global batches and hands each rank its slice, the loss gathers features across
ranks (global negatives), DDP averages the gradients, and only rank 0 evaluates and writes files.

A step: `optim.accumulation` micro-batches, each a forward of the towers and the multi-field GCL loss
(features in fp32; towers under bf16 autocast on CUDA), backward of loss / accumulation; then gradient
clipping, AdamW, the warm-up + cosine schedule, and the logit scale clamped to ≤ loss.logit_scale_max.
Negatives come from the micro-batch (accumulation adds no negatives). Checkpoints at every epoch end, on
Ctrl-C / SIGTERM and at the end; `resume=True` continues the step count, schedule and data position.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from gcl_vectordb.data import RejectLog
from gcl_vectordb.encoders.checkpoints import save_checkpoint_folder
from gcl_vectordb.encoders.models import create_clip_model
from gcl_vectordb.encoders.refs import CHECKPOINT_WEIGHTS
from gcl_vectordb.encoders.tokenizer import ClipTokenizer, open_clip_vocab_path
from gcl_vectordb.errors import ConfigError
from gcl_vectordb.progress import NULL_PROGRESS, Progress
from trainer.checkpointing import RunFolder, TrainState, load_train_state, restore_rng_state, save_train_state
from trainer.config import LossConfig, TrainConfig
from trainer.data import Augment, PairBatch, PairDataset, collate_pairs
from trainer.distributed import cleanup_distributed, init_distributed
from trainer.evaluation import TrainingModelEncoder, evaluate_retrieval
from trainer.interrupt import StopFlag
from trainer.losses import MultiFieldGCLLoss
from trainer.model import ClipTowers
from trainer.optim import create_optimizer, create_scheduler
from trainer.pairs import load_training_data
from trainer.records import StepMetrics, TrainResult, now_utc, versions, warn_on_changed_data_order
from trainer.sampler import UniqueBatchSampler

log = logging.getLogger(__name__)


def _needed_fields(loss: LossConfig) -> set[str]:
    fields = {side for term in loss.terms for side in term[:2]}
    if "fused" in fields:
        fields |= set(loss.field_weights.positive())
    return fields - {"fused"}


class GCLRecipe:
    """The training recipe; see the module docstring. Call `setup()`, `train()`, then `cleanup()`."""

    def __init__(self, config: TrainConfig, *, resume: bool = False, progress: Progress = NULL_PROGRESS) -> None:
        if config.out is None:
            raise ConfigError("no run folder given", "pass --out RUN_DIR (or set out in the config file)")
        self.config = config
        self.resume = resume
        self.progress = progress
        self.run = RunFolder(config.out)
        self.rejects = RejectLog()
        self.state = TrainState()
        self.stop = StopFlag()
        self._epochs: list[dict] = []
        self._eval_before: dict[str, float] | None = None
        self._last_eval: tuple[int, dict[str, float]] | None = None
        self._checkpoint: Path | None = None
        self._saved_step = -1
        self._recent = deque(maxlen=10)
        self._reported: set[str] = set()
        self._record: dict = {}
        self._session_pairs, self._session_seconds = 0, 0.0
        self._started: float | None = None
        self._wall_before = 0.0  # wall seconds of the earlier sessions of a resumed run

    # --- setup ------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Distributed context, seeds, data, model (DDP-wrapped under torchrun), optimizer, schedule."""
        cfg = self.config
        self.ctx = init_distributed(device=None if cfg.device == "auto" else cfg.device)
        if not self.ctx.is_main:
            self.progress = NULL_PROGRESS
        self._check_run_folder()
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        self.data = load_training_data(cfg.data, cfg.eval, cfg.loss.weight_transform(), seed=cfg.seed,
                                       rejects=self.rejects)
        self._setup_model()
        self._setup_batches()
        self.optimizer = create_optimizer(self.clip, cfg.optim)
        self.scheduler = create_scheduler(self.optimizer, cfg.optim, self.total_steps)
        if self.resume:
            self._restore()
        elif self.ctx.is_main:
            self._record = {"started_at": now_utc()}
            self._write_record("running")

    def _check_run_folder(self) -> None:
        latest = self.run.latest_checkpoint()
        if self.resume and latest is None:
            raise ConfigError(f"nothing to resume in {self.run.root}: it holds no checkpoint yet",
                              "start the run without --resume")
        if not self.resume and self.run.read_record().get("checkpoint"):
            raise ConfigError(f"{self.run.root} already holds a training run",
                              "pass --resume to continue it, or choose another --out")

    def _setup_model(self) -> None:
        cfg = self.config
        device = self.ctx.device
        self.loaded = create_clip_model(cfg.model.ref)
        self.clip = self.loaded.model.to(device)
        if cfg.loss.logit_scale_init is not None and self.loaded.source.kind == "arch":  # random init only
            with torch.no_grad():
                self.clip.logit_scale.fill_(math.log(cfg.loss.logit_scale_init))
        self.loss_fn = MultiFieldGCLLoss(cfg.loss.field_weights, cfg.loss.loss_terms())
        fields = _needed_fields(cfg.loss)
        self.towers = towers = ClipTowers(self.clip, fields)
        self.model = towers
        if self.ctx.is_distributed:
            # A tower the loss never uses gets no gradient: DDP must be told to expect that.
            unused = "image" not in fields or not fields & {"query", "title"}
            self.model = torch.nn.parallel.DistributedDataParallel(towers, find_unused_parameters=unused)
        self.clip.train()
        workers = cfg.data.workers
        if workers is None:
            workers = 0 if device.type == "cpu" else min(8, (os.cpu_count() or 1) // self.ctx.world_size)
        self.workers = workers
        bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
        self.autocast_dtype = torch.bfloat16 if bf16 else None

    def _setup_batches(self) -> None:
        cfg = self.config
        pairs = self.data.pairs
        tokenizer = ClipTokenizer(open_clip_vocab_path(), self.loaded.context_length)
        preprocessor = self.loaded.preprocessor()
        augment = Augment() if cfg.data.augment else None
        self.dataset = PairDataset(pairs, tokenizer, preprocessor, augment=augment, seed=cfg.seed)
        self.encoder = None
        if self.ctx.is_main and self.data.eval_set is not None:
            self.encoder = TrainingModelEncoder(self.loaded, device=self.ctx.device, batch_size=cfg.eval.batch_size,
                                                autocast_dtype=self.autocast_dtype)
        self.sampler = UniqueBatchSampler(pairs.query_index, pairs.product_index, cfg.batch_size, seed=cfg.seed,
                                          rank=self.ctx.rank, world_size=self.ctx.world_size)
        accumulation, limit = cfg.optim.accumulation, cfg.max_steps or math.inf
        self.epoch_steps: list[int] = []
        for epoch in range(cfg.epochs):
            self.epoch_steps.append(len(self.sampler.plan(epoch).batches) // accumulation)
            if sum(self.epoch_steps) >= limit:
                break
        if self.epoch_steps[0] == 0:
            raise ConfigError(
                f"the {len(pairs)} training pairs ({len(pairs.queries)} queries) make no full step of "
                f"{accumulation} × {self.sampler.global_batch_size} pairs with distinct queries and products",
                "lower batch_size (at most the number of distinct training queries) or optim.accumulation",
            )
        self.total_steps = int(min(sum(self.epoch_steps), limit))

    def _restore(self) -> None:
        folder = self.run.latest_checkpoint()
        assert folder is not None  # checked in _check_run_folder
        document = load_train_state(folder)
        if document["world_size"] != self.ctx.world_size:
            raise ConfigError(f"{folder} was written by {document['world_size']} processes, this run has "
                              f"{self.ctx.world_size}", "resume with the same number of processes")
        self.clip.load_state_dict(load_file(str(folder / CHECKPOINT_WEIGHTS)), strict=True)
        self.optimizer.load_state_dict(document["optimizer"])
        self.scheduler.load_state_dict(document["scheduler"])
        self.state = document["state"]
        restore_rng_state(document["rng"])
        self._checkpoint, self._saved_step = folder, self.state.step
        self._record = self.run.read_record()
        warn_on_changed_data_order(self._record.get("config", {}), self.config.to_dict())
        self._wall_before = float(self._record.get("wall_seconds", 0.0))
        self._epochs = list(self._record.get("epochs", []))
        self._eval_before = self._record.get("eval_before")
        if self._record.get("eval") is not None:
            self._last_eval = (self._record.get("eval_step", -1), self._record["eval"])
        if self.ctx.is_main:
            self.run.truncate_metrics(self.state.step)
        log.info("resuming %s at step %d (epoch %d, batch %d)", folder, self.state.step, self.state.epoch,
                 self.state.batch_in_epoch)

    # --- train ------------------------------------------------------------------------------------

    def train(self) -> TrainResult:
        """Train to `total_steps` (or until Ctrl-C), evaluating and checkpointing on the way."""
        started = self._started = time.perf_counter()
        self.stop.install()
        global_batch = self.sampler.global_batch_size * self.config.optim.accumulation
        task = self.progress.task("training", total=self.total_steps * global_batch, unit="pairs")
        task.update(completed=self.state.step * global_batch)
        try:
            if self.config.eval.before_training and self.state.step == 0 and self._eval_before is None:
                self._eval_before = self.evaluate()
            interrupted = self._train_loop(task)
            if not interrupted and self.config.eval.enabled and self._eval_step() != self.state.step:
                self.evaluate()
            self.save_checkpoint(status="interrupted" if interrupted else "completed")
            if self.ctx.is_distributed:
                torch.distributed.barrier()  # the other ranks wait for rank 0's evaluation and checkpoint
        finally:
            task.close()
            self.stop.restore()
        return self._result(interrupted, time.perf_counter() - started)

    def _train_loop(self, task) -> bool:
        """Epochs from the saved position to `total_steps`; True when stopped by a signal."""
        accumulation = self.config.optim.accumulation
        while self.state.step < self.total_steps:
            epoch = self.state.epoch
            tick = time.perf_counter()
            for micro_batches in self._epoch_batches(epoch, self.state.batch_in_epoch):
                metrics = self.train_step(micro_batches)
                seconds = time.perf_counter() - tick
                self._after_step(metrics, micro_batches, seconds)
                task.advance(metrics.pairs)
                if self.stop.stop_agreed(self.ctx.device):
                    return True
                if self.state.step >= self.total_steps:
                    break
                tick = time.perf_counter()
            if self.state.batch_in_epoch >= self.epoch_steps[epoch] * accumulation:
                self._end_epoch()
        return False

    def _epoch_batches(self, epoch: int, start: int) -> Iterator[list[PairBatch]]:
        """This rank's micro-batches of `epoch` from index `start`, grouped per optimizer step."""
        accumulation = self.config.optim.accumulation
        self.sampler.set_epoch(epoch)
        self.dataset.epoch = epoch
        index_lists = list(self.sampler)[start : self.epoch_steps[epoch] * accumulation]
        loader = DataLoader(self.dataset, batch_sampler=index_lists, collate_fn=collate_pairs,
                            num_workers=self.workers, pin_memory=self.ctx.device.type == "cuda")
        group: list[PairBatch] = []
        for batch in loader:
            group.append(batch)
            if len(group) == accumulation:
                yield group
                group = []

    def train_step(self, micro_batches: Sequence[PairBatch]) -> StepMetrics:
        """One optimizer step over `micro_batches` (gradients accumulated; DDP syncs on the last one)."""
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        count = len(micro_batches)
        loss_sum, term_sums = 0.0, dict.fromkeys((t.name for t in self.loss_fn.terms), 0.0)
        for index, batch in enumerate(micro_batches):
            last = index == count - 1
            with nullcontext() if last or not self.ctx.is_distributed else self.model.no_sync():
                terms = self._term_losses(batch)
                loss = sum(term.weight * terms[term.name] for term in self.loss_fn.terms)
                (loss / count).backward()
            loss_sum += float(loss.detach()) / count
            for name, value in terms.items():
                term_sums[name] += float(value.detach()) / count
        grad_norm = None
        if cfg.optim.grad_clip is not None:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.clip.parameters(), cfg.optim.grad_clip))
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            self.clip.logit_scale.clamp_(0, math.log(cfg.loss.logit_scale_max))
        pairs = sum(len(batch) for batch in micro_batches) * self.ctx.world_size
        self.state.step += 1
        self.state.batch_in_epoch += count
        self.state.pairs_seen += pairs
        return StepMetrics(step=self.state.step, epoch=self.state.epoch, loss=loss_sum, terms=term_sums, lr=lr,
                           logit_scale=float(self.clip.logit_scale.detach().exp()), grad_norm=grad_norm, pairs=pairs)

    def _term_losses(self, batch: PairBatch) -> dict[str, torch.Tensor]:
        device = self.ctx.device
        autocast = (torch.autocast(device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
                    else nullcontext())
        with autocast:
            features, scale = self.model(batch.query_tokens.to(device), batch.title_tokens.to(device),
                                         batch.pixels.to(device))
        query_ids = batch.query_keys.to(device) if self.config.loss.mask_same_query else None
        return self.loss_fn.term_losses(
            {name: value.float() for name, value in features.items()}, scale.float(),
            present={"image": batch.has_image.to(device), "title": batch.has_title.to(device)}, weights=batch.weights.to(device), query_ids=query_ids,
        )

    def _after_step(self, metrics: StepMetrics, micro_batches: Sequence[PairBatch], seconds: float) -> None:
        cfg = self.config
        self._recent.append(metrics.loss)
        self.state.epoch_loss_sum += metrics.loss
        self.state.epoch_loss_steps += 1
        self.state.train_seconds += seconds
        self._session_pairs += metrics.pairs
        self._session_seconds += seconds
        self._report_image_problems(micro_batches)
        if self.ctx.is_main and (metrics.step % cfg.log_every == 0 or metrics.step in (1, self.total_steps)):
            self.run.append_metrics({"type": "train", **asdict(metrics), "pairs_per_s": metrics.pairs / seconds})
        if cfg.eval.every_steps and metrics.step % cfg.eval.every_steps == 0:
            self.evaluate()
        if cfg.checkpoint_every_steps and metrics.step % cfg.checkpoint_every_steps == 0:
            self.save_checkpoint()

    def _report_image_problems(self, micro_batches: Sequence[PairBatch]) -> None:
        for batch in micro_batches:
            for product_id, problem in batch.image_problems:
                if product_id not in self._reported:
                    self._reported.add(product_id)
                    reason, _, detail = problem.partition(": ")
                    self.rejects.add("training images", 0, reason, detail, product_id)
                    log.warning("product %s trained without its image: %s", product_id, problem)

    def _end_epoch(self) -> None:
        """Evaluate (the finished epoch), move to the next epoch, checkpoint."""
        state = self.state
        record = {"epoch": state.epoch, "step": state.step,
                  "loss_mean": state.epoch_loss_sum / state.epoch_loss_steps if state.epoch_loss_steps else None}
        if self.config.eval.every_epoch and self._eval_step() != state.step:
            self.evaluate()
        if self._last_eval is not None and self._last_eval[0] == state.step:
            record["eval"] = self._last_eval[1]
        self._epochs.append(record)
        state.epoch += 1
        state.batch_in_epoch = 0
        state.epoch_loss_sum, state.epoch_loss_steps = 0.0, 0
        self.save_checkpoint()

    # --- evaluate, save, cleanup ------------------------------------------------------------------

    def _eval_step(self) -> int:
        return self._last_eval[0] if self._last_eval is not None else -1

    def evaluate(self) -> dict[str, float] | None:
        """Headline metrics of the held-out queries (main rank; None elsewhere and without held-out queries)."""
        if self.encoder is None or self.data.eval_set is None:
            return None
        cfg = self.config
        table = evaluate_retrieval(self.encoder, self.data.eval_set, cfg.loss.field_weights, k=cfg.eval.k,
                                   batch_size=cfg.eval.batch_size, workers=self.workers, rejects=self.rejects,
                                   progress=self.progress, description=f"evaluating at step {self.state.step}")
        means = table.mean()
        metrics = {**table.headline(), **{f"ndcg@{k}": means[f"ndcg@{k}"] for k in table.ks}}
        self._last_eval = (self.state.step, metrics)
        self.run.append_metrics({"type": "eval", "step": self.state.step, "epoch": self.state.epoch,
                                 "queries": len(table.queries), **metrics})
        return metrics

    def save_checkpoint(self, status: str = "running") -> Path | None:
        """Checkpoint folder of the current step (main rank), then run.json pointing at it."""
        if not self.ctx.is_main:
            return None
        if self._saved_step != self.state.step:
            folder = self.run.checkpoint_folder(self.state.step)
            evaluation = self._last_eval[1] if self._eval_step() == self.state.step else None
            save_checkpoint_folder(self.clip, self.loaded.architecture, folder, model_config=self.loaded.model_config,
                                   source=self.loaded.source.ref, step=self.state.step, epoch=self.state.epoch,
                                   loss=self.config.loss.kind, eval=evaluation)
            save_train_state(folder, self.state, self.optimizer, self.scheduler, self.ctx.world_size)
            self._checkpoint, self._saved_step = folder, self.state.step
            self.run.prune_checkpoints(self.config.keep_checkpoints, folder)
        self._write_record(status)
        return self._checkpoint

    def _write_record(self, status: str) -> None:
        record = self._record
        record.update({
            "format": 1, "status": status, "config": self.config.to_dict(), "data": asdict(self.data.summary),
            "world_size": self.ctx.world_size, "step": self.state.step, "total_steps": self.total_steps,
            "epochs": self._epochs, "eval_before": self._eval_before,
            "eval": self._last_eval[1] if self._last_eval else None, "eval_step": self._eval_step(),
            "train_seconds": self.state.train_seconds, "pairs_seen": self.state.pairs_seen,
            "wall_seconds": self._wall_before + (time.perf_counter() - self._started if self._started else 0.0),
            "rejected": self.rejects.reasons(), "versions": versions(), "updated_at": now_utc(),
        })
        if self._checkpoint is not None:
            record["checkpoint"] = self._checkpoint.relative_to(self.run.root).as_posix()
        self.run.write_record(record)

    def _result(self, interrupted: bool, seconds: float) -> TrainResult:
        return TrainResult(
            run_dir=self.run.root, checkpoint=self._checkpoint, steps=self.state.step, total_steps=self.total_steps,
            epochs_completed=self.state.epoch, final_loss=float(np.mean(self._recent)) if self._recent else None,
            eval_before=self._eval_before, eval_after=self._last_eval[1] if self._last_eval else None,
            seconds=seconds,
            pairs_per_second=self._session_pairs / self._session_seconds if self._session_seconds else 0.0,
            interrupted=interrupted, is_main=self.ctx.is_main, data=self.data.summary, rejected=self.rejects.reasons(),
        )

    def cleanup(self) -> None:
        """Restore signal handlers and leave the process group (no-ops when there is nothing to undo)."""
        self.stop.restore()
        cleanup_distributed()


def run_training(config: TrainConfig, *, resume: bool = False, progress: Progress = NULL_PROGRESS) -> TrainResult:
    """setup → train → cleanup: the one call the CLI makes."""
    recipe = GCLRecipe(config, resume=resume, progress=progress)
    try:
        recipe.setup()
        return recipe.train()
    finally:
        recipe.cleanup()
