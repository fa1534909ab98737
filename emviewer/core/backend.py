"""The ML backend, loaded on first use only, and the devices it can compute on."""

from __future__ import annotations

import os


def keras_backend() -> str:
    """The Keras backend that will be used, read without importing Keras."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def device_summary() -> dict:
    """``{"backend": name, "devices": [...], "accelerator": bool}``; imports the backend.

    Keras runs on a GPU when its backend sees one, else on the CPU with all cores.
    """
    import keras

    backend = keras.backend.backend()
    gpus: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    elif backend == "jax":
        import jax

        gpus = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    elif backend == "torch":
        import torch

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    cpu = f"CPU ({os.cpu_count()} cores)"
    return {"backend": backend, "keras": keras.__version__, "devices": gpus or [cpu], "accelerator": bool(gpus)}
