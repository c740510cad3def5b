"""A query's results as one self-contained HTML page: inline CSS, thumbnails as base64 data URIs.

Every text that comes from data or the user (query, titles, product ids, paths) goes through
`html.escape`, so a hostile title such as `<script>…</script>` shows as text. Thumbnails are re-encoded
JPEGs of at most `THUMBNAIL_PX` pixels a side, so the page stays small whatever the product photos
weigh. Pictures come from the collection's images folder and nowhere else (`stored_image`), or from the
dataset's parquet files for embedded images; a product whose image is gone gets a grey placeholder.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from PIL import UnidentifiedImageError

from gcl_vectordb.domain import FusionMethod, SearchMode
from gcl_vectordb.errors import ConfigError, DataError
from gcl_vectordb.imaging import ImageRejected, contained_file, open_image
from gcl_vectordb.search.query import QueryHit, QueryResult

log = logging.getLogger(__name__)
THUMBNAIL_PX = 256
_TEMPLATE = "results.html"
_CARD_STYLE = "cards.css"


def stored_image(payload: Mapping[str, Any], images_dir: str | None, dataset_root: str | None) -> Path | bytes | None:
    """A stored product's image: its file (`image`, relative to the collection's images folder, accepted
    only inside it — `contained_file`, symlinks resolved), or the bytes of its parquet cell (`image_cell`,
    under the dataset folder); None where there is none to show."""
    image, cell = payload.get("image"), payload.get("image_cell")
    if isinstance(image, str) and image and images_dir:
        try:
            return contained_file(Path(images_dir) / image, Path(images_dir))
        except ImageRejected as exc:
            log.warning("no image shown for product %s: %s", payload.get("product_id"), exc)
            return None
    if isinstance(cell, str) and cell and dataset_root:
        # pyarrow takes 0.3 s to import: only a page with parquet images loads it, not a cold `query`
        from gcl_vectordb.data.parquet_layout import read_image_cell

        return read_image_cell(Path(dataset_root), cell)
    return None


def thumbnail_data_uri(source: Path | bytes, size: int = THUMBNAIL_PX) -> str | None:
    """`data:image/jpeg;base64,…` of the image scaled to fit `size × size`; None if it cannot be read."""
    try:
        with open_image(source) as image:
            image.draft("RGB", (size, size))  # JPEG: let the decoder downscale
            thumb = image.convert("RGB")
            thumb.thumbnail((size, size))
    except (OSError, UnidentifiedImageError, ValueError, DataError) as exc:
        log.info("no thumbnail for %s: %s", source if isinstance(source, Path) else "embedded image", exc)
        return None
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


ImageSource = Callable[[QueryHit], str | None]
"""Where a card's picture comes from: the `src` of its `<img>` (a URL or a data URI), or None for none."""


def thumbnail_source(images_dir: str | None, dataset_root: str | None = None) -> ImageSource:
    """Pictures inlined as thumbnails of the stored images (`stored_image`): self-contained pages."""

    def source(hit: QueryHit) -> str | None:
        image = stored_image(hit.payload, images_dir, dataset_root)
        return thumbnail_data_uri(image) if image is not None else None

    return source


def _card(hit: QueryHit, src: str | None) -> str:
    title = html.escape(hit.title or "(no title)")
    picture = (f'<img src="{html.escape(src)}" alt="{title}">' if src
               else '<div class="noimage">no image</div>')
    corpus = f'<div class="corpus">corpus {hit.corpus}</div>' if hit.corpus is not None else ""
    return (
        f'<article class="card" data-rank="{hit.rank}">{picture}<div class="meta">'
        f'<span class="rank">#{hit.rank}</span><span class="score">{hit.score:.4f}</span>'
        f'<div class="title">{title}</div>'
        f'<div class="pid">{html.escape(hit.product_id)}</div>{corpus}</div></article>'
    )


def _cards(result: QueryResult, source: ImageSource | None = None) -> str:
    """One card per hit, in rank order, or a note that there are none; pictures from `source`
    (default: thumbnails of the collection's images)."""
    source = source or thumbnail_source(result.images_dir, result.dataset_root)
    cards = "\n".join(_card(hit, source(hit)) for hit in result.hits)
    return cards or '<p class="empty">No results.</p>'


def _render(template: str, **fields: str) -> str:
    """A page template of this package filled in; both pages inline the shared card styles (cards.css)."""
    folder = resources.files("gcl_vectordb.search")
    card_style = folder.joinpath(_CARD_STYLE).read_text(encoding="utf-8")
    return Template(folder.joinpath(template).read_text(encoding="utf-8")).substitute(card_style=card_style, **fields)


def _write(path: Path, text: str, hint: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}", hint) from exc
    return path


def results_page(result: QueryResult) -> str:
    """The HTML text of the results page (one card per hit, in rank order)."""
    summary = f"{len(result.hits)} results · collection {result.collection} · {_mode_and_model(result)}"
    return _render(_TEMPLATE, query=html.escape(result.query), summary=html.escape(summary), cards=_cards(result))


def write_results_page(result: QueryResult, path: Path) -> Path:
    """Write `results_page(result)` to `path` (folders created); returns the path."""
    return _write(path, results_page(result), "choose a writable --html path")


_DEMO_TEMPLATE = "demo.html"
_METRIC_LABELS = {"ndcg@10": "NDCG@10", "err": "mERR", "rbp@0.8": "mRBP8", "map@1000": "MAP@1000",
                  "mrr@1000": "MRR@1000"}


def _evaluation_table(evaluations: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Rows: model × split; columns: the headline metrics (numbers only, escaped names)."""
    head = "".join(f"<th>{html.escape(label)}</th>" for label in _METRIC_LABELS.values())
    rows = []
    for model, splits in evaluations.items():
        for split, metrics in splits.items():
            cells = "".join(f"<td>{metrics.get(key, float('nan')):.4f}</td>" for key in _METRIC_LABELS)
            rows.append(f"<tr><td>{html.escape(model)}</td><td>{html.escape(split)}</td>{cells}</tr>")
    return f'<table class="eval"><tr><th>model</th><th>split</th>{head}</tr>{"".join(rows)}</table>'


def demo_page(
    queries: Mapping[str, Sequence[QueryResult]], evaluations: Mapping[str, Mapping[str, Mapping[str, float]]]
) -> str:
    """The demo's page: the evaluation table, then per model and query a row of ranked product cards."""
    sections = [
        f'<section class="query" data-model="{html.escape(model)}"><h2>{html.escape(model)}: '
        f'&ldquo;{html.escape(result.query)}&rdquo;</h2><div class="results">{_cards(result)}</div></section>'
        for model, results in queries.items() for result in results
    ]
    return _render(_DEMO_TEMPLATE, evaluation=_evaluation_table(evaluations), sections="\n".join(sections))


def write_demo_page(
    path: Path,
    queries: Mapping[str, Sequence[QueryResult]],
    evaluations: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> Path:
    """Write `demo_page(...)` to `path` (folders created); returns the path."""
    return _write(path, demo_page(queries, evaluations), "choose a writable work folder (--work)")


_SEARCH_TEMPLATE = "search.html"


def _mode_and_model(result: QueryResult) -> str:
    """`mode hybrid (rrf) · model M`; keyword search names no model (it uses none)."""
    model = "none (keyword search)" if result.mode is SearchMode.bm25 else result.model_ref
    return f"mode {result.describe_mode()} · model {model}"


def _options(choices: type[StrEnum], chosen: StrEnum) -> str:
    return "".join(f'<option value="{c.value}"{" selected" if c is chosen else ""}>{c.value}</option>'
                   for c in choices)


def search_page(collection: str, text: str, mode: SearchMode, result: QueryResult | None,
                source: ImageSource, message: str = "", fusion: FusionMethod = FusionMethod.rrf) -> str:
    """The search service's page: a query box, a mode switch and the hybrid mode's fusion (a plain GET
    form; the page has no script), then the cards of `result` with pictures from `source`, or `message`.
    All text is escaped."""
    if result is not None:
        summary = f"{len(result.hits)} results · {_mode_and_model(result)}"
        body = (f'<p class="summary">{html.escape(summary)}</p>'
                f'<main class="results">{_cards(result, source)}</main>')
    else:
        body = f'<p class="message">{html.escape(message)}</p>' if message else ""
    return _render(_SEARCH_TEMPLATE, collection=html.escape(collection), query=html.escape(text),
                   modes=_options(SearchMode, mode), fusions=_options(FusionMethod, fusion), body=body)
