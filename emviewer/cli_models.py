"""``emviewer export-model`` and ``emviewer import-model``: model exchange with bioimage.io.

The work is in :mod:`emviewer.core.models.bioimageio` (writing) and
:mod:`emviewer.core.models.bioimageio_import` (registering); heavy packages load inside the commands.
"""

from __future__ import annotations

from pathlib import Path


def cmd_export_model(args) -> int:
    from . import config
    from .cli_args import read_options
    from .core.io import open_volume
    from .core.models.bioimageio import export_package, require_exchange_packages
    from .core.models.registry import find_model

    require_exchange_packages()  # before loading anything: a one-line hint to install the extra
    entries = config.installed_models()
    path = find_model(args.name, entries)
    entry = next((e for e in entries if e.path == path), None)
    if entry is None:
        from .core.models.registry import read_card

        card = read_card(path)
    else:
        card = entry.card
    test_image = args.test_image or str(config.sample_stack())
    volume = open_volume(test_image, read_options(args))
    result = export_package(path, card, volume, Path(args.output))
    print(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB): bioimageio.spec {result.validation}; "
        f"ONNX vs Keras max |diff| {result.onnx_max_abs_diff:.2g}"
    )
    if result.installed_max_abs_diff:
        print(
            f"the packed float32 weights differ from the installed model by up to {result.installed_max_abs_diff:.2g} "
            f"({100 * result.installed_mask_changes:.2f} % of mask pixels) on the test input"
        )
    for warning in result.warnings:
        print(f"bioimageio.spec warning: {warning}")
    return 0


def cmd_import_model(args) -> int:
    from . import config
    from .core.models.bioimageio_import import import_package

    taken = {entry.name for entry in config.installed_models()}
    path = import_package(args.package, config.user_models_dir(), taken, args.name, args.object)
    print(f"registered {path.stem} ({path}); use it with --model {path.stem}")
    return 0


def add_model_exchange_parsers(sub) -> None:
    """The two sub-commands, on the main parser's sub-parsers."""
    from .cli_args import add_read_options, object_key

    export = sub.add_parser(
        "export-model",
        help="write an installed model as a bioimage.io model package (zip; needs emviewer[exchange])",
    )
    export.add_argument("name", help="registered model name (see 'emviewer models') or a .keras file")
    export.add_argument("-o", "--output", required=True, metavar="NAME.zip", help="the package to write")
    export.add_argument(
        "--test-image",
        metavar="STACK",
        help="stack to cut the test input and cover from (default: the bundled sample stack)",
    )
    add_read_options(export, "for --test-image")
    export.set_defaults(run=cmd_export_model)

    imp = sub.add_parser(
        "import-model",
        help="register a bioimage.io model package (zip with keras_v3 weights) as your own model",
    )
    imp.add_argument("package", metavar="PACKAGE.zip", help="the bioimage.io model package")
    imp.add_argument("--name", help="name to register it under (default: the package's model name)")
    imp.add_argument(
        "--object",
        type=object_key,
        help="object it segments: mito, nuclei or membrane (default: what an EMViewer package says)",
    )
    imp.set_defaults(run=cmd_import_model)
