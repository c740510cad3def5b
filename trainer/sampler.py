"""UniqueBatchSampler: batches in which no query and no product repeats, across all ranks together.

A repeated query or product in a batch is a false negative for the contrastive loss (docs/protocol.md,
"False negatives").
The sampler plans *global* batches of `batch_size * world_size` rows (the batch `GCLLoss` sees after
gathering) and hands rank r the slice `[r * batch_size, (r + 1) * batch_size)` of each, so every rank
yields the same number of equally sized batches and the global negatives are clean.

Plan of an epoch (deterministic in (seed, epoch); every rank computes the same plan):
1. Order: rows are shuffled, then each query's c_q rows are spread evenly over the epoch — row k of
   query q goes to the fraction (k + u_q) / c_q, u_q uniform per query — so the rows of a frequent query
   land about N / c_q rows apart, i.e. in different batches.
2. Greedy fill with sets: a batch takes rows in that order; a row whose query or product is already in
   the batch waits in a per-query queue, and waiting rows are offered first to the next batches (one per
   query per batch).
3. When the stream runs dry, batches are formed from the waiting rows while a full batch can be made.

Deferral policy: the rows that fit in no batch of the epoch — a query with more rows than the epoch has
batches, products that keep colliding at the tail, and the rest of the last partial batch — are not
lost: they are *deferred* to the next epoch, where they are offered before any other row. So over
consecutive epochs every row is trained on; an epoch plan therefore depends on the previous epochs'
deferrals, and `set_epoch(e)` replays the plans from epoch 0 when it cannot continue from the last
one computed (a resumed run gets exactly the batches an uninterrupted run had). With `drop_last=False`
the last partial global batch is kept, cut to a multiple of `world_size` so ranks stay equal.

Example::

    sampler = UniqueBatchSampler(query_keys, product_keys, batch_size=64, seed=0,
                                 rank=ctx.rank, world_size=ctx.world_size)
    loader = DataLoader(dataset, batch_sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader: ...
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from gcl_vectordb.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochPlan:
    """The global batches of one epoch (row indices; only the last may be shorter) and the rows
    deferred to the next epoch, oldest deferral first."""

    epoch: int
    batches: list[np.ndarray]
    deferred: np.ndarray


class UniqueBatchSampler:
    """Batch sampler (for `DataLoader(batch_sampler=...)`) yielding lists of row indices of this rank.

    query_keys, product_keys: one integer key per row (N,); batch_size: rows per rank and batch.
    """

    def __init__(
        self,
        query_keys: Sequence[int] | np.ndarray,
        product_keys: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        seed: int,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        queries = np.asarray(query_keys)
        products = np.asarray(product_keys)
        if queries.ndim != 1 or queries.shape != products.shape:
            raise ConfigError(
                f"query and product keys must be two sequences of one length, got "
                f"{queries.shape} and {products.shape}"
            )
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"invalid batch sampler setup: batch size {batch_size}, rank {rank}, world size {world_size}"
            )
        # Dense 0..K-1 codes: the greedy loop indexes plain lists instead of hashing arbitrary keys.
        self._queries = np.unique(queries, return_inverse=True)[1].astype(np.int64)
        self._products = np.unique(products, return_inverse=True)[1].astype(np.int64)
        self.batch_size = batch_size
        self.global_batch_size = batch_size * world_size
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._plan: EpochPlan | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next iteration (and `len`) plans; call it before each epoch."""
        if epoch < 0:
            raise ConfigError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def plan(self, epoch: int | None = None) -> EpochPlan:
        """The global plan of `epoch` (default: the current one), replayed from the last plan or epoch 0."""
        epoch = self.epoch if epoch is None else epoch
        plan = self._plan
        if plan is None or plan.epoch > epoch:
            plan = self._plan_epoch(0, np.empty(0, dtype=np.int64))
        while plan.epoch < epoch:
            plan = self._plan_epoch(plan.epoch + 1, plan.deferred)
        self._plan = plan
        return plan

    def __len__(self) -> int:
        return len(self.plan().batches)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.plan().batches:
            share = len(batch) // self.world_size  # the last batch may be shorter, still split evenly
            start, stop = self.rank * share, (self.rank + 1) * share
            yield batch[start:stop].tolist()

    def _plan_epoch(self, epoch: int, deferred: np.ndarray) -> EpochPlan:
        """Plan `epoch`; `deferred` (oldest first) is offered before every other row."""
        rng = np.random.default_rng([self.seed, epoch])
        order = self._spread_order(rng, exclude=deferred)
        batches = greedy_unique_batches(
            deferred,
            order,
            self._queries,
            self._products,
            self.global_batch_size,
            self.world_size,
            drop_last=self.drop_last,
        )
        left = np.ones(len(self._queries), dtype=bool)
        for batch in batches:
            left[batch] = False
        # Rows deferred again keep their place ahead of the newly deferred ones, so none waits forever.
        carried = np.concatenate([deferred[left[deferred]], order[left[order]]])
        log.debug("epoch %d: %d global batches, %d rows deferred", epoch, len(batches), len(carried))
        return EpochPlan(epoch, batches, carried)

    def _spread_order(self, rng: np.random.Generator, exclude: np.ndarray) -> np.ndarray:
        """Rows not in `exclude`, each query's rows spread evenly over the epoch (step 1 of the plan)."""
        keep = np.ones(len(self._queries), dtype=bool)
        keep[exclude] = False
        rows = rng.permutation(np.flatnonzero(keep))
        queries = self._queries[rows]
        by_query = np.argsort(queries, kind="stable")
        counts = np.bincount(queries, minlength=int(self._queries.max(initial=0)) + 1)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        occurrence = np.empty(len(rows), dtype=np.int64)
        occurrence[by_query] = np.arange(len(rows)) - starts[queries[by_query]]
        phase = rng.random(len(counts))
        fraction = (occurrence + phase[queries]) / np.maximum(counts[queries], 1)
        return rows[np.argsort(fraction, kind="stable")]


def greedy_unique_batches(
    first: np.ndarray,
    order: np.ndarray,
    queries: np.ndarray,
    products: np.ndarray,
    size: int,
    multiple: int = 1,
    *,
    drop_last: bool = True,
) -> list[np.ndarray]:
    """Cut rows into batches of `size` with unique query and product codes (steps 2-3 of the plan).

    first: rows offered before all others (the deferred ones); order: the remaining rows in order;
    queries, products: dense codes per row. With `drop_last=False` a final partial batch, cut to a
    multiple of `multiple`, is kept. Rows in no batch are simply absent from the result.
    """
    query_of, product_of = queries.tolist(), products.tolist()
    waiting: dict[int, deque[int]] = {}
    for row in first.tolist():
        waiting.setdefault(query_of[row], deque()).append(row)
    stream = iter(order.tolist())
    batches: list[np.ndarray] = []
    exhausted = False
    while True:
        batch: list[int] = []
        in_batch_q: set[int] = set()
        in_batch_p: set[int] = set()
        for query in list(waiting):
            if len(batch) == size:
                break
            rows = waiting[query]
            row = rows[0]
            if product_of[row] not in in_batch_p:
                rows.popleft()
                if not rows:
                    del waiting[query]
                batch.append(row)
                in_batch_q.add(query)
                in_batch_p.add(product_of[row])
        while len(batch) < size and not exhausted:
            row = next(stream, None)
            if row is None:
                exhausted = True
                break
            query, product = query_of[row], product_of[row]
            if query in in_batch_q or product in in_batch_p:
                waiting.setdefault(query, deque()).append(row)
                continue
            batch.append(row)
            in_batch_q.add(query)
            in_batch_p.add(product)
        if len(batch) == size:
            batches.append(np.asarray(batch, dtype=np.int64))
            continue
        keep = len(batch) - len(batch) % multiple
        if not drop_last and keep > 0:
            batches.append(np.asarray(batch[:keep], dtype=np.int64))
        return batches
