"""Drawn product photos: a category silhouette filled with a colour, a pattern and a material cue.

Everything visible comes from the attributes: the silhouette (category), the fill (colour, jittered),
an overlay (pattern) that moves with the garment, a shading texture (leather gloss, denim twill, wool
knit, silk sheen, linen slub) or background cue (summer: warm light and a sun; winter: cool light and
snow). Position, scale, rotation, flip, background and pixel noise vary per product so the task is not
trivial. One image costs ≈ 1 ms at 64 px; the result is JPEG bytes, the same for the same seed.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from gcl_vectordb.data.synth.vocabulary import CATEGORIES, COLOUR_RGB, COLOURS, MATERIALS, PATTERNS

Polygon = tuple[tuple[float, float], ...]


def _ellipse(cx: float, cy: float, rx: float, ry: float, points: int = 20) -> Polygon:
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return tuple(zip((cx + rx * np.cos(angles)).tolist(), (cy + ry * np.sin(angles)).tolist(), strict=True))


_SHIRT_BODY: Polygon = ((0.36, 0.12), (0.45, 0.10), (0.50, 0.18), (0.55, 0.10), (0.64, 0.12), (0.88, 0.55),
                        (0.80, 0.60), (0.68, 0.38), (0.68, 0.90), (0.32, 0.90), (0.32, 0.38), (0.20, 0.60),
                        (0.12, 0.55))
# Unit-square silhouettes (x right, y down): (polygon, fill) drawn in order; fill 0 cuts a hole.
SILHOUETTES: dict[str, tuple[tuple[Polygon, int], ...]] = {
    "dress": ((((0.40, 0.12), (0.45, 0.12), (0.47, 0.20), (0.53, 0.20), (0.55, 0.12), (0.60, 0.12),
                (0.62, 0.42), (0.82, 0.90), (0.18, 0.90), (0.38, 0.42)), 255),),
    "shirt": ((_SHIRT_BODY, 255), (((0.47, 0.20), (0.53, 0.20), (0.50, 0.27)), 0)),
    "t-shirt": ((((0.34, 0.15), (0.44, 0.12), (0.50, 0.18), (0.56, 0.12), (0.66, 0.15), (0.86, 0.32),
                  (0.78, 0.44), (0.68, 0.36), (0.68, 0.86), (0.32, 0.86), (0.32, 0.36), (0.22, 0.44),
                  (0.14, 0.32)), 255),),
    "trousers": ((((0.30, 0.10), (0.70, 0.10), (0.75, 0.92), (0.56, 0.92), (0.50, 0.36), (0.44, 0.92),
                   (0.25, 0.92)), 255),),
    "shorts": ((((0.27, 0.26), (0.73, 0.26), (0.78, 0.68), (0.56, 0.68), (0.50, 0.46), (0.44, 0.68),
                 (0.22, 0.68)), 255),),
    "skirt": ((((0.38, 0.22), (0.62, 0.22), (0.80, 0.80), (0.20, 0.80)), 255),),
    "jacket": ((((0.33, 0.10), (0.67, 0.10), (0.92, 0.62), (0.82, 0.67), (0.71, 0.40), (0.71, 0.92),
                 (0.29, 0.92), (0.29, 0.40), (0.18, 0.67), (0.08, 0.62)), 255),
               (((0.43, 0.10), (0.57, 0.10), (0.52, 0.42), (0.52, 0.92), (0.48, 0.92), (0.48, 0.42)), 0)),
    "shoes": ((((0.10, 0.62), (0.13, 0.47), (0.36, 0.44), (0.50, 0.35), (0.61, 0.35), (0.67, 0.46),
                (0.87, 0.56), (0.91, 0.68), (0.10, 0.71)), 255),),
    "boots": ((((0.28, 0.10), (0.56, 0.10), (0.58, 0.56), (0.84, 0.66), (0.87, 0.85), (0.26, 0.85)), 255),),
    "bag": ((_ellipse(0.5, 0.42, 0.21, 0.24), 255), (_ellipse(0.5, 0.42, 0.14, 0.17), 0),
            (((0.20, 0.42), (0.80, 0.42), (0.86, 0.88), (0.14, 0.88)), 255)),
    "hat": ((_ellipse(0.5, 0.66, 0.42, 0.10), 255),
            (((0.29, 0.67), (0.32, 0.36), (0.50, 0.28), (0.68, 0.36), (0.71, 0.67)), 255)),
    # a loop round the neck, two hanging ends and their fringes
    "scarf": ((_ellipse(0.5, 0.27, 0.27, 0.14), 255), (_ellipse(0.5, 0.25, 0.17, 0.07), 0),
              (((0.33, 0.33), (0.48, 0.36), (0.47, 0.80), (0.33, 0.78)), 255),
              (((0.53, 0.36), (0.66, 0.33), (0.70, 0.74), (0.56, 0.77)), 255),
              (((0.33, 0.78), (0.35, 0.86), (0.37, 0.79), (0.39, 0.87), (0.41, 0.79), (0.43, 0.87),
                (0.45, 0.80), (0.47, 0.86), (0.47, 0.80)), 255),
              (((0.56, 0.77), (0.57, 0.84), (0.60, 0.76), (0.62, 0.83), (0.64, 0.75), (0.66, 0.82),
                (0.68, 0.74), (0.71, 0.80), (0.70, 0.74)), 255)),
}
NEUTRAL_BACKGROUNDS = np.array(
    [(236, 236, 236), (242, 238, 230), (226, 231, 235), (240, 240, 247), (232, 226, 220)], dtype=np.float32
)
SUMMER_BACKGROUND = np.array((252, 236, 178), dtype=np.float32)
WINTER_BACKGROUND = np.array((212, 226, 242), dtype=np.float32)
assert set(SILHOUETTES) == set(CATEGORIES)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in unit coordinates, `(size, size)` each: x grows right, y down."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(axis, axis, indexing="xy")


class Pose(NamedTuple):
    """Where the garment sits: scale, rotation (radians), shift (unit coordinates), mirrored or not."""

    scale: float
    angle: float
    dx: float
    dy: float
    flip: bool


def _mask(category: str, size: int, pose: Pose) -> np.ndarray:
    """Anti-aliased silhouette coverage in [0, 1], `(size, size)` (drawn at 2× and reduced)."""
    scale, angle, dx, dy, flip = pose
    cos, sin = np.cos(angle), np.sin(angle)
    big = 2 * size
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon, fill in SILHOUETTES[category]:
        pts = np.asarray(polygon, dtype=np.float64) - 0.5
        if flip:
            pts[:, 0] = -pts[:, 0]
        x = scale * (cos * pts[:, 0] - sin * pts[:, 1]) + 0.5 + dx
        y = scale * (sin * pts[:, 0] + cos * pts[:, 1]) + 0.5 + dy
        draw.polygon(list(zip((x * big).tolist(), (y * big).tolist(), strict=True)), fill=fill)
    return np.asarray(canvas.reduce(2), dtype=np.float32) / 255.0


def _local(size: int, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Garment coordinates (u, v) of every pixel, so patterns rotate and scale with the silhouette."""
    scale, angle, dx, dy, _ = pose  # patterns are symmetric enough that mirroring them adds nothing
    x, y = _grid(size)
    x0, y0 = x - 0.5 - dx, y - 0.5 - dy
    cos, sin = float(np.cos(angle)), float(np.sin(angle))  # Python floats keep the arrays float32
    return (cos * x0 + sin * y0) / scale + 0.5, (-sin * x0 + cos * y0) / scale + 0.5


def _pattern(
    pattern: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`(amount, accent)`: how much of the contrast colour each pixel takes; accent marks flower centres."""
    zero = np.zeros_like(u)
    period = rng.uniform(0.10, 0.14)
    phase = rng.uniform(0, 1)
    if pattern == "striped":
        along = v if rng.random() < 0.6 else u
        return (((along / period + phase) % 1.0) < 0.42).astype(np.float32), zero
    if pattern == "checked":
        a = ((u / period + phase) % 1.0) < 0.5
        b = ((v / period + phase) % 1.0) < 0.5
        return 0.45 * (a.astype(np.float32) + b.astype(np.float32)), zero
    if pattern in ("dotted", "floral"):
        period = period * (1.25 if pattern == "floral" else 1.0)
        row = np.floor(v / period + phase)
        fu = ((u / period + 0.5 * (row % 2) + phase) % 1.0) - 0.5
        fv = ((v / period + phase) % 1.0) - 0.5
        if pattern == "dotted":
            return ((fu * fu + fv * fv) < 0.28**2).astype(np.float32), zero
        petals = sum(((fu - du) ** 2 + (fv - dv) ** 2) < 0.15**2
                     for du, dv in ((0.2, 0), (-0.2, 0), (0, 0.2), (0, -0.2)))
        centre = (fu * fu + fv * fv) < 0.1**2
        return np.clip(petals, 0, 1).astype(np.float32), centre.astype(np.float32)
    return zero, zero


def _shading(
    material: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`(factor, highlight)`: multiply the garment colour by factor, then add highlight (0..1 of white)."""
    one, zero = np.ones_like(u), np.zeros_like(u)
    if material == "leather":
        glow = np.exp(-((u - rng.uniform(0.3, 0.45)) ** 2 / 0.008 + (v - rng.uniform(0.25, 0.4)) ** 2 / 0.03))
        return 0.72 + 0.28 * (1.0 - v), 0.55 * glow
    if material == "denim":
        return one + 0.16 * np.sign(np.sin(2 * np.pi * (u + v) / 0.05)), zero
    if material == "wool":
        knit = rng.normal(0, 0.10, (u.shape[0] // 2 + 1, u.shape[1] // 2 + 1)).repeat(2, 0).repeat(2, 1)
        return one + 0.12 * np.sin(2 * np.pi * u / 0.06) + knit[: u.shape[0], : u.shape[1]], zero
    if material == "silk":
        return 0.8 + 0.35 * (0.5 + 0.5 * np.sin(2 * np.pi * (0.9 * u + 0.5 * v) + rng.uniform(0, 6.3))), zero
    if material == "linen":
        streaks = rng.normal(0, 0.07, (u.shape[0], 1))
        return one + 0.06 * np.sin(2 * np.pi * v / 0.04) + streaks, zero
    if material == "winter":
        return 0.88 * one, zero
    return one, zero  # cotton, summer: matte


def _background(material: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """`(size, size, 3)` float background: neutral studio, warm summer with a sun, cool winter with snow."""
    x, y = _grid(size)
    if material == "summer":
        base = SUMMER_BACKGROUND + rng.uniform(-10, 6, 3)
    elif material == "winter":
        base = WINTER_BACKGROUND + rng.uniform(-10, 6, 3)
    else:
        base = NEUTRAL_BACKGROUNDS[rng.integers(len(NEUTRAL_BACKGROUNDS))] + rng.uniform(-8, 8, 3)
    image = base[None, None, :] * (1.0 + rng.uniform(-0.06, 0.06) * (y - 0.5))[..., None]
    if material == "summer":
        cx, cy = rng.choice([0.12, 0.88]), rng.uniform(0.08, 0.2)
        sun = ((x - cx) ** 2 + (y - cy) ** 2) < 0.08**2
        image[sun] = (255, 200, 40)
    elif material == "winter":
        flakes = rng.random((size, size)) < 0.025
        image[flakes] = 255.0
    return image


def _contrast_colour(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    luminance = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255.0
    if luminance > 0.6:
        return np.array((40, 40, 52), dtype=np.float32) + rng.uniform(-10, 10, 3)
    return np.array((246, 246, 240), dtype=np.float32) - rng.uniform(0, 12, 3)


def draw_product(attributes: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The RGB image `(size, size, 3) uint8` of a product with `attributes` (SLOTS order)."""
    category, colour = CATEGORIES[attributes[0]], COLOURS[attributes[1]]
    pattern, material = PATTERNS[attributes[2]], MATERIALS[attributes[3]]
    pose = Pose(rng.uniform(0.78, 1.02), rng.uniform(-0.2, 0.2), rng.uniform(-0.07, 0.07),
                rng.uniform(-0.06, 0.06), bool(rng.random() < 0.5))
    coverage = _mask(category, size, pose)[..., None]
    u, v = _local(size, pose)
    base = np.clip(np.array(COLOUR_RGB[colour], dtype=np.float32) + rng.uniform(-14, 14, 3), 0, 255)
    amount, accent = _pattern(pattern, u, v, rng)
    garment = base * (1 - amount[..., None]) + _contrast_colour(base, rng) * amount[..., None]
    garment = garment * (1 - accent[..., None]) + np.array((250, 200, 30), np.float32) * accent[..., None]
    factor, highlight = _shading(material, u, v, rng)
    garment = garment * factor[..., None] + 255.0 * highlight[..., None]
    # a dark rim where the coverage falls off, so light garments stand out from light backgrounds
    padded = np.pad(coverage[..., 0], 1, mode="constant")
    inner = np.minimum.reduce([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
    rim = np.clip(coverage[..., 0] - inner, 0, 1)[..., None]
    garment = garment * (1 - 0.45 * rim)
    image = _background(material, size, rng) * (1 - coverage) + garment * coverage
    image += 4.0 * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an RGB array; chroma is not subsampled so thin coloured stripes survive at 64 px."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def product_image_jpeg(attributes: np.ndarray, size: int, seed: int, index: int) -> bytes:
    """The JPEG of product `index`; its own random stream, so images do not depend on drawing order."""
    return encode_jpeg(draw_product(attributes, size, np.random.default_rng((seed, 11, index))))
