"""Product images: where a product's image file is, whether it may be read, and decoding with rejects.

Marqo-GS stores `image_local` as a path inside the images archive it was built from (an absolute path on
the authors' machines, or a path relative to the archive root). Locally the images live in one images
folder, and no image is ever read from anywhere else (docs/protocol.md, "Products, rejects and image
paths"): every path passes `gcl_vectordb.imaging.contained_file` (re-exported here).

`ImageResolver` maps each `image_local` onto the folder, deciding per path: the path's own longest tail
`images_dir/<last k components>` that is a file (the k found first is tried first for every later path,
so a well-formed corpus costs one `lstat` per product); else the path as given, relative to the folder
or absolute. Whatever it finds must pass `contained_file`, else the product is rejected with the reason.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gcl_vectordb.data.records import Product
from gcl_vectordb.imaging import ImageRejected, ImageTooLarge, contained_file, open_image, require_inside

__all__ = ["ImageLocator", "ImageRejected", "ImageResolver", "contained_file", "decode_image"]

ImageLocator = Callable[[str], Path]
"""`image_local` → the local file to read; raises `ImageRejected` where there is none to read."""
_DIR_CACHE = 1 << 16  # resolved folders remembered by an ImageResolver (images spread over few folders)


def decode_image(product: Product) -> Image.Image:
    """The product's image as a fully loaded RGB `PIL.Image`, or `ImageRejected` saying why not.

    Safe to call in worker processes (no shared state). Truncated files fail here, not later in a transform.
    The path is read as the product holds it: `Dataset.iter_products` checks it (see `contained_file`).
    """
    try:
        data = product.read_image_bytes()
    except OSError as exc:
        raise ImageRejected("missing-image", f"{product.image_path}: {exc.strerror or exc}") from None
    if data is None:
        raise ImageRejected("missing-image", f"product {product.product_id} has no image")
    where = product.image_path or f"embedded image of product {product.product_id}"
    try:
        with open_image(data) as image:
            image.load()
            return image.convert("RGB")
    except ImageTooLarge as exc:
        raise ImageTooLarge(f"{where}: {exc.detail}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
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


class ImageResolver:
    """`image_local` values → files inside `images_dir`, decided per path (see the module docstring).

    `resolve` is the checked path (`ImageLocator`); `locate` only maps the path (no check, no file
    access once the tail length is known), for callers that count products and never read images.
    """

    def __init__(self, images_dir: Path) -> None:
        self.images_dir = images_dir
        self.root = Path(os.path.realpath(images_dir))
        self._top_level = _top_level(images_dir)
        self._strip: int | None = None  # leading components to drop, learnt from the first file found
        self._folders: dict[str, str] = {}  # folder as joined → its realpath
        self._dir = str(images_dir)
        self._root = str(self.root)
        self._root_prefix = os.path.join(self._root, "")

    def resolve(self, image_local: str) -> Path:
        """The file of `image_local` inside the images folder (symlinks resolved), or `ImageRejected`."""
        # strings, not Path objects, on the common path: this runs once per product (millions)
        parts = _archive_parts(image_local)
        learnt = None
        if self._strip is not None and parts:
            learnt = os.path.join(self._dir, *parts[min(self._strip, len(parts) - 1) :])
            try:
                return self._inside(learnt)
            except ImageRejected as exc:
                if exc.reason != "missing-image":
                    raise
        found = _find_tail(parts, self.images_dir, self._top_level) if parts else None
        if found is not None:
            if self._strip is None:
                self._strip = len(parts) - len(found.relative_to(self.images_dir).parts)
            return self._inside(str(found))
        as_given = self.images_dir / image_local  # an absolute image_local stays as it is
        if os.path.lexists(as_given):
            return contained_file(as_given, self.images_dir)
        raise ImageRejected("missing-image", f"no file {learnt}" if learnt is not None
                            else f"no file for {image_local} under {self.images_dir}")

    def locate(self, image_local: str) -> Path:
        """Where `image_local` would be under the learnt rule; unchecked (the file may be missing or outside)."""
        parts = _archive_parts(image_local)
        if not parts:
            return self.images_dir
        if self._strip is None and (found := _find_tail(parts, self.images_dir, self._top_level)) is not None:
            self._strip = len(parts) - len(found.relative_to(self.images_dir).parts)
        return self.images_dir.joinpath(*parts[min(self._strip or 0, len(parts) - 1) :])

    def _inside(self, path: str) -> Path:
        """`contained_file(path, images_dir)` at one `lstat` per call: resolved folders are remembered."""
        parent, name = os.path.split(path)
        folder = self._folders.get(parent)
        if folder is None:
            if len(self._folders) >= _DIR_CACHE:
                self._folders.clear()
            folder = self._folders[parent] = os.path.realpath(parent)
        real = os.path.join(folder, name)
        try:
            mode = os.lstat(real).st_mode
        except OSError:
            raise ImageRejected("missing-image", f"no file {path}") from None
        if stat.S_ISLNK(mode) or name == "..":
            return contained_file(Path(path), self.images_dir)
        if not (real.startswith(self._root_prefix) or real == self._root):  # realpaths: a prefix test suffices
            require_inside(Path(path), Path(real), self.root)
        if not stat.S_ISREG(mode):
            raise ImageRejected("missing-image", f"no file {path}")
        return Path(real)
