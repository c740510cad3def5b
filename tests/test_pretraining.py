"""The pretrained start: a separate image–caption collection, caption pairs, pretraining then fine-tuning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.gcl_pretrain import check_separate, pretrain_config
from gcl_vectordb.data import RejectLog, open_dataset
from gcl_vectordb.data.synth import CaptionConfig, synthesize_captions
from gcl_vectordb.data.synth.catalogue import STREAM_CAPTIONS, make_catalogue
from gcl_vectordb.data.synth.text import CAPTION_PREFIXES, candidate_queries, make_descriptions, query_text
from gcl_vectordb.data.synth.vocabulary import SLOTS, VALUES, words_for
from gcl_vectordb.errors import ConfigError, DataError
from trainer.config import DataConfig, EvalConfig, load_config
from trainer.losses import make_weight_transform
from trainer.pairs import load_training_data
from trainer.recipe import run_training


@pytest.fixture(scope="module")
def captions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 captioned products (32 px) from seed 1001, the pretraining collection's seed. Read-only."""
    out = tmp_path_factory.mktemp("captions") / "captions"
    synthesize_captions(CaptionConfig(out=out, products=40, image_size=32, seed=1001))
    return out


def _products(root: Path) -> list:
    return [p for batch in open_dataset(root).iter_products(1) for p in batch]


def test_collection_holds_captioned_images_and_no_queries(captions: Path, tmp_path: Path) -> None:
    dataset = open_dataset(captions)
    assert dataset.splits == () and dataset.corpora == (1,)
    products = _products(captions)
    catalogue = make_catalogue(40, 1001)
    assert [p.title for p in products] == list(catalogue.titles)  # titled as the benchmark's products are
    assert [p.extra["caption"] for p in products] == make_descriptions(
        catalogue.attributes, np.random.default_rng((1001, STREAM_CAPTIONS)))
    assert all(p.image_path is not None and p.image_path.is_file() for p in products)
    again = tmp_path / "again"
    synthesize_captions(CaptionConfig(out=again, products=40, image_size=32, seed=1001))
    assert (again / "corpus_1.json").read_bytes() == (captions / "corpus_1.json").read_bytes()
    assert [p.read_image_bytes() for p in _products(again)] == [p.read_image_bytes() for p in products]
    with pytest.raises(ConfigError, match="products must be ≥ 10"):
        CaptionConfig(out=tmp_path / "x", products=3)


def test_captions_describe_the_product_and_are_never_a_query_or_a_title() -> None:
    catalogue = make_catalogue(2000, 1001)
    captions = make_descriptions(catalogue.attributes, np.random.default_rng(0))
    assert all(c.startswith(CAPTION_PREFIXES) for c in captions)
    queries = {query_text(c) for c in candidate_queries()}
    assert not {c.lower() for c in captions} & queries  # whatever benchmark the vocabulary makes
    assert not set(captions) & set(catalogue.titles)
    prefix_words = " ".join(CAPTION_PREFIXES).split(" ")
    for attributes, text in zip(catalogue.attributes[:50], captions[:50], strict=True):
        assert text.endswith(words_for("category", VALUES["category"][attributes[0]]))
        said = {word for slot, value in zip(SLOTS, attributes, strict=True)
                for form in words_for(slot, VALUES[slot][value]) for word in form.split(" ") if word}
        assert all(word in said or word in prefix_words for word in text.split(" "))  # only its own attributes
    words = np.mean([len(text.split(" ")) for text in captions])
    assert 2.5 < words < 6  # a prefix, the category and about 1.5 of the other three attributes


def test_collection_is_separate_from_the_benchmark(captions: Path, tiny_gs: Path, tmp_path: Path) -> None:
    sizes = check_separate(captions, tiny_gs)
    assert sizes["caption_products"] == 40 and sizes["benchmark_products"] > 0
    assert sizes["shared_ids"] == sizes["shared_images"] == sizes["shared_queries"] == 0
    assert sizes["benchmark_queries"] == 12
    with pytest.raises(DataError, match="holds splits"):  # a benchmark has queries and lists
        check_separate(tiny_gs, captions)
    leaked = tmp_path / "leaked"  # the benchmark's corpus 1 and images, without its splits
    leaked.mkdir()
    shutil.copy(tiny_gs / "corpus_1.json", leaked / "corpus_1.json")
    shutil.copytree(tiny_gs / "images", leaked / "images")
    with pytest.raises(DataError, match=r"shares \d+ product ids, \d+ images and 0 query texts"):
        check_separate(leaked, tiny_gs)
    asked = tmp_path / "asked"  # a caption that is one of the benchmark's queries
    shutil.copytree(captions, asked)
    corpus = json.loads((asked / "corpus_1.json").read_text())
    corpus[next(iter(corpus))]["caption"] = next(iter(open_dataset(tiny_gs).queries("in-domain").values())).upper()
    (asked / "corpus_1.json").write_text(json.dumps(corpus))
    with pytest.raises(DataError, match="0 product ids, 0 images and 1 query texts"):
        check_separate(asked, tiny_gs)


def test_caption_pairs_are_captions_with_their_products(captions: Path, tiny_gs: Path, tmp_path: Path) -> None:
    def load(root: Path, **data):
        return load_training_data(DataConfig(root=root, pairs="captions", **data), EvalConfig(holdout_fraction=0),
                                  make_weight_transform("binary"), seed=0, rejects=RejectLog())

    data = load(captions)
    products = _products(captions)
    assert data.eval_set is None and data.summary.split == "captions" and data.summary.train_pairs == 40
    pairs = data.pairs
    assert [pairs.queries[q] for q in pairs.query_index] == [p.extra["caption"] for p in products]
    assert [p.product_id for p in pairs.products] == [p.product_id for p in products]  # image and title
    assert pairs.product_index.tolist() == list(range(40)) and np.all(pairs.weights == 1.0)
    assert len(load(captions, max_pairs=10).pairs) == 10

    edited = tmp_path / "edited"  # equal captions share a query code; a caption equal to the title is no pair
    shutil.copytree(captions, edited)
    corpus = json.loads((edited / "corpus_1.json").read_text())
    first, second, third = list(corpus)[:3]
    corpus[second]["caption"] = corpus[first]["caption"]
    corpus[third]["caption"] = corpus[third]["title"]
    (edited / "corpus_1.json").write_text(json.dumps(corpus))
    twins = load(edited).pairs
    assert len(twins) == 39 and twins.query_index[0] == twins.query_index[1]
    assert third not in {p.product_id for p in twins.products}
    with pytest.raises(DataError, match="has an image and a 'caption' field"):
        load(tiny_gs)  # a benchmark's products have no captions


def test_pretrain_then_fine_tune_from_the_checkpoint(captions: Path, tiny_gs: Path, tmp_path: Path) -> None:
    settings = {"model": "gcl-micro", "epochs": 1, "batch_size": 4, "lr": 5e-4, "warmup_steps": 1, "max_steps": 2}
    pretrained = run_training(pretrain_config(captions, tmp_path / "pretrain", settings))
    assert pretrained.steps == 2 and pretrained.data.split == "captions"
    record = json.loads((pretrained.run_dir / "run.json").read_text())
    assert record["config"]["data"]["pairs"] == "captions" and record["config"]["loss"]["kind"] == "clip"
    tuned = run_training(load_config(updates={"out": tmp_path / "tuned", "data.root": tiny_gs}, overrides=[
        f"model.name={pretrained.run_dir}", "batch_size=4", "max_steps=1", "eval.holdout_fraction=0"]))
    meta = json.loads((tuned.checkpoint / "model.json").read_text())
    assert meta["architecture"] == "gcl-micro" and meta["source"] == str(pretrained.checkpoint.resolve())
