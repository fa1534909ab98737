"""Registering a bioimage.io model package as a user model: ``emviewer import-model``.

The zip is untrusted. Before anything is unpacked it is checked for size, member names (no
absolute paths, no ``..``, no links, no duplicates) and the unpacked total; ``rdf.yaml`` must be a
bioimage.io model (format 0.5) that ``bioimageio.spec`` accepts, with Keras v3 weights and the
tensor layout EMViewer runs (one input ``batch, y, x, channel`` with 1, 3 or 5 channels, one output
``batch, y, x, channel`` with one channel). The Keras file is loaded in Keras' safe mode (no code
in the file runs) and must reproduce the package's test output. Only then are ``NAME.keras`` and
its card ``NAME.json`` moved into the user models folder, the card last, so a model is either
fully registered or not at all.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import InputError
from ..objects import object_kind

#: A package larger than this (bytes, zipped or unpacked) is refused.
MAX_PACKAGE_BYTES = 2 << 30
#: ``rdf.yaml`` larger than this is refused (a description is a few kB).
MAX_RDF_BYTES = 1 << 20
#: Largest accepted ``|output - test output|`` of the Keras weights on the test input, and the
#: share of pixels allowed past it (bioimage.io's default tolerance is 1e-3 with 100 per million).
REPRODUCE_TOLERANCE, REPRODUCE_SHARE = 1e-3, 1e-4


def _refuse(path: Path, problem: str) -> InputError:
    return InputError(path, problem)


def _safe_members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Members by name; refuses names outside the package, links and oversized contents."""
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in archive.infolist():
        name = info.filename
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or ":" in name or ".." in parts or not parts:
            raise _refuse(path, f"the package holds a file outside it ({name!r})")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refuse(path, f"the package holds a link ({name!r})")
        if name in members:
            raise _refuse(path, f"the package holds {name!r} twice")
        total += info.file_size
        if total > MAX_PACKAGE_BYTES:
            raise _refuse(path, f"the package unpacks to more than {MAX_PACKAGE_BYTES >> 30} GiB")
        if not info.is_dir():
            members[name] = info
    return members


def _read_rdf(path: Path, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict:
    import yaml

    name = next((n for n in ("rdf.yaml", "bioimageio.yaml") if n in members), None)
    if name is None:
        raise _refuse(path, "no rdf.yaml in the package: not a bioimage.io model package")
    if members[name].file_size > MAX_RDF_BYTES:
        raise _refuse(path, f"{name} is larger than {MAX_RDF_BYTES >> 20} MiB")
    try:
        document = yaml.safe_load(archive.read(name))
    except yaml.YAMLError as exc:
        raise _refuse(path, f"{name} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(document, dict) or document.get("type") != "model":
        raise _refuse(path, f"{name} does not describe a bioimage.io model")
    if not str(document.get("format_version", "")).startswith("0.5"):
        raise _refuse(path, f"model format {document.get('format_version')!r} is not supported (0.5.x is)")
    return document


def _file(path: Path, entry: Any, members: dict) -> str:
    """A file name the rdf refers to, which must be inside the package."""
    source = entry.get("source") if isinstance(entry, dict) else entry
    if not isinstance(source, str) or source not in members:
        raise _refuse(path, f"the rdf refers to {source!r}, which is not a file in the package")
    return source


def _axes_kinds(tensor: dict) -> list[str]:
    return [
        str(a.get("type")) + ("" if a.get("type") != "space" else f":{a.get('id')}") for a in tensor.get("axes", [])
    ]


def check_compatible(path: Path, document: dict, members: dict) -> dict:
    """What EMViewer needs from the rdf: Keras weights and a layout it runs.

    Returns
    -------
    dict
        ``keras``, ``test_input``, ``test_output`` (file names in the package) and ``context``.
    """
    weights = document.get("weights") or {}
    if "keras_v3" not in weights:
        formats = ", ".join(sorted(weights)) or "none"
        raise _refuse(path, f"unsupported weights format(s) {formats}: EMViewer runs keras_v3 weights")
    inputs, outputs = document.get("inputs") or [], document.get("outputs") or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise _refuse(path, f"the model has {len(inputs)} inputs and {len(outputs)} outputs; EMViewer runs 1 and 1")
    layout = ["batch", "space:y", "space:x", "channel"]
    for role, tensor in (("input", inputs[0]), ("output", outputs[0])):
        if _axes_kinds(tensor) != layout:
            raise _refuse(
                path, f"{role} axes {_axes_kinds(tensor)} cannot run in EMViewer (needs batch, y, x, channel)"
            )
    context = len(inputs[0]["axes"][3].get("channel_names") or [])
    if context not in (1, 3, 5) or len(outputs[0]["axes"][3].get("channel_names") or []) != 1:
        raise _refuse(path, "EMViewer runs 1, 3 or 5 input channels (slices) and one output channel")
    return {
        "keras": _file(path, weights["keras_v3"], members),
        "test_input": _file(path, inputs[0].get("test_tensor"), members),
        "test_output": _file(path, outputs[0].get("test_tensor"), members),
        "context": context,
    }


def _card_from(path: Path, document: dict, context: int, object_key: str | None) -> dict:
    """The card of the imported model: EMViewer's own (``config.emviewer.card``) or one made
    from the rdf (object from ``object_key``; normalisation from scale_range/scale_linear)."""
    own = ((document.get("config") or {}).get("emviewer") or {}).get("card")
    card = dict(own) if isinstance(own, dict) else {"threshold": 0.5}
    if object_key:
        card["object"] = object_key
    if not card.get("object"):
        raise _refuse(path, "the package does not say which object it segments: give --object")
    try:
        card["object"] = object_kind(str(card["object"])).key
    except ValueError as exc:
        raise _refuse(path, str(exc)) from None
    if "input_reference" not in card:
        card["input_reference"] = _reference_from(path, document["inputs"][0].get("preprocessing") or [])
    card["context"] = context
    card["imported_from"] = {"package": path.name, "name": document.get("name")}
    return card


def _reference_from(path: Path, steps: list) -> list[float]:
    """EMViewer's input levels from bioimage.io preprocessing it can reproduce."""
    ids = [step.get("id") for step in steps if isinstance(step, dict) and step.get("id") != "ensure_dtype"]
    ranges = [s for s in steps if isinstance(s, dict) and s.get("id") == "scale_range"]
    if not ranges or not set(ids) <= {"scale_range", "scale_linear", "clip"}:
        raise _refuse(path, f"preprocessing {ids} cannot be mapped onto EMViewer's normalisation")
    kwargs = ranges[0].get("kwargs") or {}
    if (kwargs.get("min_percentile"), kwargs.get("max_percentile")) != (1.0, 99.0):
        raise _refuse(path, "EMViewer normalises with the 1st / 99th percentiles; the package uses others")
    linear = next((s.get("kwargs") or {} for s in steps if isinstance(s, dict) and s.get("id") == "scale_linear"), {})
    gain, offset = float(linear.get("gain", 1.0)), float(linear.get("offset", 0.0))
    return [offset, offset + gain]


def _validate_spec(path: Path) -> None:
    """``bioimageio.spec``'s verdict on the package (format only: no downloads, no model run)."""
    from bioimageio.spec import load_description_and_validate_format_only

    summary = load_description_and_validate_format_only(path, perform_io_checks=False)
    if summary.status not in ("valid-format", "passed"):
        first = next((e for d in summary.details for e in d.errors), None)
        where = f"{'.'.join(map(str, first.loc))}: {first.msg}" if first else summary.status
        raise _refuse(path, f"invalid rdf.yaml ({where})")


def _check_runs(path: Path, keras_file: Path, test_input: Path, test_output: Path, card: dict) -> None:
    """Load the weights in safe mode and reproduce the test output from the test input."""
    import keras

    from .bioimageio_convert import bioimageio_input

    try:
        model = keras.saving.load_model(keras_file, compile=False, safe_mode=True)
        raw, expected = np.load(test_input, allow_pickle=False), np.load(test_output, allow_pickle=False)
        output = np.asarray(model.predict_on_batch(bioimageio_input(raw, tuple(card["input_reference"]))))
    except Exception as exc:  # Keras and numpy raise many kinds for a bad file
        raise _refuse(
            path, f"the Keras weights or test tensors cannot be used ({str(exc).splitlines()[0][:200]})"
        ) from None
    if output.shape != expected.shape:
        raise _refuse(path, f"the model gives {output.shape} for the test input; the package says {expected.shape}")
    if np.mean(np.abs(output - expected) > REPRODUCE_TOLERANCE) > REPRODUCE_SHARE:
        raise _refuse(path, "the Keras weights do not reproduce the package's test output")


def _extract(archive: zipfile.ZipFile, name: str, target: Path, limit: int) -> None:
    """Copy one member out, counting bytes: a member larger than its header says is refused."""
    written = 0
    with archive.open(name) as source, open(target, "wb") as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            written += len(block)
            if written > limit:
                raise InputError(target.name, "a file in the package is larger than its header says")
            out.write(block)


def import_package(
    package: str | Path, models_dir: Path, taken: set[str], name: str | None = None, object_key: str | None = None
) -> Path:
    """Register a bioimage.io model package as a user model.

    Parameters
    ----------
    package
        The ``.zip`` (untrusted).
    models_dir
        The user models folder; the model goes to ``<models_dir>/<object>/<name>.keras`` with its card.
    taken
        Names of the models installed already (bundled and user); the new name must be new.
    name, object_key
        Name to register under (default: the package's model name) and the object it segments
        (default: what its EMViewer card says; required for other packages).

    Returns
    -------
    Path
        The registered ``.keras`` file.

    Raises
    ------
    InputError
        Naming the package: not a zip, paths outside it, too large, missing or invalid rdf.yaml,
        no keras_v3 weights, tensor axes EMViewer cannot run, weights that do not reproduce the
        test output, or the name is taken. Nothing is registered then.
    """
    from .bioimageio import require_exchange_packages
    from .registry import read_card

    path = Path(package)
    if not path.is_file():
        raise InputError(path, "no such package file")
    if path.stat().st_size > MAX_PACKAGE_BYTES:
        raise _refuse(path, f"the package is larger than {MAX_PACKAGE_BYTES >> 30} GiB")
    require_exchange_packages("import-model")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _refuse(path, f"not a zip file ({exc})") from None
    with archive, tempfile.TemporaryDirectory(prefix="emviewer-import-") as temp:
        members = _safe_members(path, archive)
        document = _read_rdf(path, archive, members)
        _validate_spec(path)  # the structure first, so the checks below read well-formed fields
        needed = check_compatible(path, document, members)
        card = _card_from(path, document, needed["context"], object_key)
        name = name or str(card.get("name") or document.get("name") or path.stem)
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise _refuse(path, f"{name!r} is not a usable model name: give --name with letters, digits, - and _")
        if name in taken:
            raise _refuse(path, f"a model named {name!r} is installed already: give another with --name")
        staged = {"keras": Path(temp) / "weights.keras", "test_input": Path(temp) / "in.npy"}
        staged["test_output"] = Path(temp) / "out.npy"
        for role, target in staged.items():
            _extract(archive, needed[role], target, members[needed[role]].file_size)
        _check_runs(path, staged["keras"], staged["test_input"], staged["test_output"], card)
        return _register(staged["keras"], card, models_dir / card["object"], name, read_card)


def _register(keras_file: Path, card: dict, folder: Path, name: str, read_card: Any) -> Path:
    """Copy the weights and then the card into ``folder`` (the card makes the model visible);
    the card is first validated by the registry's own reader."""
    import json

    from .loading import sha256_of

    staged = keras_file.with_name(f"{name}.keras")
    keras_file.replace(staged)
    staged.with_suffix(".json").write_text(json.dumps({**card, "name": name, "sha256": sha256_of(staged)}, indent=2))
    read_card(staged)
    target = folder / staged.name
    if target.exists() or target.with_suffix(".json").exists():
        raise InputError(target, "a model file of that name exists already")
    folder.mkdir(parents=True, exist_ok=True)
    parts = [folder / f".{name}.keras.part", folder / f".{name}.json.part"]  # invisible to the registry
    moved = False
    try:
        shutil.copyfile(staged, parts[0])
        shutil.copyfile(staged.with_suffix(".json"), parts[1])
        parts[0].replace(target)
        moved = True
        parts[1].replace(target.with_suffix(".json"))
    except BaseException:
        if moved and not target.with_suffix(".json").exists():
            target.unlink(missing_ok=True)
        raise
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return target
