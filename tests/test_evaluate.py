"""`evaluate` end to end on a tiny synthetic dataset in an embedded store: figures against an independent
recomputation (numpy exact search + pytrec_eval + per-query ERR/RBP), the brute-force check, TREC files,
--approx, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from eval_helpers import ingest_dataset
from metric_reference import err_rbp_reference, pytrec_measures, pytrec_per_query
from typer.testing import CliRunner

from gcl_vectordb.cli.app import app
from gcl_vectordb.data import SPLITS, open_dataset
from gcl_vectordb.encoders import l2_normalize, load_encoder
from gcl_vectordb.errors import CollectionNotFound, ConfigError, DataError
from gcl_vectordb.evaluation import DEFAULT_KS, DEFAULT_RBP_PS
from gcl_vectordb.evaluation.bruteforce import compare_runs
from gcl_vectordb.evaluation.protocol import prepare_split
from gcl_vectordb.evaluation.runner import EvalConfig, evaluate
from gcl_vectordb.store import SearchRequest, open_store
from gcl_vectordb.store.storage import StorageOptions
from gcl_vectordb.topk import exact_run

runner = CliRunner()
K = 12  # tiny_gs lists 10 results per query; corpora hold ~30 products
TINY_INDEX = {"indexing_threshold_kb": 1, "full_scan_threshold_kb": 1, "hnsw_m": 4, "hnsw_ef_construct": 8}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory, tiny_gs: Path, micro_bundle: Path) -> Path:
    root = tmp_path_factory.mktemp("eval-store") / "store"
    ingest_dataset(tiny_gs, root, "gs10m", str(micro_bundle))
    return root


def _config(store_dir: Path, **overrides) -> EvalConfig:
    return EvalConfig(**{"splits": ("all",), "collection": "gs10m", "store": str(store_dir), "k": K} | overrides)


def _stored_corpus(store_dir: Path, dataset, corpus: int, vector: str) -> tuple[list[str], np.ndarray]:
    ids = [p.product_id for batch in dataset.iter_products(corpus, check_images=False) for p in batch]
    with open_store(store_dir) as store:
        points = store.retrieve("gs10m", ids, with_vectors=True)
    return [p.product_id for p in points], np.stack([p.vectors[vector] for p in points])


def _independent_figures(store_dir: Path, tiny_gs: Path, bundle: Path, split: str, vector: str = "fused"):
    """Per-query metrics from numpy exact search over the stored vectors, pytrec_eval and loops."""
    dataset = open_dataset(tiny_gs)
    prepared = prepare_split(dataset, split, top_q=2000, top_k=K)
    ids, matrix = _stored_corpus(store_dir, dataset, prepared.corpus, vector)
    queries = load_encoder(str(bundle)).encode_texts(list(prepared.queries))
    run = {}
    for text, q in zip(prepared.queries, queries, strict=True):
        scores = matrix @ (q / np.linalg.norm(q))
        top = np.argsort(-scores, kind="stable")[:K]
        run[text] = [(ids[i], float(scores[i])) for i in top]
    qrels = {q: dict(j) for q, j in prepared.qrels.items()}
    measured = pytrec_eval.RelevanceEvaluator(qrels, pytrec_measures(DEFAULT_KS)).evaluate(
        {q: dict(pairs) for q, pairs in run.items()})
    figures = pytrec_per_query(measured, list(prepared.queries), DEFAULT_KS)
    return figures | err_rbp_reference(run, qrels, list(prepared.queries), DEFAULT_RBP_PS, K)


def test_every_split_equals_an_independent_recomputation(store_dir, tiny_gs, micro_bundle):
    report = evaluate(_config(store_dir))
    assert [s.split for s in report.splits] == [s.name for s in SPLITS]
    for split in report.splits:
        assert split.search == "exact" and split.n_queries == split.n_distinct_queries > 0
        reference = _independent_figures(store_dir, tiny_gs, micro_bundle, split.split)
        for name, values in reference.items():
            np.testing.assert_allclose(split.metrics.per_query[name], values, rtol=0, atol=1e-9, err_msg=name)
        assert set(split.headline()) == {"ndcg@10", "err", "rbp@0.7", "rbp@0.8", "rbp@0.9", "map@1000", "mrr@1000"}
        assert min(split.timings.embed_s, split.timings.search_s, split.timings.metrics_s) >= 0
    settings = report.settings
    assert settings.model_ref == str(micro_bundle) and settings.seed == 1 and settings.dataset == str(tiny_gs)
    assert {"gcl-vdb", "qdrant-edge-py", "onnxruntime", "numpy", "pandas"} <= set(settings.versions)


def test_image_vector_and_fewer_queries(store_dir, tiny_gs, micro_bundle):
    report = evaluate(_config(store_dir, splits=("novel-doc",), vector="image", top_q=3))
    (split,) = report.splits
    assert split.n_queries == 3 and split.corpus == 2
    reference = _independent_figures(store_dir, tiny_gs, micro_bundle, "novel-doc", vector="image")
    prepared = prepare_split(open_dataset(tiny_gs), "novel-doc", top_q=3, top_k=K)
    full = prepare_split(open_dataset(tiny_gs), "novel-doc", top_q=2000, top_k=K)
    rows = [full.queries.index(q) for q in prepared.queries]
    np.testing.assert_allclose(split.metrics.per_query["ndcg@10"], np.asarray(reference["ndcg@10"])[rows],
                               rtol=0, atol=1e-9)


def test_bruteforce_check_agrees_and_detects_a_wrong_ranking(store_dir, tiny_gs):
    report = evaluate(_config(store_dir, splits=("in-domain", "zero-shot"), check_bruteforce=True))
    for split in report.splits:
        check = split.bruteforce
        assert check.passed and check.rankings_identical and check.max_metric_difference <= 1e-9
        assert check.n_queries == split.n_queries and check.n_documents > K
        assert check.max_score_difference < 1e-5
    # The check can fail: swap two documents of different scores in a run and it notices.
    dataset = open_dataset(tiny_gs)
    prepared = prepare_split(dataset, "in-domain", top_k=K)
    ids, matrix = _stored_corpus(store_dir, dataset, 1, "fused")
    vectors = np.random.default_rng(0).normal(size=(len(prepared.queries), matrix.shape[1])).astype(np.float32)
    truth = exact_run(prepared.queries, l2_normalize(vectors), ids, matrix, K)
    first = prepared.queries[0]
    (a, score_a), (b, score_b) = truth[first][0], truth[first][5]
    tampered = truth | {first: [(b, score_a), *truth[first][1:5], (a, score_b), *truth[first][6:]]}
    check = compare_runs(prepared, tampered, truth, vectors, ids, matrix)
    assert not check.rankings_identical and check.mismatched_queries == (prepared.queries[0],)
    assert compare_runs(prepared, truth, truth, vectors, ids, matrix).passed


def test_saved_trec_files_give_the_same_figures_in_pytrec_eval(store_dir, tmp_path):
    report = evaluate(_config(store_dir, splits=("novel-query", "novel-doc"), save_run=tmp_path / "runs"))
    for split in report.splits:
        run_path, qrels_path, queries_path = split.run_files
        assert run_path.name == f"run.{split.split}.trec" and qrels_path.name == f"qrels.{split.split}.trec"
        with qrels_path.open() as f:
            qrels = pytrec_eval.parse_qrel(f)
        with run_path.open() as f:
            run = pytrec_eval.parse_run(f)
        texts = dict(line.split("\t") for line in queries_path.read_text().splitlines())
        ids = list(qrels)
        assert len(ids) == split.n_queries and all(" " not in qid for qid in ids)
        assert [texts[qid] for qid in ids] == list(split.metrics.queries)
        measured = pytrec_eval.RelevanceEvaluator(qrels, pytrec_measures(DEFAULT_KS)).evaluate(run)
        for name, values in pytrec_per_query(measured, ids, DEFAULT_KS).items():
            np.testing.assert_allclose(split.metrics.per_query[name], values, rtol=0, atol=1e-9, err_msg=name)


def test_approx_reports_hnsw_beside_exact(tmp_path, tiny_gs, micro_bundle):
    root = tmp_path / "hnsw-store"
    ingest_dataset(tiny_gs, root, "gs10m", str(micro_bundle),
                   store_options=TINY_INDEX, optimize=True)
    with open_store(root) as store:
        assert store.indexed_vectors("gs10m") > 0
    report = evaluate(_config(root, splits=("in-domain",), approx=True, hnsw_ef=1))
    (split,) = report.splits
    assert split.search == "hnsw" and report.settings.search == "hnsw"
    assert split.exact_metrics is not None and 0.0 < split.hnsw_overlap <= 1.0
    exact = evaluate(_config(root, splits=("in-domain",))).splits[0]
    assert split.exact_metrics.mean() == exact.metrics.mean()
    delta = split.delta()
    assert delta["ndcg@10"] == pytest.approx(split.metrics.mean()["ndcg@10"] - exact.metrics.mean()["ndcg@10"])
    assert split.timings.exact_search_s is not None
    body = split.to_dict()
    assert {"exact_metrics", "hnsw_minus_exact", "hnsw_overlap"} <= set(body)


def test_exact_evaluation_of_a_quantized_collection_equals_float32(store_dir, tmp_path, tiny_gs, micro_bundle):
    """int8 copies built (HNSW + quantization, tiny thresholds) and really searched by approximate
    queries, yet exact evaluation reads the originals: the same figures as the float32 collection."""
    root = tmp_path / "int8-store"
    ingest_dataset(tiny_gs, root, "gs10m", str(micro_bundle), store_options=TINY_INDEX, optimize=True,
                   storage=StorageOptions.preset("int8-disk"))
    with open_store(root) as store:
        assert store.indexed_vectors("gs10m") > 0
        (point,) = store.retrieve("gs10m", [_first_product(tiny_gs)], with_vectors=True)
        query = point.vectors["fused"] + 0.1
        exact = {h.product_id: h.score for h in store.search("gs10m", SearchRequest(query, limit=50, exact=True))}
        raw = store.search("gs10m", SearchRequest(query, limit=5, hnsw_ef=8, rescore=False))
        assert max(abs(h.score - exact[h.product_id]) for h in raw) > 1e-4  # the int8 copies are searched
    quantized = evaluate(_config(root, check_bruteforce=True))
    reference = evaluate(_config(store_dir))
    assert quantized.settings.storage == "int8-disk" and quantized.settings.datatype == "float32"
    for ours, theirs in zip(quantized.splits, reference.splits, strict=True):
        for name, values in theirs.metrics.per_query.items():
            np.testing.assert_array_equal(ours.metrics.per_query[name], values, err_msg=name)
        assert ours.bruteforce.passed


def test_a_float16_collection_is_evaluated_with_a_warning(store_dir, tmp_path, tiny_gs, micro_bundle, caplog):
    root = tmp_path / "f16-store"
    ingest_dataset(tiny_gs, root, "gs10m", str(micro_bundle), storage=StorageOptions.preset("float16"))
    report = evaluate(_config(root, splits=("in-domain",)))
    assert report.settings.datatype == "float16" and "rounds vectors and queries to float16" in caplog.text
    reference = evaluate(_config(store_dir, splits=("in-domain",)))
    ours, theirs = report.splits[0].metrics.mean(), reference.splits[0].metrics.mean()
    assert ours["ndcg@10"] == pytest.approx(theirs["ndcg@10"], abs=0.05)  # close, not necessarily equal
    result = runner.invoke(app, ["evaluate", "--split", "in-domain", "--collection", "gs10m", "--qdrant", str(root),
                                 "--k", str(K)])
    assert result.exit_code == 0, result.output
    assert "stores the fused vectors as float16" in " ".join(result.output.split())


def _first_product(root: Path) -> str:
    return next(iter(open_dataset(root).iter_products(1, check_images=False)))[0].product_id


def test_errors_are_clear(store_dir, tmp_path, tiny_gs):
    with pytest.raises(CollectionNotFound, match="nope"):
        evaluate(_config(store_dir, collection="nope"))
    partial = tmp_path / "gs"
    partial.mkdir()
    for name in ("corpus_1.json", "corpus_2.json", "query_0_product_id_0.csv"):
        (partial / name).write_bytes((tiny_gs / name).read_bytes())
    with pytest.raises(DataError, match="novel-doc is not in"):
        evaluate(_config(store_dir, splits=("in-domain", "novel-doc"), data=partial))
    with pytest.raises(ConfigError, match="unknown split"):
        EvalConfig(splits=("train",))
    with pytest.raises(ConfigError, match="document vector"):
        EvalConfig(vector="rrf")
    with pytest.raises(ConfigError, match="top_q"):
        EvalConfig(top_q=0)


# ---------------------------------------------------------------- CLI


def test_cli_novel_doc_table(store_dir):
    result = runner.invoke(app, ["evaluate", "--split", "novel-doc", "--collection", "gs10m",
                                 "--qdrant", str(store_dir), "--k", str(K)])
    assert result.exit_code == 0, result.output
    for column in ("NDCG@10", "mERR", "mRBP7", "mRBP8", "mRBP9", "MAP@1000", "MRR@1000", "novel-doc"):
        assert column in result.output


def test_cli_report_file_csv_and_json_on_stdout(store_dir, tmp_path):
    out, table = tmp_path / "report.json", tmp_path / "report.csv"
    result = runner.invoke(app, ["evaluate", "--split", "zero-shot", "--qdrant", str(store_dir), "--k", str(K),
                                 "--report", str(out), "--csv", str(table), "--check-bruteforce"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    split = report["splits"]["zero-shot"]
    assert report["settings"]["collection"] == "gs10m" and report["settings"]["seed"] == 1
    assert set(split["metrics"]["at_k"]["ndcg"]) == {str(k) for k in DEFAULT_KS}
    assert split["bruteforce"]["passed"] is True and "identical" in result.output
    assert set(split["seconds"]) >= {"embed", "search", "metrics"}
    header, row = table.read_text().splitlines()[:2]
    assert header.startswith("split,search,queries") and row.startswith("zero-shot,exact,")
    printed = runner.invoke(app, ["evaluate", "--split", "zero-shot", "--qdrant", str(store_dir), "--k", str(K),
                                  "--json"])
    assert printed.exit_code == 0
    assert json.loads(printed.stdout)["splits"]["zero-shot"]["metrics"] == split["metrics"]


def test_cli_errors(store_dir, tmp_path):
    result = runner.invoke(app, ["evaluate", "--collection", "nope", "--qdrant", str(store_dir)])
    assert result.exit_code == 1 and "collection 'nope' not found" in result.output
    result = runner.invoke(app, ["evaluate", "--split", "train", "--qdrant", str(store_dir)])
    assert result.exit_code == 2
    result = runner.invoke(app, ["evaluate", "--qdrant", str(store_dir), "--report", str(tmp_path / "no" / "r.json")])
    assert result.exit_code == 1 and "folder does not exist" in result.output
    result = runner.invoke(app, ["evaluate", "--qdrant", str(store_dir), "--data", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "does not exist" in result.output


# ---------------------------------------------------------------- keyword and hybrid


def test_bm25_evaluation_equals_an_independent_recomputation_and_loads_no_model(store_dir, tiny_gs, monkeypatch):
    """Depth 40 exceeds every corpus (~30 products), so each query's whole BM25 list is judged and ties
    cannot change what is retrieved."""
    from gcl_vectordb.evaluation import runner as runner_module
    from gcl_vectordb.store.bm25 import Bm25Settings
    from tests.bm25_reference import bm25_scores

    def no_model(*args, **kwargs):
        raise AssertionError("bm25 must not load a model")

    monkeypatch.setattr(runner_module, "load_encoder", no_model)
    report = evaluate(_config(store_dir, vector="bm25", k=40))
    assert report.settings.vector == "bm25" and report.settings.fusion is None
    dataset = open_dataset(tiny_gs)
    for split in report.splits:
        prepared = prepare_split(dataset, split.split, top_q=2000, top_k=40)
        products = [p for batch in dataset.iter_products(prepared.corpus, check_images=False) for p in batch]
        run = {}
        for text in prepared.queries:
            scores = bm25_scores([p.title for p in products], text, Bm25Settings())
            run[text] = {products[i].product_id: s for i, s in scores.items()}
        qrels = {q: dict(j) for q, j in prepared.qrels.items()}
        measured = pytrec_eval.RelevanceEvaluator(qrels, pytrec_measures(DEFAULT_KS)).evaluate(run)
        for name, values in pytrec_per_query(measured, list(prepared.queries), DEFAULT_KS).items():
            np.testing.assert_allclose(split.metrics.per_query[name], values, rtol=0, atol=1e-6, err_msg=name)


def test_hybrid_evaluation_records_its_fusion(store_dir):
    rrf, dbsf = (evaluate(_config(store_dir, splits=("in-domain",), vector="hybrid", fusion=f)) for f in ("rrf", "dbsf"))
    assert (rrf.settings.fusion, dbsf.settings.fusion) == ("rrf", "dbsf")
    assert rrf.to_dict()["settings"]["fusion"] == "rrf"
    for report in (rrf, dbsf):
        assert 0.0 < report.splits[0].headline()["ndcg@10"] <= 1.0
    with pytest.raises(ConfigError, match="brute-force check compares dense rankings"):
        EvalConfig(vector="hybrid", check_bruteforce=True)
    with pytest.raises(ConfigError, match="unknown fusion"):
        EvalConfig(vector="hybrid", fusion="max")


def test_cli_keyword_vectors_and_an_old_collection(store_dir, tmp_path, tiny_gs, micro_bundle):
    result = runner.invoke(app, ["evaluate", "--split", "novel-query", "--qdrant", str(store_dir), "--k", str(K),
                                 "--vector", "hybrid", "--fusion", "dbsf"])
    assert result.exit_code == 0, result.output
    assert "on hybrid (dbsf)" in " ".join(result.output.split())
    result = runner.invoke(app, ["evaluate", "--split", "novel-query", "--qdrant", str(store_dir), "--k", str(K),
                                 "--vector", "bm25"])
    assert result.exit_code == 0 and "none (BM25)" in " ".join(result.output.split())
    result = runner.invoke(app, ["evaluate", "--qdrant", str(store_dir), "--vector", "fused", "--fusion", "rrf"])
    assert result.exit_code == 2 and "--vector hybrid" in result.output
    result = runner.invoke(app, ["evaluate", "--qdrant", str(store_dir), "--vector", "bm25", "--check-bruteforce"])
    assert result.exit_code == 1 and "brute-force check" in result.output
    old = tmp_path / "old-store"
    ingest_dataset(tiny_gs, old, "gs10m", str(micro_bundle))
    _forget_bm25(old / "gs10m" / "collection.json")
    result = runner.invoke(app, ["evaluate", "--qdrant", str(old), "--vector", "bm25"])
    assert result.exit_code == 1 and "gcl-vdb collections add-bm25 gs10m" in " ".join(result.output.split())


def _forget_bm25(record_file: Path) -> None:
    """Make the record look like one written before keyword search (the shard keeps its vectors)."""
    data = json.loads(record_file.read_text())
    del data["bm25"]
    record_file.write_text(json.dumps(data))
