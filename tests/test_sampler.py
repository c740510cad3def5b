"""UniqueBatchSampler: unique queries and products per global batch, determinism, deferral, equal ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from gcl_vectordb.errors import ConfigError
from trainer.sampler import UniqueBatchSampler


def toy_keys(seed: int = 0, num_queries: int = 30, num_products: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Queries with 1..20 rows each (so repeats are frequent) and products shared between queries."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 21, num_queries)
    queries = np.repeat(np.arange(num_queries) * 7 + 1000, counts)  # sparse, non-dense keys on purpose
    products = rng.integers(0, num_products, len(queries))
    # No (query, product) pair twice: a real split has each pair once.
    _, first = np.unique(np.stack([queries, products]), axis=1, return_index=True)
    keep = np.sort(first)
    return queries[keep], products[keep]


def global_batches(queries, products, batch_size, world_size, drop_last=True) -> list[list[int]]:
    """Each rank's batches, zipped into the global batches the loss sees after gathering."""
    per_rank = []
    for rank in range(world_size):
        sampler = UniqueBatchSampler(
            queries,
            products,
            batch_size,
            seed=0,
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
        )
        batches = list(sampler)
        assert len(batches) == len(sampler)
        per_rank.append(batches)
    counts = {len(b) for b in per_rank}
    assert len(counts) == 1, f"ranks disagree on the number of batches: {counts}"
    return [sum(parts, []) for parts in zip(*per_rank, strict=True)]


@pytest.mark.parametrize(("batch_size", "world_size"), [(4, 1), (4, 2), (3, 3), (8, 2)])
def test_queries_and_products_unique_in_every_global_batch(batch_size: int, world_size: int) -> None:
    queries, products = toy_keys()
    batches = global_batches(queries, products, batch_size, world_size)
    assert len(batches) > 5
    for batch in batches:
        assert len(batch) == batch_size * world_size
        assert len(set(queries[batch])) == len(batch)
        assert len(set(products[batch])) == len(batch)


def test_ranks_get_disjoint_equal_slices() -> None:
    queries, products = toy_keys()
    samplers = [UniqueBatchSampler(queries, products, 5, seed=1, rank=r, world_size=2) for r in range(2)]
    first, second = (list(s) for s in samplers)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert len(a) == len(b) == 5 and not set(a) & set(b)


def test_deterministic_per_seed_and_epoch_and_epochs_differ() -> None:
    queries, products = toy_keys()
    walked = UniqueBatchSampler(queries, products, 4, seed=3)
    for epoch in range(3):
        walked.set_epoch(epoch)
        plan = [b.tolist() for b in walked.plan().batches]
    jumped = UniqueBatchSampler(queries, products, 4, seed=3)
    jumped.set_epoch(2)  # a resumed run: replays epochs 0 and 1 to get the same deferrals
    assert list(jumped) == plan
    jumped.set_epoch(0)
    epoch0 = list(jumped)
    assert epoch0 != plan
    assert list(UniqueBatchSampler(queries, products, 4, seed=4)) != epoch0


def test_each_row_at_most_once_and_the_rest_is_deferred() -> None:
    queries, products = toy_keys()
    sampler = UniqueBatchSampler(queries, products, 4, seed=0, world_size=2)
    plan = sampler.plan(0)
    placed = np.concatenate(plan.batches)
    assert len(set(placed.tolist())) == len(placed)  # no row twice in an epoch
    assert sorted(placed.tolist() + plan.deferred.tolist()) == list(range(len(queries)))
    # Deferred rows come first next epoch: every one of them is trained on in epoch 1.
    assert len(plan.deferred) > 0
    next_placed = set(np.concatenate(sampler.plan(1).batches).tolist())
    assert set(plan.deferred.tolist()) <= next_placed


def test_query_with_more_rows_than_batches_is_spread_and_its_surplus_deferred() -> None:
    # One query has 40 rows; the other 120 rows are unique queries. Batches of 8 → 20 batches at most.
    queries = np.concatenate([np.zeros(40, dtype=int), np.arange(1, 121)])
    products = np.arange(160)
    sampler = UniqueBatchSampler(queries, products, 8, seed=0)
    plan = sampler.plan(0)
    # At most one row of query 0 per batch, so B batches hold at most 120 + B rows: 8 B <= 120 + B
    # gives B = 17, which the plan reaches; the 24 rows left over are deferred.
    assert len(plan.batches) == 17
    assert all((queries[b] == 0).sum() <= 1 for b in plan.batches)
    assert len(plan.deferred) == 160 - 17 * 8
    # Deferred rows queue oldest first, so the heavy query's 40 rows (17 a epoch) all get a turn in 3 epochs.
    seen = set()
    for epoch in range(3):
        seen |= set(np.concatenate(sampler.plan(epoch).batches).tolist())
    assert seen == set(range(160))


def test_keep_last_partial_batch_split_evenly() -> None:
    queries, products = np.arange(23), np.arange(23)  # all unique: 2 full global batches of 8, 7 left
    dropped = global_batches(queries, products, 4, 2, drop_last=True)
    kept = global_batches(queries, products, 4, 2, drop_last=False)
    assert [len(b) for b in dropped] == [8, 8]
    assert [len(b) for b in kept] == [8, 8, 6]  # 7 left over, cut to a multiple of the world size


def test_works_as_a_dataloader_batch_sampler() -> None:
    queries, products = toy_keys()
    dataset = TensorDataset(torch.from_numpy(queries), torch.from_numpy(products))
    loader = DataLoader(dataset, batch_sampler=UniqueBatchSampler(queries, products, 6, seed=0))
    batches = list(loader)
    assert len(batches) == len(loader.batch_sampler) > 0
    for q, p in batches:
        assert q.shape == (6,) and len(set(q.tolist())) == 6 and len(set(p.tolist())) == 6


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (([1, 2], [1]), {}),
        (([1, 2], [1, 2]), {"batch_size": 0}),
        (([1, 2], [1, 2]), {"rank": 2, "world_size": 2}),
    ],
)
def test_bad_setup_is_a_config_error(args: tuple, kwargs: dict) -> None:
    kwargs = {"batch_size": 2, "seed": 0, **kwargs}
    with pytest.raises(ConfigError):
        UniqueBatchSampler(*args, **kwargs)
