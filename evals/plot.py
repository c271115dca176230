"""KL divergence along the document as a small standalone SVG (no plotting library):
one polyline of the per-token KL, smoothed over a window, with page marks."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

WIDTH, HEIGHT, PAD = 800, 220, 32


def kl_svg(
    curves: dict[str, Sequence[float]], page_starts: Sequence[tuple[int, int]] = (), smooth: int = 32
) -> str:
    """One line per variant; x is the token position, y the KL (nats) averaged over
    `smooth` tokens."""
    lines = {name: _smoothed(np.asarray(curve, dtype=float), smooth) for name, curve in curves.items()}
    n = max((len(v) for v in lines.values()), default=0)
    top = max((float(v.max()) for v in lines.values() if len(v)), default=0.0) or 1.0
    colors = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{PAD}" y="14">KL divergence from the reference, nats '
        f"(mean over {smooth} tokens); max {top:.3f}</text>",
    ]
    for start, number in page_starts:
        x = _x(start, n)
        parts.append(f'<line x1="{x:.1f}" y1="{PAD}" x2="{x:.1f}" y2="{HEIGHT - PAD}" stroke="#ddd"/>')
        parts.append(f'<text x="{x + 2:.1f}" y="{HEIGHT - PAD + 12}" fill="#888">p. {number}</text>')
    for index, (name, values) in enumerate(lines.items()):
        color = colors[index % len(colors)]
        points = " ".join(f"{_x(i, n):.1f},{_y(v, top):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{points}"/>')
        parts.append(
            f'<text x="{WIDTH - PAD - 160}" y="{PAD + 14 * index}" fill="{color}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _smoothed(values: np.ndarray, width: int) -> np.ndarray:
    if len(values) <= width:
        return values
    return np.convolve(values, np.ones(width) / width, mode="valid")


def _x(index: int, n: int) -> float:
    return PAD + (WIDTH - 2 * PAD) * index / max(n - 1, 1)


def _y(value: float, top: float) -> float:
    return HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / top
