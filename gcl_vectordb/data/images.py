"""Product images: decoding with clear rejects, and re-rooting archive paths onto a local images folder.

Marqo-GS stores `image_local` as a path inside the images archive it was built from (an absolute path on
the authors' machines, or a path relative to the archive root). Locally the images live elsewhere, so the
reader keeps the path's tail: the first existing `images_dir / <last k components>` decides k, and every
later path reuses it (one stat per product instead of one per path component).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gcl_vectordb.data.records import Product
from gcl_vectordb.errors import DataError


class ImageRejected(DataError):
    """A product image that cannot be used; `reason` is "missing-image" or "corrupt-image"."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # raised in worker processes: must survive pickling with its fields
        return (type(self), (self.reason, self.detail))


def decode_image(product: Product) -> Image.Image:
    """The product's image as a fully loaded RGB `PIL.Image`, or `ImageRejected` saying why not.

    Safe to call in worker processes (no shared state). Truncated files fail here, not later in a transform.
    """
    try:
        data = product.read_image_bytes()
    except OSError as exc:
        raise ImageRejected("missing-image", f"{product.image_path}: {exc.strerror or exc}") from None
    if data is None:
        raise ImageRejected("missing-image", f"product {product.product_id} has no image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        where = product.image_path or f"embedded image of product {product.product_id}"
        raise ImageRejected("corrupt-image", f"{where}: {exc}") from None


def _archive_parts(image_local: str) -> tuple[str, ...]:
    return tuple(part for part in image_local.replace("\\", "/").split("/") if part not in ("", "."))


def _top_level(images_dir: Path) -> frozenset[str]:
    try:
        return frozenset(entry.name for entry in os.scandir(images_dir))
    except OSError:
        return frozenset()


def _find_tail(parts: tuple[str, ...], images_dir: Path, top_level: frozenset[str]) -> Path | None:
    # a tail can only exist if its first component is in images_dir: one stat per plausible tail, not per tail
    for strip in range(len(parts)):
        if parts[strip] in top_level and (candidate := images_dir.joinpath(*parts[strip:])).is_file():
            return candidate
    return None


def reroot_image_path(image_local: str, images_dir: Path) -> Path | None:
    """The local file of an archive path: the longest tail of `image_local` that exists under `images_dir`.

    `"/data/images_archive/ab/x.jpg"` with images in `images_dir/ab/x.jpg` → that file. Where no tail
    exists, the path as given if it exists, else None. Stateless; `ImageRerooter` caches the rule.
    """
    found = _find_tail(_archive_parts(image_local), images_dir, _top_level(images_dir))
    if found is not None:
        return found
    as_given = Path(image_local)
    return as_given if as_given.is_file() else None


class ImageRerooter:
    """Re-roots `image_local` values onto `images_dir`, learning how many leading components to drop.

    The rule is learnt from the first value whose file exists and then applied to all: a path that does
    not exist under the rule is returned anyway (the caller reports it as a missing image). Until a file
    is found, a value maps to `images_dir/<file name>`.
    """

    def __init__(self, images_dir: Path) -> None:
        self.images_dir = images_dir
        self._top_level = _top_level(images_dir)
        self._strip: int | None = None  # leading components to drop; -1: use the path as given

    def __call__(self, image_local: str) -> Path | None:
        # string operations and one Path per call: this runs once per product (millions)
        parts = _archive_parts(image_local or "")
        if not parts:
            return None
        if self._strip is not None:
            if self._strip < 0:
                return Path(image_local)
            return Path(self.images_dir, *parts[min(self._strip, len(parts) - 1) :])
        found = _find_tail(parts, self.images_dir, self._top_level)
        if found is not None:
            self._strip = len(parts) - len(found.relative_to(self.images_dir).parts)
            return found
        if os.path.isabs(image_local) and os.path.isfile(image_local):
            self._strip = -1
            return Path(image_local)
        return Path(self.images_dir, parts[-1])
