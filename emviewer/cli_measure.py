"""``emviewer measure``: objects of a mask stack (count, slices, centroid, size, shape) to CSV.

The work is in :mod:`emviewer.core.measure`; this module parses the options and prints one line.
"""

from __future__ import annotations

import argparse
import contextlib


def min_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of voxels (0 or more)")
    return value


def cmd_measure(args) -> int:
    from .core.io import ReadOptions, open_volume
    from .core.measure import measure_volume, write_csv

    with contextlib.ExitStack() as stack:
        masks = stack.enter_context(open_volume(args.masks, ReadOptions(pixel_size=args.pixel_size)))
        image = stack.enter_context(open_volume(args.image)) if args.image else None
        table = measure_volume(masks, image, min_size=args.min_size)
    path = write_csv(table, args.output)
    print(f"{table.summary()}; wrote {path}")
    return 0


def add_measure_parser(sub) -> None:
    """The ``measure`` sub-command, on the main parser's sub-parsers."""
    from .cli_args import pixel_size

    measure = sub.add_parser(
        "measure",
        help="count and measure the objects of a mask stack (slices, centroid, volume or area, sizes) to CSV",
    )
    measure.add_argument(
        "masks",
        metavar="MASKS",
        help="masks as 'emviewer predict' writes them (PNG folder, TIFF, file.h5:/masks/mito) or any 0/255 stack",
    )
    measure.add_argument("-o", "--output", required=True, metavar="OBJECTS.csv", help="the table to write")
    measure.add_argument("--image", metavar="STACK", help="the EM stack (same shape) for each object's mean intensity")
    measure.add_argument(
        "--pixel-size",
        type=pixel_size,
        metavar="Z,Y,X",
        help="voxel size in nm, e.g. 50,7,7 (default: the masks' file, else the image's; without one, sizes"
        " are in pixels)",
    )
    measure.add_argument(
        "--min-size",
        type=min_size,
        default=0,
        metavar="N",
        help="drop objects of fewer than N voxels (pixels for a single image)",
    )
    measure.set_defaults(run=cmd_measure)
