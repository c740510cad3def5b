"""The ingest pipeline with a stand-in source and sink: the next corpus is read while this one is being
written, and an id of the previous corpus still in flight is a duplicate all the same."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gcl_vectordb.data.records import RejectLog
from gcl_vectordb.ingest.pipeline import EncodedBatch, PipelineSetup, ReadBatch, SourceBatch, run_pipeline
from gcl_vectordb.ingest.state import IngestState, RejectsFile
from gcl_vectordb.store import IngestProgress


@dataclass(frozen=True)
class Ids:
    ids: list[str]

    @property
    def product_ids(self) -> list[str]:
        return list(self.ids)

    def take(self, positions) -> Ids:
        return Ids([self.ids[i] for i in positions])

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Source:
    corpora: dict[int, list[list[str]]]
    seconds: dict[str, float] = field(default_factory=dict)
    encodes: bool = False

    def total(self, corpus: int) -> int:
        return sum(map(len, self.corpora[corpus]))

    def read(self, corpus: int, start: int, rejects: RejectLog, retry: frozenset[str]):
        end = 0
        for batch in self.corpora[corpus]:
            end += len(batch)
            yield SourceBatch(Ids(batch), end, False)
        yield SourceBatch(None, end, True)

    def start(self, corpus: int, rows: Ids) -> None:
        return None

    def finish(self, batch: ReadBatch) -> EncodedBatch:
        ids = batch.rows.product_ids
        payloads = [{"corpus": batch.corpus} for _ in ids]
        return EncodedBatch(batch, ids, {"fused": np.zeros((len(ids), 2))}, {}, payloads, list(batch.rejects))


class Sink:
    """Holds the first batch of corpus 1 back until the reader has looked up corpus 2's ids."""

    stage = "write"

    def __init__(self) -> None:
        self.written: dict[str, int] = {}
        self.corpus_2_read = threading.Event()
        self.held_back = False

    def stored(self, corpus: int, product_ids: list[str]) -> tuple[set[str], dict[str, Any]]:
        if corpus == 2:
            self.corpus_2_read.set()
        same = {p for p in product_ids if self.written.get(p) == corpus}
        return same, {p: self.written[p] for p in product_ids if p in self.written and p not in same}

    def prepare(self, batch: EncodedBatch) -> None:
        return None

    def write(self, batch: EncodedBatch, prepared: None) -> None:
        if batch.source.corpus == 1 and not self.held_back:
            self.held_back = self.corpus_2_read.wait(10)  # corpus 2 is read before corpus 1 is written
        for product_id, payload in zip(batch.product_ids, batch.payloads, strict=True):
            self.written[product_id] = payload["corpus"]

    def due(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def saved(self, progress: IngestProgress) -> None:
        self.progress = progress


def test_the_next_corpus_is_read_while_the_previous_is_written_and_duplicates_in_flight_are_rejected(
        tmp_path: Path) -> None:
    source = Source({1: [["a", "b"], ["c"]], 2: [["b", "d"], ["e"]]})
    sink = Sink()
    state = IngestState(tmp_path / "state.json", "c", "t", [])
    rejects = RejectsFile(tmp_path / "rejects.jsonl", resume=False)
    try:
        tally = run_pipeline(PipelineSetup(source, sink, state, rejects, (1, 2), 60.0, "test"))
    finally:
        rejects.close()
    assert sink.held_back, "the reader waited for corpus 1 to be written before reading corpus 2"
    assert sink.written == {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2}
    assert rejects.counts == {"duplicate-product-id": 1} and (tally.written, tally.rejected) == ({1: 3, 2: 2}, {1: 0, 2: 1})
    line = (tmp_path / "rejects.jsonl").read_text()
    assert '"product_id": "b"' in line and "already stored for corpus 1" in line
    assert {c: (v.done, v.complete) for c, v in state.cursors.items()} == {1: (3, True), 2: (3, True)}
    assert sink.progress == IngestProgress(True, {1: (3, 3), 2: (3, 3)})  # told after the last checkpoint
