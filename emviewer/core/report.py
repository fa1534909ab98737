"""PDF figure report: per slice the raw image and its overlay side by side, legend, metrics, provenance."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from .io.atomic import atomic_path
from .io.describe import format_pixel_size
from .objects import colour_of, object_kind
from .overlay import StackRenderer
from .progress import CancelToken, Progress, check, report
from .volume import Volume

PAGE = landscape(A4)
MARGIN = 15 * mm


def _label(key: str) -> str:
    try:
        return object_kind(key).label
    except ValueError:
        return key


def _legend(canvas: Canvas, masks: Mapping[str, Volume], x: float, y: float) -> None:
    for key in masks:
        canvas.setFillColorRGB(*(c / 255 for c in colour_of(key)))
        canvas.rect(x, y - 1, 4 * mm, 4 * mm, stroke=0, fill=1)
        canvas.setFillColor(colors.black)
        canvas.drawString(x + 6 * mm, y, _label(key))
        x += 45 * mm


def _table(canvas: Canvas, rows: list[list[str]], x: float, y: float, widths: list[float]) -> float:
    """Draw a plain text table; returns the y below it."""
    for i, row in enumerate(rows):
        canvas.setFont("Helvetica-Bold" if i == 0 else "Helvetica", 9)
        cx = x
        for cell, width in zip(row, widths, strict=False):  # a short row leaves its last columns empty
            canvas.drawString(cx, y, str(cell)[:70])
            cx += width
        y -= 5 * mm
        if y < MARGIN:
            canvas.showPage()
            y = PAGE[1] - MARGIN
    return y


def _summary_page(canvas: Canvas, volume: Volume, masks, metrics, provenance) -> None:
    top = PAGE[1] - MARGIN
    canvas.setFont("Helvetica-Bold", 16)
    canvas.drawString(MARGIN, top, "EMViewer segmentation report")
    canvas.setFont("Helvetica", 10)
    z, y, x = volume.shape
    canvas.drawString(MARGIN, top - 8 * mm, f"Source: {volume.source}")
    canvas.drawString(
        MARGIN,
        top - 13 * mm,
        f"Stack: {z} slices of {x} x {y} pixels, {volume.dtype}; voxel size {format_pixel_size(volume.pixel_size)}",
    )
    _legend(canvas, masks, MARGIN, top - 22 * mm)
    y_pos = top - 32 * mm
    if metrics:
        rows = [["image", "precision", "recall", "F1", "IoU"]]
        for item in list(metrics.get("per_image", [])) + [dict(metrics["mean"], name="mean")]:
            rows.append([item["name"]] + [f"{item[k]:.3f}" for k in ("precision", "recall", "f1", "iou")])
        y_pos = _table(canvas, rows, MARGIN, y_pos, [70 * mm, 30 * mm, 30 * mm, 30 * mm, 30 * mm]) - 5 * mm
    if provenance:
        rows = [["provenance", ""]] + [
            [k, v if isinstance(v, str) else json.dumps(v, default=str)] for k, v in _flatten(provenance)
        ]
        _table(canvas, rows, MARGIN, y_pos, [60 * mm, 200 * mm])
    canvas.showPage()


def _flatten(mapping: Mapping, prefix: str = ""):
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _jpeg(image) -> ImageReader:
    """High-quality JPEG keeps a many-page report small (Flate would be ~20x larger on EM noise)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    buffer.seek(0)
    return ImageReader(buffer)


def scale_bar_length(width_nm: float) -> float:
    """A round bar length (1, 2 or 5 x 10^k nm) near a fifth of the image width."""
    target = width_nm / 5
    power = 10 ** np.floor(np.log10(target))
    return float(max(step * power for step in (1, 2, 5) if step * power <= target))


def _scale_bar(canvas: Canvas, left: float, bottom: float, width: float, width_px: int, pixel_nm: float) -> None:
    """A white bar with its length (nm or µm) in the lower left corner of an image."""
    length_nm = scale_bar_length(width_px * pixel_nm)
    bar = width * length_nm / (width_px * pixel_nm)
    label = f"{length_nm / 1000:g} µm" if length_nm >= 1000 else f"{length_nm:g} nm"
    x0, y0 = left + 4 * mm, bottom + 4 * mm
    canvas.setFillColorRGB(1, 1, 1)
    canvas.setStrokeColorRGB(0, 0, 0)
    canvas.rect(x0, y0, bar, 1.5 * mm, stroke=1, fill=1)
    canvas.setFont("Helvetica-Bold", 9)
    canvas.drawString(x0, y0 + 2.5 * mm, label)
    canvas.setFillColorRGB(0, 0, 0)


def _slice_page(canvas: Canvas, z: int, renderer: StackRenderer) -> None:
    volume, masks = renderer.volume, renderer.masks
    grey = renderer.display(z)
    overlay = renderer.overlay(z, grey)
    top = PAGE[1] - MARGIN
    canvas.setFont("Helvetica-Bold", 12)
    canvas.drawString(MARGIN, top, f"Slice {z + 1} of {len(volume)}: {volume.slice_names[z]}")
    width = (PAGE[0] - 3 * MARGIN) / 2
    height = top - 2 * MARGIN - 10 * mm
    scale = min(width / grey.shape[1], height / grey.shape[0])
    w, h = grey.shape[1] * scale, grey.shape[0] * scale
    for i, (image, title) in enumerate(((grey, "raw"), (overlay, "overlay"))):
        left = MARGIN + i * (width + MARGIN)
        canvas.drawImage(_jpeg(image), left, top - 8 * mm - h, w, h)
        if volume.pixel_size:
            _scale_bar(canvas, left, top - 8 * mm - h, w, grey.shape[1], volume.pixel_size[-1])
        canvas.setFont("Helvetica", 10)
        canvas.drawString(left, top - 13 * mm - h, title)
    _legend(canvas, masks, MARGIN, MARGIN - 5 * mm)
    canvas.showPage()


def write_report(
    path: Path,
    volume: Volume,
    masks: Mapping[str, Volume],
    metrics: Mapping | None = None,
    provenance: Mapping | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> None:
    """Write the PDF: a summary page (legend, metrics, provenance), then one page per slice.

    ``metrics`` is the evaluate result (``per_image`` and ``mean``); masks are 0/255 stacks.
    """
    renderer = StackRenderer(volume, masks)
    with atomic_path(path) as tmp:
        canvas = Canvas(str(tmp), pagesize=PAGE)
        canvas.setTitle("EMViewer segmentation report")
        canvas.setCreator("EMViewer")
        _summary_page(canvas, volume, masks, metrics, provenance)
        for z in range(len(volume)):
            check(cancel)
            report(progress, z, len(volume), f"report page {z + 1} of {len(volume)}")
            _slice_page(canvas, z, renderer)
        canvas.save()
        report(progress, len(volume), len(volume), "done")
