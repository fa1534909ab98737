"""Inference runtimes: a trained Keras model run by OpenVINO or ONNX Runtime for prediction.

Training and fine-tuning stay on Keras. For prediction on a CPU, the same weights converted
to OpenVINO's format ran the default mito model (5-slice MultiResUNet, one 1024² tile) in 1.0 s
against Keras's 1.5-1.7 s, with probabilities equal to 2e-7, and ONNX Runtime in 1.6 s (AMD
EPYC Zen 4, 2 cores; ``benchmarks/predict_speed.py`` measures whole runs: 1.3-1.5x the
prediction speed, start-up 1 s instead of 14). So ``auto`` picks OpenVINO on a computer
without an NVIDIA GPU, and Keras where one is.

A converted model is kept in the user's cache folder (:func:`~emviewer.config.user_cache_dir`),
one folder per model file named by the SHA-256 of its weights, the runtime and its version:
converted once (about 8 s, with a progress line), then read in well under a second without
importing TensorFlow. A folder is written under a temporary name and renamed when complete,
so a crash or a second process never leaves a half-written model to be read.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..progress import Progress, report

#: Compiled input shapes an OpenVINO model keeps: the tiles of two slice sizes (e.g. Predict
#: and Predict region in view), or a batch of tiles and a slice's last, shorter batch.
SHAPES_KEPT = 2
#: ``--runtime`` choices: ``auto`` picks per machine (:func:`choose_runtime`).
RUNTIMES = ("auto", "keras", "openvino", "onnx")
#: The runtime the app and the server use when nothing else is said (``auto`` when unset).
RUNTIME_ENV = "EMVIEWER_RUNTIME"
#: Python package of each converted-model runtime, and how to install it.
_PACKAGES = {
    "openvino": ("openvino", "pip install openvino"),
    "onnx": ("onnxruntime", "pip install 'emviewer[exchange]'"),
}


def nvidia_gpu_present() -> bool:
    """Whether the NVIDIA driver lists a GPU (Linux ``/proc/driver/nvidia/gpus``), asked
    without importing TensorFlow; False elsewhere."""
    folder = Path("/proc/driver/nvidia/gpus")
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


def installed(runtime: str) -> bool:
    """Whether ``runtime``'s package can be imported (``keras`` always can)."""
    return runtime == "keras" or importlib.util.find_spec(_PACKAGES[runtime][0]) is not None


def choose_runtime(requested: str | None = None) -> tuple[str, str]:
    """The runtime to predict with, and why (one line).

    ``requested``: one of :data:`RUNTIMES`; ``None`` reads ``$EMVIEWER_RUNTIME`` (default
    ``auto``). ``auto`` is Keras when an NVIDIA GPU is present (Keras computes there), else
    OpenVINO when installed (it is a dependency), else Keras.

    Raises :class:`~emviewer.core.errors.InputError` for an unknown runtime, or one whose
    package is not installed.
    """
    requested = (requested or os.environ.get(RUNTIME_ENV) or "auto").strip().lower()
    if requested not in RUNTIMES:
        raise InputError(None, f"unknown runtime {requested!r}; choose one of {', '.join(RUNTIMES)}")
    if requested != "auto":
        if not installed(requested):
            raise InputError(None, f"runtime {requested} is not installed ({_PACKAGES[requested][1]})")
        return requested, "chosen"
    if nvidia_gpu_present():
        return "keras", "an NVIDIA GPU is present: Keras computes on it"
    if not installed("openvino"):
        return "keras", "no GPU, and OpenVINO is not installed"
    return "openvino", "no GPU: OpenVINO runs the models faster than Keras on a CPU"


def _threads() -> int | None:
    """Threads per model call when the process was given a share of the cores (a dask worker
    started by :func:`~emviewer.core.distributed.connect` sets ``OMP_NUM_THREADS``)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


class OpenVinoModel:
    """An OpenVINO model compiled for the CPU; ``predict_on_batch`` as a Keras model has.

    ``precision``: ``"float32"`` or ``"mixed_bfloat16"`` (a Keras dtype policy, see
    :func:`~.loading.run_precision`). OpenVINO would compute in bf16 by itself on CPUs with
    AMX; the hint keeps float32 unless the model's own precision decision allows bf16.

    The model is compiled for each input shape it gets (the last :data:`SHAPES_KEPT` kept):
    with its shapes fixed, OpenVINO plans the layers' memory once. Measured on one 1024² tile
    of the default mito model (AMD EPYC Zen 4, 2 cores): 0.38-0.42 GB of working memory instead
    of 0.84 GB with shapes left open, 4-5 % less time, and 0.2-0.3 s to compile a new shape.
    Raises at construction for a file OpenVINO cannot read (a cut ``model.xml`` or ``model.bin``);
    a file that reads but does not compile fails at its first batch.
    """

    def __init__(self, xml: Path, precision: str) -> None:
        import openvino

        self._config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "mixed_bfloat16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",  # one tile at a time, all cores on it
        }
        if (threads := _threads()) is not None:  # one of several processes sharing the cores
            self._config["INFERENCE_NUM_THREADS"] = threads
            # OpenVINO pins its threads to cores, each process to the same first ones: two
            # single-thread dask workers then shared one core (2 workers 0.95x of 1).
            self._config["ENABLE_CPU_PINNING"] = False
        self._core = openvino.Core()
        # A cut model.xml or model.bin fails here (each shape compiles at its first tile).
        self._model = self._core.read_model(xml)
        self._requests: OrderedDict[tuple[int, ...], Any] = OrderedDict()  # input shape -> infer request
        self._lock = threading.Lock()  # callers from several threads take turns

    def _request(self, shape: tuple[int, ...]) -> Any:
        request = self._requests.get(shape)
        if request is None:
            model = self._model.clone()
            model.reshape(list(shape))
            request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
            self._requests[shape] = request
            while len(self._requests) > SHAPES_KEPT:
                self._requests.popitem(last=False)
        self._requests.move_to_end(shape)
        return request

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        with self._lock:
            request = self._request(batch.shape)
            request.infer([batch])
            return np.array(request.get_output_tensor(0).data, np.float32)  # a copy: the request reuses its memory


class OnnxModel:
    """An ONNX model run by ONNX Runtime on the CPU (float32); ``predict_on_batch`` as a Keras model has."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if (threads := _threads()) is not None:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})[0]


def _version(runtime: str) -> str:
    return metadata.version(_PACKAGES[runtime][0])


def runtime_label(runtime: str) -> str:
    """E.g. ``"OpenVINO 2026.4.1"``, for the app's status bar (``"openvino"`` or ``"onnx"``)."""
    return f"{'OpenVINO' if runtime == 'openvino' else 'ONNX Runtime'} {_version(runtime)}"


def converted_folder(cache: Path, sha256: str, runtime: str) -> Path:
    """Where the conversion of the weights with this SHA-256 for ``runtime`` is kept: a new
    runtime version converts again (its format or its converter may have changed)."""
    return cache / f"{sha256}-{runtime}-{_version(runtime)}"


def _model_file(folder: Path, runtime: str) -> Path:
    return folder / ("model.xml" if runtime == "openvino" else "model.onnx")


def _convert(keras_model: Any, folder: Path, runtime: str) -> None:
    """Write ``keras_model`` (float32, built) in ``runtime``'s format into the new folder ``folder``."""
    import io
    import warnings

    target = _model_file(folder, runtime)
    context = keras_model.inputs[0].shape[-1]
    keras_model.predict_on_batch(np.zeros((1, 32, 32, context), np.float32))  # the ONNX export wants a called model
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # converters print their progress
        warnings.simplefilter("ignore")
        keras_model.export(str(target), format=runtime, verbose=False)


def open_converted(
    keras_file: Path,
    sha256: str,
    runtime: str,
    precision: str,
    load_keras: Callable[[], Any],
    cache: Path,
    progress: Progress | None = None,
) -> Any:
    """The model of ``keras_file`` (whose weights hash to ``sha256``) ready to run in ``runtime``
    (``"openvino"`` or ``"onnx"``), converted on first use and kept in ``cache``.

    ``load_keras``: returns the Keras model in float32, called only to convert. ``progress``
    hears one step while a conversion runs. A cached model that fails to load (a damaged file)
    is converted again. Raises :class:`~emviewer.core.errors.InputError` when the conversion fails.
    """
    folder = converted_folder(cache, sha256, runtime)
    opened = _open(folder, runtime, precision)
    if opened is not None:
        return opened
    report(progress, 0, 1, f"converting {keras_file.name} for {runtime} (first use only)")
    cache.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".converting-", dir=cache))
    try:
        _convert(load_keras(), building, runtime)
        shutil.rmtree(folder, ignore_errors=True)  # a damaged earlier conversion
        with contextlib.suppress(OSError):  # another process finished the same conversion first: keep theirs
            os.replace(building, folder)
    except InputError:
        raise
    except Exception as exc:  # converters raise many kinds
        raise InputError(keras_file, f"cannot convert the model for {runtime} ({exc})") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    report(progress, 1, 1, f"converted {keras_file.name} for {runtime}")
    opened = _open(folder, runtime, precision)
    if opened is None:
        raise InputError(keras_file, f"the model converted for {runtime} does not load")
    return opened


def _open(folder: Path, runtime: str, precision: str) -> Any | None:
    """The converted model in ``folder``, or None when there is none or it does not load."""
    path = _model_file(folder, runtime)
    if not path.is_file():
        return None
    try:
        return OpenVinoModel(path, precision) if runtime == "openvino" else OnnxModel(path)
    except Exception:  # damaged or half-deleted: converted again by the caller
        return None
