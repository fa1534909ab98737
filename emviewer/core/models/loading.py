"""Loading a trained model with its card, and running it on batches of tiles."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..progress import Progress
from .card import ModelCard
from .registry import read_card


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class LoadedModel:
    """A model ready to predict, with its card, which says how to use it: the Keras model, or
    a copy converted for a faster runtime (then ``model`` is None; see :mod:`.runtime`)."""

    name: str
    model: Any  # keras.Model; typed loosely so importing this module stays free of Keras
    card: ModelCard
    runner: Any = None  # what predicts when not the Keras model: a converted copy (see .runtime)
    runtime: str = "keras"
    precision: str = "float32"  # the Keras dtype policy it computes in (see run_precision)
    _any_size: bool = field(default=False, init=False, repr=False)  # warm_up has run

    @property
    def context(self) -> int:
        """Input slices (1, 3 or 5): the slice and its neighbours."""
        return self.card.context

    @property
    def threshold(self) -> float:
        """Decision threshold of the model's own probabilities (one pass, no test-time variants)."""
        return self.card.threshold

    @property
    def reference(self) -> tuple[float, float]:
        """Where the tissue's 1st / 99th intensity percentiles lay in the model's [0, 1] input
        during training (the card's ``input_reference``; see :mod:`..intensity`)."""
        return self.card.reference

    def threshold_for(self, tta: int) -> float:
        """The card's threshold for this many test-time variants (see :meth:`ModelCard.threshold_for`)."""
        return self.card.threshold_for(tta)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``(N, Y, X, context)`` float32 in [0, 1] -> ``(N, Y, X, 1)`` float32 probabilities.

        A Keras model is warmed up (:meth:`warm_up`) before its first batch."""
        if self.runner is None and not self._any_size:
            self.warm_up()
        out = (self.runner or self.model).predict_on_batch(np.ascontiguousarray(batch, np.float32))
        return np.asarray(out, np.float32)

    def warm_up(self) -> None:
        """Run a Keras model on two tiny inputs of different sizes (nothing for a converted copy).

        TensorFlow builds a graph on a model's first calls, holding Python's lock for a few
        hundred milliseconds (other threads, e.g. a GUI, freeze meanwhile); after two sizes it
        builds one for any size, so the first real tile is not slow. Two sizes that differ in
        both sides also matter for correctness: had the second call changed one side only,
        TensorFlow's graph for "that side any size" fails in DeepEM3D's dilated convolutions
        (TF 2.21: 256² then 192 x 256 raises InvalidArgumentError in SpaceToBatchND).
        """
        self._any_size = True
        if self.runner is not None:  # a converted model builds nothing per size in advance
            return
        for side in (32, 64):
            self.model.predict_on_batch(np.zeros((1, side, side, self.context), np.float32))


def run_precision(card: ModelCard, accelerator: bool | None = None, runtime: str = "keras") -> tuple[str, str]:
    """The Keras dtype policy a model predicts in on this machine, and why (one line).

    A model saved in ``mixed_bfloat16`` keeps bf16 only where bf16 is computed in hardware (a
    CPU with AMX or AVX512-BF16, see :func:`~..backend.cpu_has_fast_bfloat16`) and its card's
    figures were measured in bf16; everywhere else it runs in float32, which is as accurate and,
    on a CPU without bf16 instructions, faster (the default mito model 1.79x on a 2-core AMD EPYC,
    ``benchmarks/precision.py``). On a GPU float32 is used, as for training
    (:func:`~..train.choose_precision`). ``accelerator``: whether Keras computes on a GPU
    (``None``: ask the backend, which imports it). ``runtime`` (see :mod:`.runtime`): OpenVINO
    computes on the CPU; ONNX Runtime in float32 only.
    """
    from ..backend import bf16_isa_cap, cpu_has_fast_bfloat16, device_summary

    trained = card.precision or "float32"
    if trained != "mixed_bfloat16":
        return "float32", f"trained in {trained}"
    if runtime == "onnx":
        return "float32", "trained in bfloat16; ONNX Runtime computes convolutions in float32"
    if runtime != "keras":
        accelerator = False
    elif accelerator is None:
        accelerator = device_summary()["accelerator"]
    if accelerator:
        return "float32", "trained in bfloat16; float32 on a GPU"
    if cap := bf16_isa_cap():
        return "float32", f"trained in bfloat16; ONEDNN_MAX_CPU_ISA={cap} leaves bfloat16 to software"
    if not cpu_has_fast_bfloat16():
        return "float32", "trained in bfloat16; this CPU computes bfloat16 in software (no AMX or AVX512-BF16)"
    return "mixed_bfloat16", "trained in bfloat16, and this CPU computes it in hardware"


def in_precision(model, policy: str):
    """``model`` with every layer computing in the dtype policy ``policy`` (e.g. ``"float32"``):
    the model itself when it already does, else a copy with the same weights. The dtype policy
    saved in a ``.keras`` file is the training machine's, not this one's."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if all(layer.dtype_policy.name == policy for layer in layers):
        return model

    def recast(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer.__class__.from_config(layer.get_config())
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy})

    copy = keras.models.clone_model(model, clone_function=recast)
    copy.set_weights(model.get_weights())  # mixed policies keep float32 variables: nothing is rounded
    return copy


def load_model(
    path: str | Path,
    precision: str | None = None,
    runtime: str = "keras",
    progress: Progress | None = None,
    cache: Path | None = None,
) -> LoadedModel:
    """Load ``model.keras`` and its card ``model.json``, to predict in ``precision`` (a Keras
    dtype policy; ``None``: :func:`run_precision` for this machine) on ``runtime``.

    ``runtime``: ``"keras"``, or ``"openvino"``/``"onnx"`` to predict with a converted copy
    (:mod:`.runtime`), made on first use into ``cache`` (default
    :func:`~emviewer.config.user_cache_dir`, sub-folder ``runtimes``; ``progress`` hears the
    conversion); then ``model`` is None and Keras is not imported.

    Raises :class:`~emviewer.core.errors.InputError` for a missing file, a missing or invalid
    card, a file whose SHA-256 disagrees with its card, or a file Keras cannot load or convert.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such model file")
    card = read_card(path)
    digest = sha256_of(path)
    if card.sha256 and digest != card.sha256:
        raise InputError(path, "model file does not match the SHA-256 in its card (damaged or replaced)")
    policy = precision or run_precision(card, runtime=runtime)[0]
    if runtime == "keras":
        return LoadedModel(path.stem, _keras_model(path, policy), card, precision=policy)
    from . import runtime as runtimes

    if runtime == "onnx":
        policy = "float32"  # whatever was asked: ONNX Runtime has no bfloat16 convolutions
    if cache is None:
        from ...config import user_cache_dir

        cache = user_cache_dir() / "runtimes"
    runner = runtimes.open_converted(
        path, digest, runtime, policy, lambda: _keras_model(path, "float32"), cache, progress
    )
    return LoadedModel(path.stem, None, card, runner, runtime, policy)


def _keras_model(path: Path, policy: str):
    """The Keras model in ``path``, computing in the dtype policy ``policy``."""
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds for a damaged archive
        raise InputError(path, f"cannot load the model ({exc})") from None
    return in_precision(model, policy)
