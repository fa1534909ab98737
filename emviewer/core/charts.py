"""Small line charts drawn with Pillow, for reports and benchmarks (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw


def line_chart(
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    title: str,
    x_label: str,
    y_label: str,
    size: tuple[int, int] = (640, 420),
    y_range=(0.0, 1.0),
) -> Image.Image:
    """An RGB line chart of one or more series over ``x``, with axes, ticks and a legend."""
    width, height = size
    left, right, top, bottom = 60, 20, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    xs = np.asarray(x, float)
    x_span = (xs.min(), xs.max() if xs.max() > xs.min() else xs.min() + 1)

    def to_px(xv: float, yv: float) -> tuple[float, float]:
        px = left + (xv - x_span[0]) / (x_span[1] - x_span[0]) * (width - left - right)
        py = height - bottom - (yv - y_range[0]) / (y_range[1] - y_range[0]) * (height - top - bottom)
        return px, py

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for tick in np.linspace(y_range[0], y_range[1], 6):
        _, py = to_px(x_span[0], tick)
        draw.line([left - 4, py, left, py], fill="black")
        draw.text((8, py - 6), f"{tick:.1f}", fill="black")
    for xv in xs:
        px, _ = to_px(xv, y_range[0])
        draw.line([px, height - bottom, px, height - bottom + 4], fill="black")
        draw.text((px - 10, height - bottom + 8), f"{xv:g}", fill="black")
    draw.text((left, 12), title, fill="black")
    draw.text((width // 2 - 40, height - 20), x_label, fill="black")
    draw.text((4, top - 20), y_label, fill="black")
    palette = [(200, 30, 160), (0, 120, 220), (230, 150, 0), (40, 160, 60)]
    for i, (name, values) in enumerate(series.items()):
        colour = palette[i % len(palette)]
        points = [to_px(xv, yv) for xv, yv in zip(xs, values, strict=True) if np.isfinite(yv)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        draw.text((width - right - 150, top + 8 + 14 * i), name, fill=colour)
    return image
