"""Writing a model as a bioimage.io model package (format 0.5): ``emviewer export-model``.

The package is a zip with ``rdf.yaml`` (the description that ``bioimageio.spec`` validates), the
weights as Keras v3 and as ONNX, test input and output tensors (``.npy``), sample tensors (TIFF),
a cover image (raw | overlay of the test input) and a README.

How a model maps onto bioimage.io's terms:

- input ``image``: axes ``batch, y, x, channel`` (channels last; the channels are the 1, 3 or 5
  neighbouring slices of the model's context), raw grey values; the preprocessing that stands for
  EMViewer's normalisation is ``ensure_dtype`` float32, ``scale_range`` (1st / 99th percentile of
  the sample over slices and space -> 0 / 1), ``scale_linear`` (0 / 1 -> the card's
  ``input_reference`` levels) and ``clip`` to [0, 1]. EMViewer itself takes the percentiles of
  the *tissue* of the whole stack (leaving out NaN, constant borders and saturated runs; see
  :mod:`emviewer.core.intensity`); on a crop of plain tissue, as the test tensor is, both agree.
- output ``probability``: axes ``batch, y, x, channel`` (one channel) float32 in [0, 1]; the
  decision threshold of the card is in ``config.emviewer`` and the README (no ``binarize`` step,
  since the output is the probability).
- weights: a model that computes in float32 is packed as its ``.keras`` file unchanged. One
  trained in mixed precision (``precision: mixed_bfloat16`` in its card) is packed as the same
  weights computing in float32, since ONNX Runtime has no bfloat16 convolutions and the two
  formats must give the same test output; how far that is from the installed model is measured
  and written in the README and ``config.emviewer``.

The optional packages (``pip install 'emviewer[exchange]'``) are imported only when a package is
written or validated; Keras only when a model is loaded.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import __version__
from ..errors import InputError
from .bioimageio_convert import EPS, PERCENTILES
from .exchange_docs import citations_for, readme_text

#: Optional packages of the ``exchange`` extra (import names).
EXCHANGE_MODULES = ("bioimageio.spec", "onnx", "onnxruntime", "tf2onnx", "yaml")
INPUT_ID, OUTPUT_ID = "image", "probability"
#: Largest ``|ONNX - Keras|`` accepted from the conversion (both compute in float32).
ONNX_TOLERANCE = 1e-3


class MissingExchangePackagesError(InputError):
    """The optional packages for model exchange are not installed."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_package` wrote and measured.

    Attributes
    ----------
    path, size_bytes
        The package and its size in bytes.
    onnx_max_abs_diff
        Largest ``|ONNX - Keras|`` of the packed weights on the test input (probability, 0..1).
    installed_max_abs_diff, installed_mask_changes
        Largest difference of the packed weights' output from the installed model's, and the
        fraction of pixels whose mask changes (both 0 for a float32 model).
    validation, warnings
        ``bioimageio.spec``'s status (``"valid-format"``) and its warnings.
    """

    path: Path
    size_bytes: int
    onnx_max_abs_diff: float
    installed_max_abs_diff: float
    installed_mask_changes: float
    validation: str
    warnings: tuple[str, ...] = ()


def card_dict(card: Any) -> dict:
    """A model card as a plain dict, whether the registry gives a dict or a pydantic ``ModelCard``."""
    if hasattr(card, "model_dump"):
        return card.model_dump(mode="json", exclude_none=True)
    return dict(card or {})


def require_exchange_packages(command: str = "export-model") -> None:
    """Raise :class:`MissingExchangePackagesError` (one line) when an exchange package is missing."""
    import importlib.util

    missing = []
    for name in EXCHANGE_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package ("bioimageio") is missing
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise MissingExchangePackagesError(
            None, f"{command} needs {', '.join(missing)}: install them with pip install 'emviewer[exchange]'"
        )


# ---------------------------------------------------------------------------- rdf


def _axes(context: int, input_side: bool) -> list[dict]:
    space: list[dict[str, Any]]
    if input_side:
        space = [{"type": "space", "id": a, "size": {"min": 16, "step": 16}} for a in ("y", "x")]
        names = ["slice"] if context == 1 else [f"slice_z{d:+d}" for d in range(-(context // 2), context // 2 + 1)]
    else:
        space = [{"type": "space", "id": a, "size": {"tensor_id": INPUT_ID, "axis_id": a}} for a in ("y", "x")]
        names = ["probability"]
    return [{"type": "batch"}, *space, {"type": "channel", "channel_names": names}]


def _preprocessing(reference: tuple[float, float]) -> list[dict]:
    ref_low, ref_high = reference
    return [
        {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
        {
            "id": "scale_range",
            "kwargs": {
                "axes": ["y", "x", "channel"],
                "min_percentile": PERCENTILES[0],
                "max_percentile": PERCENTILES[1],
                "eps": EPS,
            },
        },
        {"id": "scale_linear", "kwargs": {"gain": round(ref_high - ref_low, 6), "offset": round(ref_low, 6)}},
        {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}},
    ]


def format_version() -> str:
    """The newest model format version the installed ``bioimageio.spec`` writes (0.5.x)."""
    from bioimageio.spec.model.v0_5 import ModelDescr

    return str(ModelDescr.implemented_format_version)


def _keras_comment(card: dict, drift: dict) -> str:
    if "installed_precision" in card and card["installed_precision"] != card.get("precision"):
        return (
            f"the EMViewer model's weights computing in float32 (installed in {card['installed_precision']}: "
            f"max difference {drift['max_abs_diff']:.2g}, {100 * drift['mask_changes']:.2f} % of mask pixels change)"
        )
    return "the EMViewer model file as installed"


def _software(card: dict) -> dict:
    software = card.get("software") or {}
    return {
        "keras": str(software.get("keras", "3")),
        "tensorflow": str(software.get("tensorflow", "2.16")),
    }


def rdf_document(card: dict, files: dict[str, str], opset: int, drift: dict, raw_dtype: str) -> dict:
    """The ``rdf.yaml`` content; ``files`` maps roles (keras, onnx, test_input, test_output,
    cover, readme) to file names inside the package."""
    name, context = card["name"], int(card.get("context", 1))
    reference = tuple(card.get("input_reference") or (0.098, 0.878))
    figures = card.get("validation") or {}
    software = _software(card)
    summary = ", ".join(f"{k} {figures[k]:.3f}" for k in ("f1", "iou", "precision", "recall") if k in figures)
    return {
        "type": "model",
        "format_version": format_version(),
        "name": name,
        "description": (
            f"EMViewer {card.get('architecture', 'model')} segmenting {card.get('object')} in electron microscopy "
            f"({context} slice{'s' if context > 1 else ''} of context); validation {summary or 'not measured'}."
        ),
        "version": "1.0.0",
        "authors": [{"name": "EMViewer developers"}],
        "packaged_by": [{"name": f"emviewer {__version__} export-model"}],
        "license": "BSD-3-Clause",
        "cite": citations_for(card),
        "tags": ["electron-microscopy", "semantic-segmentation", str(card.get("object")), "2d", "keras", "onnx"],
        "covers": [{"source": files["cover"]}],
        "documentation": {"source": files["readme"]},
        "inputs": [
            {
                "id": INPUT_ID,
                "description": "raw grey values; preprocessing maps the 1st/99th percentiles onto input_reference",
                "axes": _axes(context, True),
                "test_tensor": {"source": files["test_input"]},
                "sample_tensor": {"source": files["sample_input"]},
                "data": {"type": raw_dtype},
                "preprocessing": _preprocessing(reference),
            }
        ],
        "outputs": [
            {
                "id": OUTPUT_ID,
                "description": f"probability of {card.get('object')}; mask = probability >= {card.get('threshold')}",
                "axes": _axes(context, False),
                "test_tensor": {"source": files["test_output"]},
                "sample_tensor": {"source": files["sample_output"]},
                "data": {"type": "float32", "range": [0.0, 1.0]},
            }
        ],
        "weights": {
            "keras_v3": {
                "source": files["keras"],
                "keras_version": software["keras"],
                "backend": ["tensorflow", software["tensorflow"]],
                "comment": _keras_comment(card, drift),
            },
            "onnx": {
                "source": files["onnx"],
                "opset_version": opset,
                "parent": "keras_v3",
                "comment": f"converted with tf2onnx; max |ONNX - Keras| {drift['onnx_max_abs_diff']:.2g}",
            },
        },
        "config": {
            "emviewer": {
                "card": card,
                "threshold": card.get("threshold"),
                "validation": figures,
                "packed_vs_installed": drift,
            },
        },
    }


# ---------------------------------------------------------------------------- package


def validate_package(path: Path) -> tuple[str, tuple[str, ...]]:
    """Validate a package with ``bioimageio.spec`` (files read and hashed, nothing downloaded).

    Returns
    -------
    (status, warnings)
        ``status`` as bioimageio.spec says (``"valid-format"`` when the format is valid).

    Raises
    ------
    InputError
        The package does not validate (the first errors are named).
    """
    from bioimageio.spec import load_description_and_validate_format_only

    summary = load_description_and_validate_format_only(path, perform_io_checks=True)
    if summary.status not in ("valid-format", "passed"):
        errors = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for d in summary.details for e in d.errors)
        raise InputError(path, f"bioimageio.spec refuses the package ({errors[:400]})")
    warnings = tuple(_located(w.loc, w.msg) for d in summary.details for w in d.warnings)
    return str(summary.status), warnings


def _zip_folder(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)


def _packed_model(loaded: Any, card: dict, folder: Path, file_name: str, model_path: Path) -> tuple[Any, dict]:
    """Write the Keras weights into the package folder; returns the model they hold and its card
    (precision and SHA-256 of the packed file; the installed file's are kept beside them)."""
    from .loading import in_precision, sha256_of

    target = folder / file_name
    if str(card.get("precision", "")).startswith("mixed"):
        model = in_precision(loaded.model, "float32")  # ONNX Runtime has no bfloat16 convolutions
        model.save(target)
        packed = {**card, "precision": "float32", "installed_precision": card["precision"]}
    else:
        shutil.copyfile(model_path, target)
        model, packed = loaded.model, dict(card)
    packed.update(name=target.stem, sha256=sha256_of(target), installed_sha256=card.get("sha256"))
    return model, packed


def _file_names(name: str) -> dict[str, str]:
    return {
        "keras": f"{name}.keras",
        "onnx": f"{name}.onnx",
        "test_input": "test_input.npy",
        "test_output": "test_output.npy",
        "sample_input": "sample_input.tif",
        "sample_output": "sample_output.tif",
        "cover": "cover.png",
        "readme": "README.md",
    }


def export_package(model_path: Path, card: Any, volume: Any, output: Path) -> ExportResult:
    """Write a model as a bioimage.io package and validate it.

    Parameters
    ----------
    model_path
        The installed ``.keras`` file; its card is ``card`` (dict or ``ModelCard``).
    volume
        A ``(Z, Y, X)`` stack (:class:`~emviewer.core.volume.Volume`) to cut the test input from:
        at least ``tile`` x ``tile`` pixels of tissue (tile from the card).
    output
        The ``.zip`` to write; written atomically (nothing is left there on failure).

    Raises
    ------
    MissingExchangePackagesError
        An optional package of the ``exchange`` extra is missing.
    InputError
        The model or the test image cannot be used, or the package does not validate.
    """
    import tifffile

    from ..io.atomic import atomic_path
    from .bioimageio_convert import cover_image, mask_changes, run_onnx, test_tensors, write_onnx
    from .loading import load_model

    require_exchange_packages()
    card = card_dict(card)
    loaded = load_model(model_path, precision=card.get("precision") or "float32")  # as saved: the drift's reference
    raw, batch, installed = test_tensors(loaded, volume, int(card.get("tile") or 256))
    with tempfile.TemporaryDirectory(prefix="emviewer-export-") as temp:
        folder = Path(temp) / "package"
        folder.mkdir()
        files = _file_names(card.get("name") or model_path.stem)
        model, card = _packed_model(loaded, card, folder, files["keras"], model_path)
        expected = np.asarray(model.predict_on_batch(batch), np.float32)
        opset = write_onnx(model, folder / files["onnx"], batch)
        onnx_diff = float(np.abs(run_onnx(folder / files["onnx"], batch) - expected).max())
        if onnx_diff > ONNX_TOLERANCE:
            raise InputError(model_path, f"the ONNX conversion differs from Keras by {onnx_diff:.2g}")
        drift = {
            "max_abs_diff": float(np.abs(expected - installed).max()),
            "mask_changes": mask_changes(expected, installed, loaded.threshold),
            "onnx_max_abs_diff": onnx_diff,
        }
        np.save(folder / files["test_input"], raw)
        np.save(folder / files["test_output"], expected)
        tifffile.imwrite(folder / files["sample_input"], raw[0].squeeze())  # for people: y, x (, slices)
        tifffile.imwrite(folder / files["sample_output"], expected[0, :, :, 0])
        (folder / files["cover"]).write_bytes(cover_image(raw, expected, loaded.threshold, str(card.get("object"))))
        (folder / files["readme"]).write_text(readme_text(card, drift))
        document = rdf_document(card, files, opset, drift, str(raw.dtype))
        (folder / "rdf.yaml").write_text(_yaml(document))
        staged = Path(temp) / "package.zip"
        _zip_folder(folder, staged)
        status, warnings = validate_package(staged)
        with atomic_path(output) as target:
            shutil.copyfile(staged, target)
    size = Path(output).stat().st_size
    return ExportResult(Path(output), size, onnx_diff, drift["max_abs_diff"], drift["mask_changes"], status, warnings)


def _yaml(document: dict) -> str:
    """YAML text of plain data (JSON round trip first, so numpy scalars never reach the file)."""
    import yaml

    return yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False, allow_unicode=True)


def _located(loc: tuple, message: str) -> str:
    """``"weights.onnx: message"``, or the message alone for the package as a whole (empty ``loc``)."""
    where = ".".join(map(str, loc))
    return f"{where}: {message}" if where else message
