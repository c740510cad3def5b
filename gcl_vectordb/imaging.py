"""Reading an image safely: only from inside its folder, and within the project's one pixel limit.

`contained_file` resolves a path, symlinks included, and accepts it only as a file inside the resolved
folder (docs/protocol.md, "Products, rejects and image paths"): the one check the dataset readers, the
results page and the image service use before they read a picture.

Pillow warns (`DecompressionBombWarning`) above `Image.MAX_IMAGE_PIXELS` and raises above twice that.
This module sets that limit once, to `MAX_IMAGE_PIXELS` = 8192 × 8192 (64 Mi pixels, 192 MiB decoded as
RGB), and `open_image` refuses anything larger with `ImageTooLarge` (reject reason `image-too-large`).
The warning, which that check supersedes, is silenced process-wide by `open_image` (every image reader
of the project opens images through it, decode worker processes included), so no raw warning reaches a
terminal.
Real product photos are a few megapixels; a larger picture is refused before it is decoded.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image

from gcl_vectordb.errors import DataError

MAX_IMAGE_PIXELS = 8192 * 8192
_HINT = "downscale the picture (product images need a few megapixels at most)"
_SILENCED = ("ignore", None, Image.DecompressionBombWarning, None, 0)  # a `warnings.filters` entry
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


class ImageRejected(DataError):
    """A product image that cannot be used; `reason` is a REJECT_REASONS code: "missing-image",
    "image-outside-folder", "corrupt-image" or "image-too-large"."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # raised in worker processes: must survive pickling with its fields
        return (ImageRejected, (self.reason, self.detail))


class ImageTooLarge(ImageRejected):
    """An image with more than `MAX_IMAGE_PIXELS` pixels (reason `image-too-large`)."""

    def __init__(self, detail: str) -> None:
        super().__init__("image-too-large", detail)
        self.hint = _HINT

    def __reduce__(self):
        return (ImageTooLarge, (self.detail,))


def contained_file(path: Path, folder: Path) -> Path:
    """`path` with every symlink resolved, if that is a file inside `folder` (itself resolved).

    Raises `ImageRejected`: "image-outside-folder" where the resolved path leaves the folder (`..`
    components, an absolute path elsewhere, a symlink pointing out), "missing-image" where no file is there.
    """
    real = Path(os.path.realpath(path))
    require_inside(path, real, Path(os.path.realpath(folder)))
    if not real.is_file():
        raise ImageRejected("missing-image", f"no file {path}")
    return real


def require_inside(path: Path, real: Path, root: Path) -> None:
    """Raise "image-outside-folder" unless `real` (the resolved `path`) lies inside `root` (resolved)."""
    if not real.is_relative_to(root):
        raise ImageRejected("image-outside-folder", f"{path} resolves to {real}, outside the images folder {root}")


def open_image(source: bytes | Path) -> Image.Image:
    """`PIL.Image.open` of encoded bytes or a file (lazy: only the header is read), within the pixel limit.

    Raises `ImageTooLarge` above `MAX_IMAGE_PIXELS`; Pillow's own errors (`UnidentifiedImageError`,
    `OSError`, ...) for data that is no image pass through.
    """
    if _SILENCED not in warnings.filters:  # (re)installed once: a `catch_warnings` block may have dropped it
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError as exc:  # more than twice the limit: Pillow refuses it itself
        raise ImageTooLarge(str(exc)) from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise ImageTooLarge(f"{width}×{height} = {width * height:,} pixels, above the limit of "
                            f"{MAX_IMAGE_PIXELS:,} (8192²)")
    return image
