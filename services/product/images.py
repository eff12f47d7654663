"""Generated product images: a deterministic SVG per product, so the demo catalog has
pictures without image files. The colour comes from the SKU, the lettering from the name."""

from __future__ import annotations

import colorsys
import hashlib
import re
import uuid
from xml.sax.saxutils import escape, quoteattr

__all__ = ["default_image_url", "render_svg"]

# characters XML 1.0 cannot carry at all, even escaped
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def default_image_url(product_id: uuid.UUID) -> str:
    """The URL of the generated image of a product without an `image_url` of its own."""
    return f"/api/products/{product_id}/image.svg"


def initials(name: str) -> str:
    """Up to two letters: the first letter or digit of the first two words of the name."""
    letters = [next((c for c in word if c.isalnum()), "") for word in name.split()]
    found = "".join(c for c in letters if c)[:2]
    return (found or name.strip()[:1] or "?").upper()


def _colour(digest: bytes, offset: int, saturation: float, lightness: float) -> str:
    """`#rrggbb` of a hue taken from `digest` (hex, which every SVG renderer reads)."""
    hue = int.from_bytes(digest[offset : offset + 2], "big") % 360 / 360
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return "#" + "".join(f"{round(c * 255):02x}" for c in (red, green, blue))


def render_svg(name: str, sku: str) -> str:
    """A 400x400 SVG tile: SKU-coloured gradient, the name's initials, the name as title."""
    digest = hashlib.sha256(sku.encode()).digest()
    start, end = _colour(digest, 0, 0.62, 0.46), _colour(digest, 2, 0.70, 0.32)
    name = _NOT_XML.sub("", name)
    label = _NOT_XML.sub("", initials(name))
    title = escape(name)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" '
        f'viewBox="0 0 400 400" role="img" aria-label={quoteattr(name)}>'
        f"<title>{title}</title>"
        '<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{start}"/><stop offset="1" stop-color="{end}"/>'
        "</linearGradient></defs>"
        '<rect width="400" height="400" fill="url(#g)"/>'
        '<circle cx="200" cy="200" r="120" fill="#ffffff" fill-opacity="0.14"/>'
        '<text x="200" y="200" dy="0.35em" text-anchor="middle" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" '
        f'font-size="120" font-weight="600" fill="#ffffff">{escape(label)}</text>'
        "</svg>\n"
    )
