"""The ML backend, loaded on first use only, and the devices it can compute on."""

from __future__ import annotations

import os
from pathlib import Path

#: CPU flags (Linux ``/proc/cpuinfo``) of hardware bfloat16 arithmetic: where these are missing,
#: bf16 is emulated: the default mito model predicted 1.79x slower in bf16 than in float32 on a
#: 2-core AMD EPYC with AVX2 only (``benchmarks/precision.py``).
FAST_BF16_FLAGS = ("amx_bf16", "avx512_bf16")

#: oneDNN's instruction-set cap (``ONEDNN_MAX_CPU_ISA``; TensorFlow's and OpenVINO's CPU kernels
#: are oneDNN's). Caps from which bf16 instructions stay in use; a lower cap (e.g. ``AVX2``, to
#: run as on a CPU without AVX-512) leaves bf16 emulated even where the CPU has it.
BF16_ISA_CAPS = (
    "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512",
    "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL",
)  # fmt: skip


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


def bf16_isa_cap() -> str | None:
    """``ONEDNN_MAX_CPU_ISA`` (or its older name ``DNNL_MAX_CPU_ISA``) when it keeps oneDNN from
    bf16 instructions, else None."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return cap if cap and cap not in BF16_ISA_CAPS else None


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AMX or AVX512-BF16; read from Linux's
    ``/proc/cpuinfo``, so False elsewhere) and no instruction-set cap (:func:`bf16_isa_cap`)
    keeps the kernels from it."""
    if bf16_isa_cap():
        return False
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return any(flag in flags for flag in FAST_BF16_FLAGS)
