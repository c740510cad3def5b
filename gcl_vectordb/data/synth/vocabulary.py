"""The attribute vocabulary of the synthetic catalogue: what a product is, and how people write it.

Four searchable slots (category, colour, pattern, material/style) are drawn in the image and written in
titles and queries; brands appear only in titles. Lists are tuples so that indices are stable: a
product's attributes are stored as small integers into them.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "dress", "shirt", "t-shirt", "trousers", "shorts", "skirt",
    "jacket", "shoes", "boots", "bag", "hat", "scarf",
)
COLOURS: tuple[str, ...] = (
    "red", "blue", "green", "yellow", "black", "white",
    "pink", "purple", "orange", "brown", "grey", "beige",
)
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (206, 28, 36), "blue": (32, 78, 200), "green": (34, 140, 58), "yellow": (242, 206, 36),
    "black": (28, 28, 30), "white": (246, 246, 244), "pink": (242, 128, 178), "purple": (116, 48, 156),
    "orange": (240, 124, 24), "brown": (112, 66, 34), "grey": (128, 128, 132), "beige": (214, 190, 148),
}
PATTERNS: tuple[str, ...] = ("plain", "striped", "checked", "dotted", "floral")
MATERIALS: tuple[str, ...] = ("leather", "denim", "cotton", "wool", "silk", "linen", "summer", "winter")
"""Materials and two seasonal styles; both are drawn as a texture, shading or background cue."""
BRANDS: tuple[str, ...] = (
    "Nordlys", "Vela", "Corvo", "Marlowe", "Kite & Co", "Auren",
    "Solbe", "Tamsin", "Oakhaven", "Brio", "Lumen", "Fenwick",
)
SLOTS: tuple[str, ...] = ("category", "colour", "pattern", "material")
VALUES: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES, "colour": COLOURS, "pattern": PATTERNS, "material": MATERIALS,
}

# How titles say it: the first form is the canonical (query) word.
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "dress": ("dress", "midi dress", "maxi dress"),
    "shirt": ("shirt", "button-down shirt", "blouse"),
    "t-shirt": ("t-shirt", "tee", "T-Shirt"),
    "trousers": ("trousers", "pants", "straight-leg trousers"),
    "shorts": ("shorts", "bermuda shorts"),
    "skirt": ("skirt", "midi skirt", "mini skirt"),
    "jacket": ("jacket", "bomber jacket", "coat"),
    "shoes": ("shoes", "sneakers", "trainers"),
    "boots": ("boots", "ankle boots", "chelsea boots"),
    "bag": ("bag", "handbag", "tote bag"),
    "hat": ("hat", "bucket hat", "sun hat"),
    "scarf": ("scarf", "shawl", "wrap scarf"),
}
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "grey": ("grey", "gray", "charcoal grey"), "beige": ("beige", "camel", "sand beige"),
    "red": ("red", "cherry red"), "blue": ("blue", "royal blue"), "green": ("green", "forest green"),
    "purple": ("purple", "plum purple"),
}
PATTERN_WORDS: dict[str, tuple[str, ...]] = {
    "plain": ("plain", "solid", ""),
    "striped": ("striped", "stripe", "pinstripe"),
    "checked": ("checked", "check", "plaid", "gingham"),
    "dotted": ("dotted", "polka dot", "spotted"),
    "floral": ("floral", "flower print"),
}
MATERIAL_WORDS: dict[str, tuple[str, ...]] = {
    "leather": ("leather", "genuine leather", "faux leather"),
    "denim": ("denim", "washed denim"),
    "cotton": ("cotton", "organic cotton", "100% cotton"),
    "wool": ("wool", "merino wool", "knit wool"),
    "silk": ("silk", "satin silk"),
    "linen": ("linen", "pure linen"),
    "summer": ("summer", "lightweight summer"),
    "winter": ("winter", "warm winter"),
}
EXTRA_WORDS: tuple[str, ...] = (
    "slim fit", "regular fit", "oversized", "classic", "new season", "limited edition",
    "size M", "size L", "for women", "for men", "unisex", "bestseller",
)
SHOWCASE_QUERIES: tuple[str, ...] = ("red summer dress", "striped shirt", "leather bag", "blue denim jacket")
"""Always among the generated queries (when enough are asked for): the demo searches for these."""


def words_for(slot: str, value: str) -> tuple[str, ...]:
    """The title forms of an attribute value; the canonical word alone where no variants are listed."""
    table = {"category": CATEGORY_WORDS, "colour": COLOUR_WORDS, "pattern": PATTERN_WORDS,
             "material": MATERIAL_WORDS}[slot]
    return table.get(value, (value,))
