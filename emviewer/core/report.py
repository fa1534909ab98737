"""PDF figure report: a summary page (per object: how it was predicted, count, area or volume
fraction, size histogram; metrics; provenance), then per slice the raw image and its overlay
side by side, as large as the page allows, each with a scale bar when the pixel size is known.

Laid out with reportlab's platypus, so a long provenance table continues on the next page
only when it does not fit; slice images are rendered while their page is drawn (one slice
in memory at a time) and stored as JPEG.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image as PILImage
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Flowable, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import KeepTogether

from .charts import histogram_drawing
from .io.atomic import atomic_path
from .io.describe import format_pixel_size
from .objects import colour_of, object_kind
from .overlay import StackRenderer
from .progress import CancelToken, Progress, check, report
from .provenance import software_versions
from .report_summary import ObjectCounts, flat_items, object_counts, object_run
from .scale_bar import draw_scale_bar
from .volume import Volume

PAGE = landscape(A4)
MARGIN = 12 * mm
FRAME_WIDTH = PAGE[0] - 2 * MARGIN
#: Slice images are stored at most at this resolution (dots per inch of the printed page).
IMAGE_DPI = 200
JPEG_QUALITY = 88
#: Width of the key column of an object's block ("test-time augmentation" on one line).
KEY_WIDTH = 44 * mm
TITLE = ParagraphStyle("title", fontName="Helvetica-Bold", fontSize=16, leading=20, spaceAfter=4)
BODY = ParagraphStyle("body", fontName="Helvetica", fontSize=10, leading=12.5)
SMALL = ParagraphStyle("small", fontName="Helvetica", fontSize=9, leading=11)
HEADING = ParagraphStyle("heading", fontName="Helvetica-Bold", fontSize=11, leading=14, spaceBefore=6, spaceAfter=3)
#: Provenance keys the summary already shows per object (or in the software line).
SHOWN = ("created", "software", "parameters.models", "parameters.predictions", "parameters.edited_slices")
Colours = Callable[[str], tuple[int, int, int]]


def _label(key: str) -> str:
    try:
        return object_kind(key).label
    except ValueError:
        return key


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _rgb(colour: tuple[int, int, int]) -> colors.Color:
    return colors.Color(*(c / 255 for c in colour))


# ---------------------------------------------------------------------- summary page


def _object_cell(key: str, run_rows, counts: ObjectCounts, colour, width: float) -> Table:
    """One object's block: coloured title, key/value rows, size histogram (beside or below)."""
    rows = [[Paragraph(f"<b>{_escape(k)}</b>", BODY), Paragraph(_escape(v), BODY)] for k, v in run_rows + counts.rows()]
    wide = width >= 120 * mm
    text_width = width * (0.68 if wide else 1.0)
    table = Table(rows, colWidths=[KEY_WIDTH, text_width - KEY_WIDTH - 4], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 0.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 0.5),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    chart_width = (width - text_width - 6) if wide else width - 6
    chart = histogram_drawing(counts.sizes, counts.size_name, colour, size=(chart_width, 36 * mm), font_size=9)
    caption = Paragraph(f"Sizes of the {len(counts.sizes)} objects", SMALL)
    title = Paragraph(
        f"<font color='{_rgb(colour).hexval().replace('0x', '#')}'>&#9632;</font> <b>{_escape(_label(key))}</b>",
        HEADING,
    )
    body = [[table, [chart, caption]]] if wide else [[table], [chart], [caption]]
    inner = Table(body, colWidths=[text_width, width - text_width] if wide else [width])
    inner.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return Table([[title], [inner]], colWidths=[width], style=[("LEFTPADDING", (0, 0), (-1, -1), 2)])


def _objects(volume: Volume, masks, provenance, colour: Colours, cancel) -> list:
    if not masks:
        return [Paragraph("No object masks in this report.", BODY)]
    columns = min(len(masks), 3)
    width = FRAME_WIDTH / columns
    cells = []
    for key, mask in masks.items():
        check(cancel)
        cells.append(
            _object_cell(
                key, object_run(provenance, key).rows(), object_counts(mask, volume.pixel_size), colour(key), width - 4
            )
        )
    rows = [
        cells[i : i + columns] + [""] * (columns - len(cells[i : i + columns])) for i in range(0, len(cells), columns)
    ]
    grid = Table(rows, colWidths=[width] * columns, hAlign="LEFT")
    grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEABOVE", (0, 0), (-1, -1), 0.4, colors.grey)]))
    return [grid]


def _metrics(metrics: Mapping) -> list:
    rows = [["image", "precision", "recall", "F1", "IoU"]]
    for item in list(metrics.get("per_image", [])) + [dict(metrics["mean"], name="mean")]:
        rows.append([str(item["name"])] + [f"{item[k]:.3f}" for k in ("precision", "recall", "f1", "iou")])
    table = Table(rows, colWidths=[70 * mm] + [28 * mm] * 4, hAlign="LEFT", repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), "Helvetica", 10),
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    return [Paragraph("Scores against the labels", HEADING), table]


def _provenance_table(provenance: Mapping) -> list:
    """The remaining provenance as two key | value column pairs (half the height of one)."""
    items = flat_items(provenance, SHOWN)
    if not items:
        return []
    cells: list[list] = [
        [Paragraph(_escape(k.removeprefix("parameters.")), SMALL), Paragraph(_escape(v), SMALL)] for k, v in items
    ]
    cells += [["", ""]] * (len(items) % 2)
    rows = [cells[i] + cells[i + 1] for i in range(0, len(cells), 2)]  # read along the rows, across page breaks
    key_w, value_w = 38 * mm, FRAME_WIDTH / 2 - 38 * mm
    table = Table(rows, colWidths=[key_w, value_w] * 2, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 0.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 0.5),
                ("LINEBEFORE", (2, 0), (2, -1), 0.4, colors.grey),
            ]
        )
    )
    return [Paragraph("Provenance", HEADING), table]


def _summary(volume: Volume, masks, metrics, provenance, colour: Colours, cancel) -> list:
    z, y, x = volume.shape
    software = (provenance or {}).get("software") or software_versions()
    created = (provenance or {}).get("created")
    versions = ", ".join(f"{k} {v}" for k, v in software.items()) if isinstance(software, Mapping) else str(software)
    story: list = [
        Paragraph("EMViewer segmentation report", TITLE),
        Paragraph(f"<b>Source:</b> {_escape(str(volume.source))}", BODY),
        Paragraph(
            f"<b>Stack:</b> {z} slice{'s' if z != 1 else ''} of {x} x {y} pixels, {volume.dtype}; "
            f"voxel size {_escape(format_pixel_size(volume.pixel_size))}"
            + (f"; <b>created</b> {_escape(str(created))}" if created else ""),
            BODY,
        ),
        Paragraph(f"<b>Software:</b> {_escape(versions)}", BODY),
        Spacer(1, 3 * mm),
    ]
    story += _objects(volume, masks, provenance, colour, cancel)
    if metrics:
        story.append(KeepTogether(_metrics(metrics)))
    if provenance:
        story += _provenance_table(provenance)
    return story


# ---------------------------------------------------------------------- slice pages


def _jpeg(image: np.ndarray) -> ImageReader:
    """JPEG keeps a many-page report small (Flate would be ~20x larger on EM noise)."""
    buffer = io.BytesIO()
    PILImage.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    buffer.seek(0)
    return ImageReader(buffer)


def _page_pixels(width_pt: float) -> int:
    """Pixels across ``width_pt`` points at :data:`IMAGE_DPI`."""
    return max(int(width_pt / 72 * IMAGE_DPI), 1)


def _fit(image: np.ndarray, width_pt: float) -> tuple[np.ndarray, float]:
    """``image`` shrunk to :data:`IMAGE_DPI` at ``width_pt`` points wide (never enlarged); the shrink factor."""
    target = _page_pixels(width_pt)
    height, width = image.shape[:2]
    if width <= target * 1.1:
        return image, 1.0
    factor = width / target
    size = (target, max(round(height / factor), 1))
    return np.asarray(PILImage.fromarray(image).resize(size, PILImage.Resampling.LANCZOS)), factor


class _SlicePage(Flowable):
    """A page for one slice: a caption line (name, number, legend), then raw | overlay filling the rest."""

    CAPTION = 9 * mm
    GAP = 5 * mm

    def __init__(self, renderer: StackRenderer, z: int, number: int, colour: Colours, scale_bar: bool, done) -> None:
        super().__init__()
        self.renderer, self.z, self.number, self.colour, self.scale_bar = renderer, z, number, colour, scale_bar
        self.done = done  # called with z before drawing: progress and cancel

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        self.width, self.height = available_width, available_height - 1
        return self.width, self.height

    def draw(self) -> None:
        self.done(self.z)
        renderer, canvas = self.renderer, self.canv
        rows, cols = renderer.volume.shape[1:]
        scale = min((self.width - self.GAP) / 2 / cols, (self.height - self.CAPTION) / rows)
        w, h = cols * scale, rows * scale
        # a slice far larger than the page is thinned to twice the page's pixels before anything
        # else (then smoothly shrunk by _fit): a 20000 x 15000 slice never exists as RGB
        step = max(1, cols // (2 * _page_pixels(w)))
        grey = renderer.display(self.z, step)
        overlay = renderer.overlay(self.z, grey, step)
        left = (self.width - 2 * w - self.GAP) / 2
        top = self.height - (self.height - self.CAPTION - h) / 2 - self.CAPTION  # centred on the page
        pixel = renderer.volume.pixel_size[-1] if renderer.volume.pixel_size and self.scale_bar else None
        for i, image in enumerate((grey, overlay)):
            image, factor = _fit(image, w)
            image = draw_scale_bar(image, pixel * step * factor if pixel else None)
            canvas.drawImage(_jpeg(image), left + i * (w + self.GAP), top - h, w, h)
        self._caption(left, top + self.CAPTION - 6 * mm)

    def _caption(self, x: float, y: float) -> None:
        canvas, volume = self.canv, self.renderer.volume
        canvas.setFont("Helvetica-Bold", 11)
        text = f"{volume.slice_names[self.z]}, slice {self.number}: raw | overlay"
        canvas.drawString(x, y, text)
        x += canvas.stringWidth(text, "Helvetica-Bold", 11) + 8 * mm
        canvas.setFont("Helvetica", 11)
        for key in self.renderer.masks:
            canvas.setFillColor(_rgb(self.colour(key)))
            canvas.rect(x, y - 0.5, 3.5 * mm, 3.5 * mm, stroke=0, fill=1)
            canvas.setFillColor(colors.black)
            canvas.drawString(x + 5 * mm, y, _label(key))
            x += 5 * mm + canvas.stringWidth(_label(key), "Helvetica", 11) + 6 * mm


def write_report(
    path,
    volume: Volume,
    masks: Mapping[str, Volume],
    metrics: Mapping | None = None,
    provenance: Mapping | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    colours: Mapping[str, tuple[int, int, int]] | None = None,
    scale_bar: bool = True,
    numbers: Sequence[int] | None = None,
) -> None:
    """Write the PDF: a summary page (per object: model, mode, threshold, count, fraction, size
    histogram; metrics; provenance), then one page per slice, atomically.

    Parameters
    ----------
    volume
        The EM stack ``(Z, Y, X)``.
    masks
        Object key -> ``(Z, Y, X)`` 0/255 stack; counted with :mod:`emviewer.core.measure`.
    metrics
        The evaluate result (``per_image`` and ``mean``), or ``None``.
    provenance
        A :func:`~emviewer.core.provenance.provenance` record (from ``emviewer predict`` or the
        app's export; see :mod:`emviewer.core.report_summary`), or ``None``.
    colours
        Object key -> RGB 0-255 (default: each object's standard colour).
    scale_bar
        Burn a scale bar into the slice images when the volume has a pixel size.
    numbers
        The 1-based number in the whole stack of each slice of ``volume`` (default 1..Z).

    Raises
    ------
    Cancelled
        ``cancel`` was set; nothing is left at ``path``.
    """
    renderer = StackRenderer(volume, masks, colours=colours)

    def colour(key: str) -> tuple[int, int, int]:
        return tuple((colours or {}).get(key) or colour_of(key))  # type: ignore[return-value]

    def done(z: int) -> None:
        check(cancel)
        report(progress, z, len(volume), f"report page {z + 1} of {len(volume)}")

    numbers = list(numbers) if numbers is not None else list(range(1, len(volume) + 1))
    report(progress, 0, len(volume), "counting objects")
    story = _summary(volume, masks, metrics, provenance, colour, cancel)
    for z in range(len(volume)):
        story += [PageBreak(), _SlicePage(renderer, z, numbers[z], colour, scale_bar, done)]
    with atomic_path(path) as tmp:
        document = SimpleDocTemplate(
            str(tmp),
            pagesize=PAGE,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN,
            bottomMargin=MARGIN,
            title="EMViewer segmentation report",
            creator="EMViewer",
        )
        document.build(story)
    report(progress, len(volume), len(volume), "done")
