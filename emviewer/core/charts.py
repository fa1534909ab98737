"""Small charts for reports and benchmarks (no plotting library needed): line charts drawn with
Pillow, histograms as reportlab drawings for the PDF report."""

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


def histogram_drawing(
    values: Sequence[float] | np.ndarray,
    x_label: str,
    colour: tuple[int, int, int] = (90, 90, 90),
    size: tuple[float, float] = (220.0, 110.0),
    bins: int = 12,
    font_size: float = 8.0,
):
    """A small vector histogram (a reportlab ``Drawing``, placed in PDFs like a flowable).

    Parameters
    ----------
    values
        The sizes to count, any unit; an empty sequence draws empty axes.
    x_label
        The axis caption, e.g. ``"volume (µm³)"``.
    colour
        RGB 0-255 of the bars.
    size
        Width and height in points (1/72 inch).
    bins
        Number of bins from the smallest to the largest value: of equal width, or of equal
        width in log scale when the values span more than a factor of 20 (the caption says so).

    Returns
    -------
    reportlab.graphics.shapes.Drawing
    """
    from reportlab.graphics.shapes import Drawing, Line, Rect, String
    from reportlab.lib.colors import Color, black

    width, height = size
    left, bottom, top, right = 26.0, 26.0, 6.0, 8.0
    plot_w, plot_h = width - left - right, height - bottom - top
    drawing = Drawing(width, height)
    data = np.asarray(values, float)
    data = data[np.isfinite(data)]
    log = data.size > 0 and data.min() > 0 and data.max() / data.min() > 20  # sizes spanning decades
    if not data.size:
        counts, edges = np.zeros(bins, int), np.linspace(0, 1, bins + 1)
    elif log:
        counts, edges = np.histogram(data, bins=np.geomspace(data.min(), data.max(), bins + 1))
    else:
        counts, edges = np.histogram(data, bins=bins)
    peak = max(int(counts.max()), 1)
    fill = Color(*(c / 255 for c in colour))
    for i, count in enumerate(counts):
        bar_h = plot_h * count / peak
        bar = Rect(left + plot_w * i / bins, bottom, plot_w / bins, bar_h)
        bar.fillColor, bar.strokeColor, bar.strokeWidth = fill, black, 0.3
        drawing.add(bar)
    drawing.add(Line(left, bottom, left + plot_w, bottom, strokeWidth=0.6))
    drawing.add(Line(left, bottom, left, bottom + plot_h, strokeWidth=0.6))
    drawing.add(String(left - 3, bottom + plot_h - font_size / 3, str(peak), fontSize=font_size, textAnchor="end"))
    for value, x in ((edges[0], left), (edges[-1], left + plot_w)):
        drawing.add(String(x, bottom - font_size - 2, f"{value:.3g}", fontSize=font_size, textAnchor="middle"))
    caption = x_label + (", log scale" if log else "")
    drawing.add(String(left + plot_w / 2, 3, caption, fontSize=font_size, textAnchor="middle", fillColor=black))
    return drawing
