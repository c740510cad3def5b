"""Standard TREC run and qrels files, so trec_eval, ranx or pytrec_eval can recompute our figures.

  run:   `qid Q0 docid rank score tag`   one line per retrieved document, in trec_eval's rank order
  qrels: `qid 0 docid rel`               one line per judged document

Scores are written with `repr`, so a reader gets the exact float back; trec_eval re-sorts by score (as
a float32) and document id itself and ignores the rank column, and so does `judge_run`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from gcl_vectordb.errors import DataError
from gcl_vectordb.evaluation.judging import Qrels, RankedRun, Run, trec_rank_order
from gcl_vectordb.files import atomic_output

logger = logging.getLogger(__name__)

_WHITESPACE = re.compile(r"\s")
T = TypeVar("T")


def write_run(path: str | Path, run: Run | RankedRun, tag: str) -> Path:
    """Write `run` as a TREC run file; returns the path.

    (doc_id, score) pairs are written in trec_eval's order with their own scores. Bare doc ids (already
    ranked) get the score n − rank + 1, so any tool rebuilds the same order. Queries with nothing
    retrieved have no lines (trec_eval and `judge_run` both count them as empty).
    """
    _check_token(tag, "run tag")
    path = _write_atomically(Path(path), (_run_lines(qid, entries, tag) for qid, entries in run.items()))
    logger.info("wrote run of %d queries to %s", len(run), path)
    return path


def _run_lines(qid: str, entries: Sequence[tuple[str, float]] | Sequence[str], tag: str) -> Iterator[str]:
    _check_token(qid, "query id")
    entries = list(entries)
    if not entries:
        return iter(())
    if isinstance(entries[0], str):
        doc_ids, scores = entries, [float(len(entries) - i) for i in range(len(entries))]
    else:
        ids, raw_scores = zip(*entries, strict=True)
        order = trec_rank_order(np.array([raw_scores]), np.array([len(ids)]), lambda _, j: ids[j])[0]
        doc_ids, scores = [ids[i] for i in order], [float(raw_scores[i]) for i in order]
    _check_doc_ids(qid, doc_ids)
    if len(set(doc_ids)) != len(doc_ids):
        raise ValueError(f"query {qid!r}: a document id repeats; a TREC run lists each document once")
    ranked = enumerate(zip(doc_ids, scores, strict=True), 1)
    return (f"{qid} Q0 {doc} {rank} {score!r} {tag}\n" for rank, (doc, score) in ranked)


def write_qrels(path: str | Path, qrels: Qrels) -> Path:
    """Write `qrels` as a TREC qrels file (`qid 0 docid rel`); returns the path."""
    path = _write_atomically(Path(path), (_qrels_lines(qid, judgments) for qid, judgments in qrels.items()))
    logger.info("wrote judgments of %d queries to %s", len(qrels), path)
    return path


def _qrels_lines(qid: str, judgments: Mapping[str, int]) -> Iterator[str]:
    _check_token(qid, "query id")
    _check_doc_ids(qid, list(judgments))
    return (f"{qid} 0 {doc} {int(rel)}\n" for doc, rel in judgments.items())


def _write_atomically(path: Path, blocks: Iterable[Iterable[str]]) -> Path:
    """Write the lines of every block to `path`; on any error leave no partial file behind."""
    with atomic_output(path, "w") as out:
        for lines in blocks:
            out.writelines(lines)
    return path


def save_trec_files(
    directory: str | Path, split: str, run: Run | RankedRun, qrels: Qrels, tag: str
) -> tuple[Path, Path]:
    """Write `run.<split>.trec` and `qrels.<split>.trec` into `directory` (created if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return (
        write_run(directory / f"run.{split}.trec", run, tag),
        write_qrels(directory / f"qrels.{split}.trec", qrels),
    )


def read_run(path: str | Path) -> dict[str, list[tuple[str, float]]]:
    """Read a TREC run file → {qid: [(doc_id, score), ...]} in file order (rank column ignored)."""
    run: dict[str, dict[str, float]] = {}
    for where, fields in _records(path, 6, "qid Q0 docid rank score tag"):
        _add_once(run, fields[0], fields[2], _parse(float, fields[4], where, "score", "a number"), where)
    return {qid: list(scores.items()) for qid, scores in run.items()}


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a TREC qrels file → {qid: {doc_id: rel}}."""
    qrels: dict[str, dict[str, int]] = {}
    for where, fields in _records(path, 4, "qid 0 docid rel"):
        _add_once(qrels, fields[0], fields[2], _parse(int, fields[3], where, "relevance", "an integer"), where)
    return qrels


def _parse(convert: Callable[[str], T], text: str, where: str, what: str, expected: str) -> T:
    try:
        return convert(text)
    except ValueError:
        raise DataError(f"{where}: {what} {text!r} is not {expected}", "fix or remove the line") from None


def _add_once(table: dict[str, dict[str, T]], qid: str, doc: str, value: T, where: str) -> None:
    per_query = table.setdefault(qid, {})
    if doc in per_query:
        raise DataError(f"{where}: document {doc} appears twice for query {qid}",
                        "a TREC file lists each (query, document) once")
    per_query[doc] = value


def _records(path: str | Path, n_fields: int, layout: str) -> Iterator[tuple[str, list[str]]]:
    """("path:line", fields) of every non-blank line; a line with the wrong field count is an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file", "check the path")
    with path.open(encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != n_fields:
                raise DataError(f"{path}:{line_no}: expected {n_fields} fields ({layout}), got {len(fields)}",
                                "is this the right kind of TREC file?")
            yield f"{path}:{line_no}", fields


def _check_token(value: str, what: str) -> None:
    if not value or _WHITESPACE.search(value):
        raise ValueError(f"{what} {value!r} must be non-empty and free of whitespace")


def _check_doc_ids(qid: str, doc_ids: Sequence[str]) -> None:
    if not all(doc_ids) or _WHITESPACE.search("".join(doc_ids)):
        raise ValueError(f"query {qid!r}: document ids must be non-empty and free of whitespace")
