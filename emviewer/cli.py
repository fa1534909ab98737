"""Command line: parse arguments and call the core. Heavy libraries load inside each command,
so ``emviewer --help`` answers at once."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .cli_args import (
    add_label_options,
    add_pair_option,
    add_read_options,
    fraction,
    object_key,
    object_keys,
    read_options,
)

EXIT_INPUT_ERROR = 2


def _progress_bar(desc: str):
    """``progress(done, total, message)`` as a tqdm bar on a terminal, else a log line every 30 s.

    Long jobs run under ``nohup`` then still leave a readable trace in their log.
    """
    if not sys.stderr.isatty():
        import time

        last = [time.monotonic()]

        def log(done: int, total: int, message: str) -> None:
            if time.monotonic() - last[0] >= 30:
                last[0] = time.monotonic()
                print(f"{desc}: {done}/{total} {message}", file=sys.stderr, flush=True)

        return log
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="step", leave=False)

    def progress(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message, refresh=True)

    return progress


# ---------------------------------------------------------------------------- commands


def cmd_info(args) -> int:
    if args.file:
        return _describe_file(args)
    from . import config
    from .core.backend import device_summary
    from .core.models.loading import run_precision
    from .core.models.runtime import choose_runtime

    devices = device_summary()
    installed = config.installed_models()
    runtime, runtime_why = choose_runtime()
    precisions = {m.name: run_precision(m.card, devices["accelerator"], runtime) for m in installed}
    info = {
        "emviewer": __version__,
        "python": sys.version.split()[0],
        **devices,
        "runtime": {"name": runtime, "why": runtime_why},
        "models": [str(m.path) for m in installed],
        "model_precision": {name: {"policy": policy, "why": why} for name, (policy, why) in precisions.items()},
        "sample_stack": str(config.sample_stack()),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"EMViewer {info['emviewer']} (Python {info['python']})")
        print(f"Keras {info['keras']}, backend {info['backend']}")
        print(f"Compute on: {', '.join(info['devices'])}")
        print(f"Runtime for predictions: {runtime} ({runtime_why}; --runtime or $EMVIEWER_RUNTIME to choose)")
        print(f"Models: {', '.join(info['models']) or 'none installed yet'}")
        for name, (policy, why) in precisions.items():
            print(f"  {name} predicts in {policy} on {runtime} ({why})")
        print(f"Sample stack: {info['sample_stack']}")
    return 0


def _describe_file(args) -> int:
    from .core.io import open_volume
    from .core.io.describe import describe

    with open_volume(args.file, read_options(args)) as volume:
        info = describe(volume)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    low, high = info["tissue_intensity_1_99"]
    lines = {
        "File": info["file"],
        "Format": info["format"],
        "Shape": (
            f"{info['shape_zyx'][0]} slices of {info['shape_zyx'][2]} x {info['shape_zyx'][1]} pixels (Z, Y, X),"
            f" {info['dtype']}"
        ),
        "Stored axes": info["stored_axes"],
        "Voxel size": f"{info['pixel_size']} ({info['pixel_size_from']})"
        if info["pixel_size_nm_zyx"]
        else "unknown (give --pixel-size Z,Y,X in nm)",
        "Tissue intensity": f"{low:g} - {high:g} (1st - 99th percentile)",
        "NaN / infinite": f"{info['nonfinite_fraction']:.2%} of the pixels",
        "Border or saturated": (
            f"{info['border_or_saturated_fraction']:.2%} of the pixels (left out of the intensity statistics)"
        ),
        "Slices": info["slices"],
    }
    for label, value in lines.items():
        print(f"{label + ':':<21}{value}")
    return 0


def _open_masks(spec: str | None, object_key: str) -> dict:
    """``--mask PATH``: one mask stack, or a folder with one sub-folder per object."""
    from .core.io import open_volume
    from .core.objects import OBJECTS

    if not spec:
        return {}
    path = Path(spec)
    per_object = {key: path / key for key in OBJECTS if (path / key).is_dir()} if path.is_dir() else {}
    if per_object:
        return {key: open_volume(p) for key, p in per_object.items()}
    return {object_key: open_volume(spec)}


def _prediction_parameters(mask: str | None) -> dict:
    """Mode, test-time augmentation, models and server of the ``emviewer predict`` run whose HDF5
    file is ``mask`` (from its provenance attributes), for the export's provenance; else ``{}``."""
    from .core.io import split_dataset
    from .core.io.hdf5 import read_provenance_parameters

    if not mask:
        return {}
    parameters = read_provenance_parameters(split_dataset(mask)[0])
    if parameters.get("command") != "predict":
        return {}
    kept = {key: parameters[key] for key in ("mode", "tta", "models", "server") if key in parameters}
    return kept | {"predicted_by": "emviewer predict"}


def cmd_export(args) -> int:
    from .core.errors import InputError
    from .core.evaluate import evaluate
    from .core.export import export, parse_slices
    from .core.io import open_volume
    from .core.provenance import provenance

    object_key = args.object
    volume = open_volume(args.input, read_options(args))
    masks = _open_masks(args.mask, object_key)
    metrics = None
    if args.labels:
        if not args.mask:
            raise InputError(args.labels, "--labels needs --mask: the masks to score against these labels")
        metrics = evaluate(args.mask, args.labels, args.foreground, args.invert, pair_by=args.pair_by).as_dict()
    predicted = _prediction_parameters(args.mask)  # masks from `emviewer predict --format h5` say how they were made
    record = provenance(
        command="export", input=args.input, mask=args.mask, labels=args.labels, object=object_key, **predicted
    )
    written = export(
        args.output,
        volume,
        masks=masks,
        content=args.content,
        slices=parse_slices(args.slices, len(volume)),
        metrics=metrics,
        provenance=record,
        progress=_progress_bar("export"),
    )
    print(f"wrote {len(written)} file(s): {written[0]}" + (" ..." if len(written) > 1 else ""))
    return 0


def cmd_evaluate(args) -> int:
    from .core.evaluate import evaluate
    from .core.validate import unpaired_warning

    result = evaluate(
        args.pred,
        args.labels,
        args.foreground,
        args.invert,
        progress=_progress_bar("evaluate"),
        pair_by=args.pair_by,
        label_options=read_options(args),
    )
    for names, kind, source in (
        (result.unpaired_predictions, "prediction", args.pred),
        (result.unpaired_labels, "label", args.labels),
    ):
        if names:
            print(f"warning: {unpaired_warning(names, kind, source)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    print(f"{'image':<32} {'precision':>9} {'recall':>9} {'F1':>9} {'IoU':>9}")
    rows = [*zip(result.names, result.per_image, strict=True), ("mean", result.mean)]
    for name, s in rows:
        print(f"{name:<32} {s.precision:>9.4f} {s.recall:>9.4f} {s.f1:>9.4f} {s.iou:>9.4f}")
    return 0


def _registry():
    from . import config

    return config.installed_models()


def cmd_models(args) -> int:
    entries = _registry()
    if args.json:
        listing = [
            {"name": e.name, "path": str(e.path), "bundled": e.bundled, "card": e.card.to_json()} for e in entries
        ]
        print(json.dumps(listing, indent=2))
        return 0
    if not entries:
        print("no models installed yet; train one with 'emviewer train'")
        return 0
    print(f"{'name':<28} {'object':<9} {'arch':<13} {'ctx':>3} {'val F1':>7} {'thr':>5}  modes / path")
    for e in entries:
        c = e.card
        where = ",".join(c.modes) or ("bundled" if e.bundled else "user")
        print(
            f"{e.name:<28} {c.object:<9} {c.architecture or '?':<13} {c.context:>3} {c.figure('f1'):>7.3f}"
            f" {c.threshold:>5.2f}  {where}  {e.path}"
        )
    return 0


def _conversion_note(done: int, total: int, message: str) -> None:
    """A model converted for a faster runtime on first use takes seconds: say so once."""
    if done == 0:
        print(message, file=sys.stderr, flush=True)


def _predictor(args):
    """The local predictor with installed models, or the server's with ``--server``; with
    what to record of it, and each object's model files (None online)."""
    if args.server:
        from .core.errors import InputError
        from .remote.client import RemotePredictor
        from .server.settings import TOKEN_ENV

        token = args.token or os.environ.get(TOKEN_ENV, "")
        if args.model and args.model.endswith(".keras"):
            raise InputError(
                args.model, "online mode uses the server's models: give a name from the server's model list"
            )
        names = {obj: args.model.split(",") for obj in args.object} if args.model else {}
        remote = RemotePredictor(args.server, token, args.object, names, args.mode, args.tta, args.keep_long_objects)
        return remote, {"server": args.server, "models": names or "server defaults"}, None
    from .core.models.registry import resolve_models
    from .core.predict import models_record, predictor_for

    files = resolve_models(dict.fromkeys(args.object, args.model), args.mode, _registry())
    predictor = predictor_for(
        files, args.mode, args.tta, args.keep_long_objects, runtime=args.runtime, progress=_conversion_note
    )
    return (
        predictor,
        {"tta": predictor.tta, "keep_long_objects": args.keep_long_objects, "models": models_record(predictor.models)},
        files,
    )


def cmd_predict(args) -> int:
    from .core.errors import InputError
    from .core.io import open_volume
    from .core.prediction_output import PredictionWriter, write_predictions
    from .core.provenance import provenance
    from .core.validate import check_volume_image

    fmt = args.format or ("zarr" if args.output.rstrip("/\\").lower().endswith(".zarr") else "png")
    if args.resume and fmt != "zarr":
        raise InputError(args.output, "--resume continues an OME-Zarr prediction: give -o OUT.zarr")
    volume = open_volume(args.input, read_options(args))
    check_volume_image(volume)  # a mask given as the image: said before models load (or convert)
    predictor, how, files = _predictor(args)
    record = provenance(command="predict", input=args.input, mode=args.mode, **how)
    if fmt == "zarr":
        from .cli_predict_zarr import predict_to_store

        return predict_to_store(args, volume, predictor, record, files, _progress_bar("predict"))
    if args.cluster or args.scheduler:
        raise InputError(args.output, "--cluster and --scheduler write an OME-Zarr store: give -o OUT.zarr")
    writer = PredictionWriter(Path(args.output), args.object, fmt, args.save_probabilities, record, volume.pixel_size)
    stream = getattr(predictor, "iter_bands", predictor.iter_predict)  # a server answers whole slices
    results = stream(volume, progress=_progress_bar("predict"))
    written = write_predictions(results, writer, raw=volume if fmt == "h5" else None)
    print(f"wrote {len(written)} file(s) to {args.output}")
    return 0


def cmd_train(args) -> int:
    from datetime import date

    from . import config
    from .core.train import DataSpec, TrainConfig, train

    start, network = None, {"arch": args.arch, "context": 1}
    if args.init_from:
        from .core.models.registry import find_model, read_card
        from .core.train import network_settings

        start = find_model(args.init_from, config.installed_models())
        network.update(network_settings(read_card(start)))  # fine-tuning keeps the start model's network
    context = args.context or network["context"]
    default_name = f"{args.object}-{network['arch']}-{context}fm-{date.today():%Y%m%d}.keras"
    out = Path(args.out) if args.out else config.user_models_dir() / args.object / default_name
    spec = DataSpec(
        args.images,
        args.labels,
        args.val_images or [],
        args.val_labels or [],
        args.foreground,
        args.invert,
        args.pair_by,
        read_options=read_options(args),
    )
    settings = TrainConfig(
        object=args.object,
        arch=args.arch,
        context=context,
        width=args.width,
        tile=args.tile,
        batch_size=args.batch_size,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        learning_rate=args.lr,
        seed=args.seed,
        precision=args.precision,
        hard_mining=args.hard_mining,
        length_filter=args.length_filter,
    )
    limit = None if args.time_limit is None else args.time_limit * 60
    card = train(
        spec,
        settings,
        out,
        resume=args.resume,
        progress=_progress_bar("train"),
        time_limit_s=limit,
        init_from=start,
        on_warning=lambda message: print(f"warning: {message}", file=sys.stderr, flush=True),
    )
    print(
        f"wrote {out} (validation F1 {card.figure('f1'):.3f} at threshold {card.threshold:.2f},"
        f" best epoch {card.best_epoch})"
    )
    return 0


def _qt_installed() -> bool:
    """Whether the app's extra (PySide6, pyqtgraph) is installed; a server install goes without it."""
    from importlib.util import find_spec

    try:
        return find_spec("PySide6") is not None and find_spec("pyqtgraph") is not None
    except ImportError:  # a finder that refuses the name
        return False


def cmd_gui(args) -> int:
    if not _qt_installed():
        print("emviewer: error: the desktop app needs Qt: pip install 'emviewer[app]'", file=sys.stderr)
        return EXIT_INPUT_ERROR
    from .gui.app import run

    return run(args.path, args.object or (), args.predict, args.screenshot)


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from .cli_adapt import add_adapt_parser
    from .cli_measure import add_measure_parser
    from .cli_models import add_model_exchange_parsers
    from .server.command import add_serve_parser

    parser = argparse.ArgumentParser(prog="emviewer", description="Segment organelles in electron-microscopy stacks.")
    parser.add_argument("--version", action="version", version=f"emviewer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = sub.add_parser("gui", help="the desktop app (also what 'emviewer' alone starts)")
    gui.add_argument("path", nargs="?", help="stack to open (default: the bundled sample stack)")
    gui.add_argument("--object", type=object_keys, help="objects to select, e.g. mito or mito,membrane")
    gui.add_argument("--predict", action="store_true", help="predict the selected objects at once")
    gui.add_argument(
        "--screenshot",
        metavar="FILE",
        help="render the window (after predicting with --predict), save FILE as PNG and exit",
    )
    gui.set_defaults(run=cmd_gui)

    info = sub.add_parser("info", help="version, Keras backend, compute device, installed models; or describe FILE")
    info.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="an image or stack to describe: shape, dtype, axes, voxel size, intensities",
    )
    info.add_argument("--json", action="store_true", help="print one JSON object")
    add_read_options(info)
    info.set_defaults(run=cmd_info)

    export = sub.add_parser("export", help="convert a stack (and masks) to HDF5, PNG, JPEG, TIFF, RAW or a PDF report")
    export.add_argument("input", help="PNG/TIFF/JPEG folder, TIFF stack, file.h5[:/dataset], Zarr, MRC or image")
    export.add_argument("-o", "--output", required=True, help="OUT.h5, .png, .jpg, .tif, .raw or .pdf")
    export.add_argument("--mask", help="mask folder or stack (0/255), or a folder with one sub-folder per object")
    export.add_argument(
        "--object",
        type=object_key,
        default="mito",
        help="object the masks show: mito, nuclei or membrane (default mito)",
    )
    export.add_argument(
        "--content",
        choices=("raw", "mask", "overlay"),
        help="what PNG/JPEG/TIFF/RAW hold (default: overlay with masks for PNG/JPEG, else raw)",
    )
    export.add_argument("--slices", help="0-based slices to export, e.g. 0-4,9 (default all)")
    export.add_argument("--labels", help="expert labels: adds a metrics table to a PDF report")
    add_label_options(export)
    add_pair_option(export, "the masks and --labels")
    add_read_options(export)
    export.set_defaults(run=cmd_export)

    models = sub.add_parser("models", help="installed models (bundled and your own) with their validation figures")
    models.add_argument("--json", action="store_true", help="print the cards as JSON")
    models.set_defaults(run=cmd_models)

    predict = sub.add_parser("predict", help="segment a stack with the installed (or given) models")
    predict.add_argument("input", help="PNG/TIFF/JPEG folder, TIFF stack, file.h5[:/dataset], Zarr, MRC or image")
    predict.add_argument(
        "-o", "--output", required=True, metavar="OUTDIR", help="folder for the masks, or OUT.zarr (OME-Zarr)"
    )
    predict.add_argument(
        "--object", type=object_keys, required=True, help="mito, nuclei or membrane, or a comma list of them"
    )
    predict.add_argument("--model", help="registered model name or .keras file (a comma list makes an ensemble)")
    predict.add_argument(
        "--mode",
        choices=("fast", "accurate"),
        default="fast",
        help="fast: one model, no augmentation; accurate: ensemble + 16x test-time augmentation",
    )
    predict.add_argument("--tta", type=int, choices=(1, 8, 16), help="test-time variants (default 1 fast, 16 accurate)")
    predict.add_argument(
        "--runtime",
        choices=("auto", "keras", "openvino", "onnx"),
        help="what runs the models on this computer: auto (default, or $EMVIEWER_RUNTIME): Keras on an NVIDIA"
        " GPU, else OpenVINO; a converted model is made on first use and kept in the user cache folder",
    )
    predict.add_argument(
        "--keep-long-objects",
        action="store_true",
        help="keep objects longer than the model allows (its card's max_object_length_px: 1.5 x the longest"
        " labelled object), e.g. for much finer pixels than the training data",
    )
    predict.add_argument(
        "--format",
        choices=("png", "tif", "h5", "zarr"),
        help="png: one mask per slice (default); tif: one stack per object; h5: one file;"
        " zarr: an OME-Zarr store with a pyramid per object (the default for -o OUT.zarr)",
    )
    predict.add_argument(
        "--resume",
        action="store_true",
        help="continue a stopped OME-Zarr prediction: predict only the slices not yet written",
    )
    spread = predict.add_mutually_exclusive_group()
    spread.add_argument(
        "--cluster", metavar="local:N", help="OME-Zarr output: predict on N local worker processes (dask.distributed)"
    )
    spread.add_argument(
        "--scheduler", metavar="tcp://HOST:PORT", help="OME-Zarr output: predict on a running dask.distributed cluster"
    )
    predict.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write probabilities (PNG 0-255, or float32 in TIFF/HDF5)",
    )
    predict.add_argument(
        "--server", metavar="URL", help="predict online on an EMViewer server, e.g. http://gpu-box:8765"
    )
    predict.add_argument("--token", help="the server's token (default: $EMVIEWER_TOKEN)")
    add_read_options(predict)
    predict.set_defaults(run=cmd_predict)

    train = sub.add_parser("train", help="train a model on your labelled slices")
    train.add_argument(
        "--images", action="append", required=True, help="image folder or stack (repeat for several data sets)"
    )
    train.add_argument(
        "--labels",
        action="append",
        required=True,
        help="labels for each --images, paired by the number in the file name (see --pair-by)",
    )
    train.add_argument("--object", type=object_key, required=True, help="mito, nuclei or membrane")
    train.add_argument("--arch", choices=("multiresunet", "deepem3d"), default="multiresunet")
    train.add_argument(
        "--context",
        type=int,
        choices=(1, 3, 5),
        help="neighbouring slices the model sees (1fm, 3fm, 5fm; default 1, or the --init-from model's,"
        " which may be changed)",
    )
    train.add_argument(
        "--val-images", action="append", help="held-out images (default: the last 15 %% of the training slices)"
    )
    train.add_argument("--val-labels", action="append", help="labels of the held-out images")
    add_pair_option(train, "every --images/--labels (and --val-) pair")
    add_label_options(train)
    add_read_options(train, "for the --images")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--steps", type=int, default=100, help="batches per epoch (default 100)")
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--tile", type=int, default=256, help="training crop size, a multiple of 16 (default 256)")
    train.add_argument("--width", type=int, default=16, help="base filters: 8-16 small and fast, 32 large")
    train.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (cosine decay)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"), default="auto")
    train.add_argument("--out", help="model file FILE.keras (default: your user models folder)")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in FILE.checkpoints/")
    train.add_argument(
        "--init-from",
        metavar="MODEL",
        help="fine-tune this model (a name from 'emviewer models' or a .keras file) instead of starting from"
        " scratch; its architecture and width are used, and its context unless --context is given",
    )
    train.add_argument(
        "--time-limit",
        type=float,
        metavar="MINUTES",
        help="stop after the epoch that would run past this; --resume continues",
    )
    train.add_argument(
        "--hard-mining",
        type=fraction,
        default=0.0,
        metavar="F",
        help="centre this fraction of the crops (0-1) where the model still errs, found by predicting the"
        " training slices before each epoch (default 0)",
    )
    train.add_argument(
        "--length-filter",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let the model reject predicted objects longer than 1.5 x the longest labelled one"
        " (default: on for mito, off for nuclei and membranes)",
    )
    train.set_defaults(run=cmd_train)

    evaluate = sub.add_parser("evaluate", help="precision, recall, F1 and IoU of masks against labels")
    evaluate.add_argument("--pred", required=True, help="predicted masks (folder or stack)")
    evaluate.add_argument(
        "--labels",
        required=True,
        help="expert labels (folder or stack), paired by the number in the file name (see --pair-by)",
    )
    add_pair_option(evaluate, "predictions and labels")
    add_label_options(evaluate)
    add_read_options(evaluate, "for the --labels, e.g. an ilastik export")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object with keys per_image and mean")
    evaluate.set_defaults(run=cmd_evaluate)
    add_measure_parser(sub)
    add_adapt_parser(sub)
    add_serve_parser(sub)
    add_model_exchange_parsers(sub)
    return parser


def _show_input_warnings() -> None:
    """Warnings about the user's files (``InputWarning``) go to stderr as one line each."""
    import warnings

    from .core.errors import InputWarning

    shown = warnings.showwarning
    if getattr(shown, "emviewer_input_warnings", False):  # main() may run many times in one process
        return

    def show(message, category, *rest, **kwargs):
        if issubclass(category, InputWarning):
            print(f"emviewer: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *rest, **kwargs)

    show.emviewer_input_warnings = True  # type: ignore[attr-defined]  # a marker on our own function object
    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's C++ start-up chatter off the terminal
    logging.getLogger("tifffile").setLevel(logging.ERROR)  # damaged files are reported by us, once
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):  # no command: start the app on the sample stack
        args = parser.parse_args(["gui"])
    from .core.errors import ReportedError
    from .core.progress import Cancelled

    _show_input_warnings()
    try:
        return args.run(args)
    except ReportedError as exc:  # the user's files (2), training (3), the server (4): core/errors.py
        print(f"emviewer: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except (Cancelled, KeyboardInterrupt):
        print("emviewer: cancelled; no partial output was kept", file=sys.stderr)
        return 130
    except OSError as exc:  # e.g. no permission or no space where the output goes
        print(f"emviewer: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except Exception as exc:  # a bug: one line for the user, details on request
        if os.environ.get("EMVIEWER_DEBUG"):
            raise
        print(
            f"emviewer: internal error: {type(exc).__name__}: {exc} (set EMVIEWER_DEBUG=1 for details)", file=sys.stderr
        )
        return 1
