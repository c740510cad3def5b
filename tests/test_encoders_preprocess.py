"""Preprocessing = open_clip's eval transform (the reference), for every resize mode and image mode."""

from __future__ import annotations

import io
import pickle

import numpy as np
import open_clip
import pytest
from PIL import Image

from gcl_vectordb.encoders import ImagePreprocessor
from gcl_vectordb.errors import DataError, ModelError


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colour field with noise: resampling differences show up, as in real photos."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = np.concatenate([np.sin(6 * x + 3 * y), np.cos(5 * y - 2 * x), np.sin(9 * x * y)], axis=2) * 100 + 128
    base = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_matches_open_clip_eval_transform(resize_mode: str, interpolation: str) -> None:
    reference = open_clip.image_transform(64, is_train=False, resize_mode=resize_mode, interpolation=interpolation)
    ours = ImagePreprocessor(64, resize_mode=resize_mode, interpolation=interpolation)
    for width, height in [(640, 480), (300, 500), (64, 64), (20, 90), (65, 63)]:
        for mode in ["RGB", "L", "RGBA"]:
            image = photo(width, height).convert(mode)
            expected = reference(image).numpy()
            got = ours(image)
            assert got.shape == (3, 64, 64) and got.dtype == np.float32
            np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"{width}x{height} {mode}")


def test_custom_mean_std_match_open_clip() -> None:
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    reference = open_clip.image_transform(48, is_train=False, mean=mean, std=std)
    image = photo(120, 90, seed=3)
    np.testing.assert_allclose(ImagePreprocessor(48, mean=mean, std=std)(image), reference(image).numpy(), atol=1e-5)


def test_png_bytes_decode_exactly_and_jpeg_draft_stays_close() -> None:
    pre = ImagePreprocessor(64)
    reference = open_clip.image_transform(64, is_train=False)
    image = photo(1200, 1600, seed=1)
    png, jpeg = io.BytesIO(), io.BytesIO()
    image.save(png, "PNG")
    image.save(jpeg, "JPEG", quality=92)
    np.testing.assert_allclose(pre.from_bytes(png.getvalue()), reference(image).numpy(), atol=1e-5)
    full = reference(Image.open(io.BytesIO(jpeg.getvalue()))).numpy()
    draft = pre.from_bytes(jpeg.getvalue())
    no_draft = ImagePreprocessor(64, draft_factor=0).from_bytes(jpeg.getvalue())
    np.testing.assert_allclose(no_draft, full, atol=1e-5)
    assert 0 < np.abs(draft - full).max() < 0.1  # draft decoding really happened, and changed little
    assert np.abs(draft - full).mean() < 0.01


def test_picklable_for_worker_processes_and_batch_shapes() -> None:
    pre = ImagePreprocessor(32, resize_mode="longest", fill_color=7)
    clone = pickle.loads(pickle.dumps(pre))
    image = photo(50, 20)
    assert clone == pre
    np.testing.assert_array_equal(clone(image), pre(image))
    assert pre.batch([image, image]).shape == (2, 3, 32, 32)
    assert pre.batch([]).shape == (0, 3, 32, 32)


def test_bad_bytes_and_bad_settings_are_clear_errors() -> None:
    with pytest.raises(DataError, match="cannot decode image"):
        ImagePreprocessor(32).from_bytes(b"not an image at all")
    with pytest.raises(ModelError, match="resize mode"):
        ImagePreprocessor(32, resize_mode="crop")
    with pytest.raises(ModelError, match="draft_factor"):
        ImagePreprocessor(32, draft_factor=0.5)
