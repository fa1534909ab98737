"""Argument types and the option groups several commands share (``--pixel-size``,
``--channel``, ``--axes``, ``--pair-by``, label values). Light: no heavy import at start-up."""

from __future__ import annotations

import argparse


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def values(text: str) -> list[float] | None:
    from .core.errors import InputError
    from .core.validate import parse_values

    try:
        return parse_values(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def pixel_size(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 < v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a voxel size Z,Y,X in nm, e.g. 50,7,7")
    return values


def axes(text: str) -> str:
    from .core.errors import InputError
    from .core.io.axes import parse_axes

    try:
        return parse_axes(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def read_options(args):
    """What ``--channel``, ``--axes`` and ``--pixel-size`` say about the input files."""
    from .core.io import ReadOptions

    return ReadOptions(
        channel=getattr(args, "channel", None),
        axes=getattr(args, "axes", None),
        pixel_size=getattr(args, "pixel_size", None),
    )


def object_key(text: str) -> str:
    from .core.objects import object_kind

    try:
        return object_kind(text).key
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def object_keys(text: str) -> list[str]:
    return list(dict.fromkeys(object_key(part) for part in text.split(",") if part.strip()))


def add_pair_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--pair-by",
        choices=("number", "order"),
        default="number",
        help=f"how {what} line up: number = the number in the file names (default; refused when the numbers"
        " differ), order = position in natural order (equal counts)",
    )


def add_read_options(parser: argparse.ArgumentParser, which: str = "") -> None:
    group = parser.add_argument_group("reading the input" + (f" ({which})" if which else ""))
    group.add_argument(
        "--pixel-size",
        type=pixel_size,
        metavar="Z,Y,X",
        help="voxel size in nm, e.g. 50,7,7 (overrides what the file says)",
    )
    group.add_argument(
        "--channel", type=int, metavar="N", help="0-based channel to read from a file with several channels"
    )
    group.add_argument(
        "--axes",
        type=axes,
        metavar="AXES",
        help="axis order of the stored array when the file does not say, e.g. ZYXC or TCZYX",
    )


def add_label_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--foreground",
        type=values,
        metavar="V[,V]",
        help="label value(s) that mark the object (default: the larger of two values)",
    )
    parser.add_argument(
        "--invert",
        action="store_true",
        help="the object is the background value of the labels (e.g. ISBI membranes: 0 = membrane)",
    )
