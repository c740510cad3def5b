"""Where product images may come from (only the images folder), how each path is resolved (per path), and
the pixel limit (a reject with a reason, never a raw warning): reader, decoders, ingest and the results page."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

from gcl_vectordb.data import ImageRejected, Product, RejectLog, contained_file, decode_image, open_dataset
from gcl_vectordb.data.parquet_layout import read_image_cell
from gcl_vectordb.domain import SearchMode
from gcl_vectordb.encoders import ImagePreprocessor
from gcl_vectordb.imaging import MAX_IMAGE_PIXELS, open_image
from gcl_vectordb.ingest import IngestConfig, ingest_dataset
from gcl_vectordb.ingest.decode import decode_products
from gcl_vectordb.search import QueryConfig, query, results_page
from gcl_vectordb.search.query import QueryHit, QueryResult
from tests.ingest_fixtures import copy_dataset, edit_corpus

DATA_URI = 'src="data:image/jpeg;base64,'


def _products(root: Path, corpus: int = 1, **kwargs) -> tuple[list[Product], RejectLog]:
    rejects = RejectLog()
    products = [p for batch in open_dataset(root, **kwargs).iter_products(corpus, rejects=rejects) for p in batch]
    return products, rejects


def _secret(tmp_path: Path, source: Path) -> Path:
    """A real JPEG outside every images folder (what an escaping path would read)."""
    secret = tmp_path / "outside" / "secret.jpg"
    secret.parent.mkdir()
    shutil.copyfile(source, secret)
    return secret


def test_paths_that_leave_the_images_folder_are_rejected_with_their_reason(tmp_path: Path, tiny_gs: Path) -> None:
    root = copy_dataset(tiny_gs, tmp_path)
    first, _ = _products(root)
    secret = _secret(tmp_path, first[0].image_path)
    link = first[2].image_path.parent / "link.jpg"
    link.symlink_to(secret)  # inside the folder by name, outside once resolved
    (first[4].image_path.parent / "elsewhere").symlink_to(secret.parent)  # a folder link pointing out

    def escape(entries):
        entries[0][1]["image_local"] = "../" * 10 + str(secret).lstrip("/")  # the path
        entries[1][1]["image_local"] = str(secret)  # an absolute path elsewhere that exists
        entries[2][1]["image_local"] = entries[2][1]["image_local"].rsplit("/", 1)[0] + "/link.jpg"
        entries[3][1]["image_local"] = str(first[3].image_path)  # absolute, inside the folder: fine
        entries[4][1]["image_local"] = entries[4][1]["image_local"].rsplit("/", 1)[0] + "/elsewhere/secret.jpg"
        return entries

    edit_corpus(root, 1, escape)
    products, rejects = _products(root)
    assert [p.product_id for p in products] == [p.product_id for p in (first[3], *first[5:])]
    assert products[0].image_path == first[3].image_path
    assert [(r.row, r.reason, r.product_id) for r in rejects] == [
        (i + 1, "image-outside-folder", first[i].product_id) for i in (0, 1, 2, 4)]
    assert all(f"resolves to {secret}, outside the images folder {root / 'images'}" in r.detail for r in rejects)

    report = ingest_dataset(IngestConfig(collection="gs", data=root, model_ref="gcl-micro", store=str(tmp_path / "s"),
                                         workers=0, build_index=False))
    assert report.rejects == {"image-outside-folder": 4}
    rejected = {json.loads(line)["product_id"] for line in report.rejects_file.read_text().splitlines()}
    assert rejected == {first[i].product_id for i in (0, 1, 2, 4)}


def test_contained_file_resolves_symlinks_and_dot_dots(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"s")
    (folder / "out").symlink_to(tmp_path)
    (folder / "in.jpg").symlink_to(folder / "a" / "x.jpg")
    assert contained_file(folder / "a" / "x.jpg", folder) == folder / "a" / "x.jpg"
    assert contained_file(folder / "in.jpg", folder) == folder / "a" / "x.jpg"  # a link staying inside
    for escaping in (folder / ".." / "secret.jpg", folder / "out" / "secret.jpg", tmp_path / "secret.jpg"):
        with pytest.raises(ImageRejected, match="image-outside-folder") as caught:
            contained_file(escaping, folder)
        assert caught.value.reason == "image-outside-folder"
    with pytest.raises(ImageRejected, match="missing-image: no file"):
        contained_file(folder / "a" / "gone.jpg", folder)
    linked = tmp_path / "linked-images"
    linked.symlink_to(folder)  # the images folder itself behind a link
    assert contained_file(linked / "a" / "x.jpg", linked) == folder / "a" / "x.jpg"


def test_results_page_shows_no_file_from_outside_the_images_folder(ingested: Path, tmp_path: Path,
                                                                   tiny_gs: Path) -> None:
    result = query(QueryConfig(text="red dress", collection="gs", store=str(ingested), limit=2))
    secret = _secret(tmp_path, next((tiny_gs / "images").rglob("*.jpg")))
    assert result.images_dir and results_page(result).count(DATA_URI) == 2
    images = Path(result.images_dir)
    escaping = ["../" * 10 + str(secret).lstrip("/"), str(secret)]  # payloads of an older or tampered store
    hits = tuple(QueryHit(rank=i + 1, product_id=f"p{i}", score=1.0, title="t", corpus=1, image=image,
                          payload={"product_id": f"p{i}", "image": image}) for i, image in enumerate(escaping))
    tampered = QueryResult(query="q", collection="gs", mode=SearchMode.fused, limit=2, model_ref="m", dim=32,
                           hits=hits, seconds={}, images_dir=str(images))
    page = results_page(tampered)
    assert DATA_URI not in page and page.count('<div class="noimage">no image</div>') == 2


def test_one_absolute_path_does_not_decide_for_the_others(tmp_path: Path, tiny_gs: Path) -> None:
    """The issue: one existing absolute `image_local` first switched the whole corpus to "paths as given"."""
    root = copy_dataset(tiny_gs, tmp_path)
    first, _ = _products(root)
    elsewhere = _secret(tmp_path, first[0].image_path)

    def absolute_first(entries):
        entries[0][1]["image_local"] = str(elsewhere)
        return entries

    edit_corpus(root, 1, absolute_first)
    products, rejects = _products(root)
    assert [p.product_id for p in products] == [p.product_id for p in first[1:]]
    assert all(p.image_path == f.image_path for p, f in zip(products, first[1:], strict=True))
    assert [(r.reason, r.product_id) for r in rejects] == [("image-outside-folder", first[0].product_id)]
    # the same path is fine once the images folder is the one it lies in
    moved, rejects = _products(root, images_dir=elsewhere.parent)
    assert moved[0].image_path == elsewhere and len(moved) == 1 and len(rejects) == len(first) - 1


def _huge_png(path: Path, side: int) -> Path:
    Image.new("1", (side, side)).save(path)  # 1 bit per pixel: small on disk and in memory
    return path


def test_images_above_the_pixel_limit_are_rejected_without_a_warning(tmp_path: Path) -> None:
    assert MAX_IMAGE_PIXELS == 8192 * 8192 and Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS
    band = _huge_png(tmp_path / "band.png", 9000)  # above the limit, below twice it: Pillow would only warn
    huge = _huge_png(tmp_path / "huge.png", 12000)  # the image: above twice the limit
    fine = _huge_png(tmp_path / "fine.png", 8192)
    with warnings.catch_warnings(record=True) as shown:  # the filters as the package sets them
        for path in (band, huge):
            product = Product("p", "t", 1, image_path=path)
            with pytest.raises(ImageRejected, match=f"image-too-large: {path}: ") as caught:
                decode_image(product)
            assert caught.value.reason == "image-too-large"
            chunk = decode_products([product], ImagePreprocessor(32))
            assert [(f.reason, f.detail.startswith(str(path))) for f in chunk.failures] == [("image-too-large", True)]
        assert open_image(fine).size == (8192, 8192)
        with pytest.raises(ImageRejected, match="9000×9000 = 81,000,000 pixels, above the limit of 67,108,864"):
            open_image(band.read_bytes())
    assert [str(w.message) for w in shown] == []


def test_ingest_reports_a_huge_image_as_a_reject_and_prints_no_warning(tmp_path: Path, tiny_gs: Path,
                                                                      micro_bundle: Path,
                                                                      subprocess_env: dict[str, str]) -> None:
    root = copy_dataset(tiny_gs, tmp_path)
    victim = _products(root)[0][0]
    _huge_png(victim.image_path, 9000)  # a PNG under a .jpg name: the decoder goes by content
    store = tmp_path / "store"
    run = subprocess.run([sys.executable, "-m", "gcl_vectordb", "ingest", "--collection", "gs", "--data", str(root),
                          "--model", str(micro_bundle), "--qdrant", str(store), "--workers", "1", "--json"],
                         env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Warning" not in run.stderr and "DecompressionBomb" not in run.stderr
    report = json.loads(run.stdout)
    assert report["rejects"] == {"image-too-large": 1}
    (line,) = Path(report["rejects_file"]).read_text().splitlines()
    entry = json.loads(line)
    assert entry["product_id"] == victim.product_id and "9000×9000" in entry["detail"]


def test_embedded_parquet_images_show_on_the_results_page(tmp_path: Path, micro_bundle: Path) -> None:
    from gcl_vectordb.data.synth import SynthConfig, synthesize

    root = tmp_path / "pq"
    synthesize(SynthConfig(out=root, products=40, queries=8, image_size=32, seed=3, results_per_query=8,
                           format="parquet"))
    store = tmp_path / "store"
    ingest_dataset(IngestConfig(collection="gs", data=root, model_ref=str(micro_bundle), store=str(store),
                                workers=0))
    result = query(QueryConfig(text="red dress", collection="gs", store=str(store), limit=4))
    assert all(h.image is None and h.payload["image_cell"].startswith("data/") for h in result.hits)
    assert results_page(result).count(DATA_URI) == 4
    dataset = open_dataset(root)
    embedded = {p.product_id: p.image_bytes for c in dataset.corpora for b in dataset.iter_products(c) for p in b}
    for hit in result.hits:
        assert read_image_cell(root, hit.payload["image_cell"]) == embedded[hit.product_id]
    assert read_image_cell(root, "../../etc/passwd#1") is None  # the cell's file must lie in the dataset
    assert read_image_cell(root, "data/none.parquet#x") is None
