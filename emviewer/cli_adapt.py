"""``emviewer adapt``: fine-tune a model on a few labelled slices of your own microscope.

The work is in :mod:`emviewer.core.adapt`; this module picks the source model, reads the
slices at the source's contrast and prints the figures before and after.
"""

from __future__ import annotations

import argparse


def minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 24 * 60:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time in minutes (more than 0, at most a day)")
    return value


def zoom_value(text: str) -> float | None:
    """``auto`` (None: matched to the source's objects) or a zoom in [MIN_ZOOM, MAX_ZOOM]."""
    from .core.zoom import MAX_ZOOM, MIN_ZOOM

    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not MIN_ZOOM <= value <= MAX_ZOOM:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto' or a zoom from {MIN_ZOOM:g} to {MAX_ZOOM:g}")
    return value


def cmd_adapt(args) -> int:
    from . import config
    from .cli import _progress_bar
    from .cli_args import read_options
    from .core.adapt import adapt, default_output
    from .core.dataset import load_labelled
    from .core.fine_tune import FineTuneSettings
    from .core.models.registry import find_model, models_for, read_card

    entries = config.installed_models()
    source = find_model(args.source, entries) if args.source else models_for(args.object, "fast", entries)[0]
    card = read_card(source)
    if card.object != args.object:
        from .core.errors import InputError

        raise InputError(source, f"this model segments {card.object!r}, not {args.object!r}")
    out = default_output(source, config.user_models_dir() / args.object, args.out)
    stack = load_labelled(
        args.images, args.labels, args.foreground, args.invert, args.pair_by, card.reference, read_options(args)
    )
    settings = FineTuneSettings(trainable=args.trainable)
    print(f"adapting {source.stem} on {len(stack)} labelled slice(s) of {stack.source} for {args.time_limit:g} min")
    result = adapt(stack, source, out, args.time_limit * 60, settings, progress=_progress_bar("adapt"), zoom=args.zoom)
    before, after = result.before, result.after
    if result.zoom_line():
        print(f"trained {result.zoom_line()}")
    print(
        f"held-back slice(s) {', '.join(result.held_out)}: F1 {before.f1:.3f} -> {after.f1:.3f}, "
        f"IoU {before.iou:.3f} -> {after.iou:.3f} (threshold {result.threshold:.2f} -> {result.adapted_threshold:.2f}; "
        f"{result.steps[0]} + {result.steps[1]} steps, {result.seconds / 60:.1f} min)"
    )
    if result.model_path is None:
        print(f"not better than {source.stem}: no model written; label more slices or give more time")
        return 0
    print(f"wrote {result.model_path}; use it with --model {result.model_path.stem}")
    return 0


def add_adapt_parser(sub) -> None:
    """The ``adapt`` sub-command, on the main parser's sub-parsers."""
    from .cli_args import add_label_options, add_pair_option, add_read_options, object_key
    from .core.fine_tune import TRAINABLE

    adapt = sub.add_parser(
        "adapt",
        help="fine-tune a model on a few labelled (corrected) slices of your own data; never changes the source",
    )
    adapt.add_argument("--images", required=True, help="image folder or stack with at least two labelled slices")
    adapt.add_argument("--labels", required=True, help="their labels, paired by the number in the file name")
    adapt.add_argument("--object", type=object_key, required=True, help="mito, nuclei or membrane")
    adapt.add_argument(
        "--from",
        dest="source",
        metavar="MODEL",
        help="the model to start from (a name from 'emviewer models' or a .keras file; default: the object's"
        " fast model)",
    )
    adapt.add_argument(
        "--time-limit",
        type=minutes,
        default=10.0,
        metavar="MINUTES",
        help="training time in minutes (default 10)",
    )
    adapt.add_argument(
        "--out",
        metavar="NAME",
        help="name of the new model in your models folder, or a FILE.keras (default: <source>-adapted-N)",
    )
    adapt.add_argument(
        "--zoom",
        type=zoom_value,
        default=None,
        metavar="auto|F",
        help="scale at which the new model takes your slices (0.5: half the pixels per side); default auto: your"
        " labelled objects matched to the width the source's card records (1 when it records none)",
    )
    adapt.add_argument(
        "--trainable", choices=TRAINABLE, default="all", help="which layers learn (default all; see models/TRAINING.md)"
    )
    add_pair_option(adapt, "the images and labels")
    add_label_options(adapt)
    add_read_options(adapt, "for the --images")
    adapt.set_defaults(run=cmd_adapt)
