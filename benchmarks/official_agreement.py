"""`gcl-vdb evaluate` against Marqo's official evaluation, run on the same data and the same model.

Builds a synthetic dataset (official layout) with the cases the protocol has rules for — products without a
title (null: weight 0, image alone), one with an empty title (embedded as ""), queries spelled "NA" / "null"
(NaN for the official CSV reader, never sampled, their rows still in the rescale) — ingests it with the
`gcl-micro` architecture and its seeded weights saved to a file, evaluates every split with
`gcl_vectordb.evaluation.evaluate`, then runs `evals/eval_gs_v1.py` of the GCL repository on the same CSVs,
corpora (image paths rewritten to local files, as its instructions do) and weights, for the fused document
(its default `--right-keys ['image_local', 'title']`, weights [0.9, 0.1]) and the image-only document of
the published runs. It compares the sampled queries, the ground truth and every metric both report.

    python benchmarks/official_agreement.py --official-repo /work/.mirror/marqo-ai+GCL/repo \\
        --official-python /tmp/offvenv/bin/python

The official code pins pandas 2.2.2 and beir 2.0.0 (requirements.txt): `--official-python` is an
interpreter that has them and this project's torch and open_clip (e.g. a venv with `pip install --no-deps
pandas==2.2.2 pytz beir==2.0.0` and a .pth file pointing at this project's site-packages). Its CUDA calls
run on the CPU here (patched in the runner below; `torch.cuda.amp.autocast` then does nothing, so both sides
compute in fp32); `faiss` and `transformers`, imported but unused on this path, are stubbed, and
`load_weights_only`, an open_clip 2.26 argument that open_clip 3 lacks, is dropped. Writes
benchmarks/results/official_agreement.{json,md}; exits 1 when anything differs by more than 5e-6.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gcl_vectordb.data import SPLITS, open_dataset  # noqa: E402
from gcl_vectordb.data.synth import SynthConfig, synthesize  # noqa: E402
from gcl_vectordb.encoders.models import PACKAGE_CONFIG_DIR, create_clip_model  # noqa: E402
from gcl_vectordb.evaluation.protocol import QUERY_KEY_SUFFIX, prepare_split  # noqa: E402
from gcl_vectordb.evaluation.runner import EvalConfig, evaluate  # noqa: E402
from gcl_vectordb.ingest import IngestConfig, ingest_dataset  # noqa: E402

TOLERANCE = 5e-6
TOP_K = 100  # the official `torch.topk(similarity, k)` needs k ≤ the corpus size
TOP_Q = 8
RUNNER = textwrap.dedent("""
    import sys, types
    import torch, open_clip
    evals, configs, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.path.insert(0, evals)
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    _to = torch.nn.Module.to
    torch.nn.Module.to = lambda self, *args, **kwargs: _to(self, *["cpu" if a == "cuda" else a for a in args], **kwargs)
    sys.modules["faiss"] = types.ModuleType("faiss")
    stub = types.ModuleType("transformers")
    stub.AutoModel = stub.AutoTokenizer = None
    sys.modules["transformers"] = stub
    open_clip.add_model_config(configs)
    _create = open_clip.create_model_and_transforms  # open_clip 3 has no load_weights_only (2.26 did)
    open_clip.create_model_and_transforms = lambda *a, load_weights_only=None, **k: _create(*a, **k)
    import eval_gs_v1
    eval_gs_v1.run_eval(argv)
""")
DOCUMENTS = {"fused": ("['image_local', 'title']", "[['txt'], ['img', 'txt']]", "[0.9, 0.1]"),
             "image": ("['image_local']", "[['txt'], ['img']]", "[1]")}  # no --context-length: the model's


def build_dataset(work: Path) -> Path:
    root = work / "gs"
    synthesize(SynthConfig(out=root, products=600, queries=60, image_size=32, seed=5, results_per_query=40))
    for corpus in (1, 2):
        path = root / f"corpus_{corpus}.json"
        entries = json.loads(path.read_text(encoding="utf-8"))
        for i, fields in enumerate(entries.values()):
            if i % 5 == 1:
                fields["title"] = None  # null: weight 0, the image alone
            elif i == 3:
                fields["title"] = ""  # a string: embedded as it is, as the official reader does
        path.write_text(json.dumps(entries), encoding="utf-8")
    for split, spelling in (("in-domain", "NA"), ("zero-shot", "null"), ("novel-doc", "None")):
        path = root / f"{next(s.stem for s in SPLITS if s.name == split)}.csv"
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table.loc[table["query"] == table["query"].iloc[0], "query"] = spelling
        table.to_csv(path, index=False)
    return root


def official_corpus(root: Path, corpus: int, work: Path) -> Path:
    """corpus_N.json with image_local rewritten to the local files (scripts/change_corpus_image_paths.py)."""
    dataset = open_dataset(root)
    local = {p.product_id: str(p.image_path) for b in dataset.iter_products(corpus) for p in b}
    entries = json.loads((root / f"corpus_{corpus}.json").read_text(encoding="utf-8"))
    for product_id, fields in entries.items():
        fields["image_local"] = local[product_id]
    out = work / f"official_corpus_{corpus}.json"
    out.write_text(json.dumps(entries), encoding="utf-8")
    return out


def run_official(args: argparse.Namespace, root: Path, work: Path, weights: Path, document: str) -> dict:
    keys, kinds, right_weights = DOCUMENTS[document]
    runner = work / "runner.py"
    runner.write_text(RUNNER, encoding="utf-8")
    evals = args.official_repo / "evals"
    results = {}
    for split in SPLITS:
        out = work / f"official-{document}-{split.name}"
        argv = ["--model_name", "gcl-micro", "--pretrained", str(weights), "--test_csv", str(root / f"{split.stem}.csv"),
                "--doc-meta", str(official_corpus(root, split.corpus, work)), "--weight_key", "score_linear",
                "--output-dir", str(out), "--batch-size", "64", "--num_workers", "0", "--left-keys", "['query']",
                "--right-keys", keys, "--img-or-txt", kinds, "--left-weights", "[1]", "--right-weights",
                right_weights, "--top-q", str(TOP_Q), "--top-k", str(TOP_K)]
        run = subprocess.run([str(args.official_python), str(runner), str(evals), str(PACKAGE_CONFIG_DIR), *argv],
                             capture_output=True, text=True, cwd=evals)
        if run.returncode != 0:
            raise RuntimeError(f"the official evaluation of {split.name} failed:\n{run.stderr[-3000:]}")
        results[split.name] = {"output": json.loads((out / "output.json").read_text()),
                               "gt": json.loads((out / "gt_results.json").read_text())}
    return results


def official_metrics(output: dict) -> dict[str, float]:
    ks = [1, 3, 5, 10, 20, 100]
    names = {"ndcg": ("ndcg", "NDCG"), "map": ("mAP", "MAP"), "mrr": ("mrr", "MRR"), "recall": ("recall", "Recall"),
             "precision": ("precision", "P")}
    out = {f"{ours}@{k}": output[table][f"{label}@{k}"] for ours, (table, label) in names.items() for k in ks}
    summary = output["summary"]
    out |= {"err": summary["mERR"], "rbp@0.7": summary["mRBP7"], "rbp@0.8": summary["mRBP8"],
            "rbp@0.9": summary["mRBP9"]}
    return out


def compare(args: argparse.Namespace, root: Path, work: Path, weights: Path, store: Path) -> dict:
    dataset = open_dataset(root)
    verdict: dict = {"tolerance": TOLERANCE, "top_k": TOP_K, "top_q": TOP_Q, "documents": {}}
    for document in DOCUMENTS:
        official = run_official(args, root, work, weights, document)
        report = evaluate(EvalConfig(collection="gs", store=str(store), data=root, top_q=TOP_Q, k=TOP_K,
                                     vector=document))
        splits = {}
        for split_report in report.splits:
            name = split_report.split
            prepared = prepare_split(dataset, name, top_q=TOP_Q, top_k=TOP_K)
            gt = {key.removesuffix(QUERY_KEY_SUFFIX): judged for key, judged in official[name]["gt"].items()}
            ours = split_report.metrics.mean()
            theirs = official_metrics(official[name]["output"])
            differences = {m: abs(ours[m] - value) for m, value in theirs.items()}
            unrounded = [differences[m] for m in ("err", "rbp@0.7", "rbp@0.8", "rbp@0.9")]
            splits[name] = {
                "queries_identical": list(prepared.queries) == list(gt),
                "ground_truth_identical": prepared.qrels == gt,
                "max_metric_difference": max(differences.values()),
                "worst_metric": max(differences, key=differences.get),
                "max_err_rbp_difference": max(unrounded),  # reported unrounded by both sides
                "ours": {m: ours[m] for m in theirs}, "official": theirs,
            }
        verdict["documents"][document] = splits
    verdict["passed"] = all(s["queries_identical"] and s["ground_truth_identical"]
                            and s["max_metric_difference"] <= TOLERANCE + 1e-12  # BEIR rounds to 5 decimals
                            for splits in verdict["documents"].values() for s in splits.values())
    return verdict


def write_results(verdict: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(verdict, indent=1) + "\n", encoding="utf-8")
    lines = ["# gcl-vdb evaluate against the official eval_gs_v1.py", "",
             f"Same synthetic data (null and empty titles, NA-spelled queries), same gcl-micro weights; top-k "
             f"{TOP_K}, top-q {TOP_Q}; tolerance {TOLERANCE:g}. Passed: **{verdict['passed']}**.", "",
             "| document | split | queries identical | ground truth identical | max metric difference (metric) "
             "| max ERR/RBP difference |", "|---|---|---|---|---|---|"]
    for document, splits in verdict["documents"].items():
        for name, s in splits.items():
            lines.append(f"| {document} | {name} | {s['queries_identical']} | {s['ground_truth_identical']} | "
                         f"{s['max_metric_difference']:.2e} ({s['worst_metric']}) | {s['max_err_rbp_difference']:.1e} |")
    lines += ["", "BEIR rounds NDCG/MAP/Recall/P/MRR to 5 decimals (differences up to 5e-6); ERR and RBP are "
              "compared unrounded."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-repo", type=Path, required=True, help="a checkout of marqo-ai/GCL (e4a918b)")
    parser.add_argument("--official-python", type=Path, required=True, help="python with pandas 2.2.2 and beir")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "official_agreement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if (args.official_repo / "evals").is_dir():
            args.official_repo = args.official_repo.resolve()
        else:  # a bare mirror: export the files the evaluation needs
            evals = work / "official" / "evals"
            evals.mkdir(parents=True)
            for name in ("eval_gs_v1.py", "eval_dataset_loader.py", "flag_args.py"):
                text = subprocess.run(["git", "-C", str(args.official_repo), "show", f"HEAD:evals/{name}"],
                                      check=True, capture_output=True, text=True).stdout
                (evals / name).write_text(text, encoding="utf-8")
            args.official_repo = work / "official"
        root = build_dataset(work)
        weights = work / "gcl-micro.pt"
        torch.save(create_clip_model("gcl-micro").model.state_dict(), weights)
        store = work / "store"
        ingest_dataset(IngestConfig(collection="gs", data=root, model_ref=f"gcl-micro:{weights}", store=str(store),
                                    workers=0))
        verdict = compare(args, root, work, weights, store)
    write_results(verdict, args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
