"""Prediction speed on this CPU: Keras against the converted runtime, fast and accurate mode.

Prints, in one run: the CPU and its vector flags, the measured float32 matrix-multiply rate
(NumPy's BLAS on all cores), the multiply-add work of each bundled model per pixel, then the
five 1024 x 1024 CDeep3M test images predicted with the default mito models in fast mode (one
model, no test-time augmentation) and accurate mode (the accurate ensemble, 16 variants), each
runtime in a fresh process, the runtimes interleaved ``--rounds`` times so a machine that
speeds up or slows down meanwhile touches both alike. Per case: start-up (imports, models
loaded, converted copies read, warmed up), prediction time, Mpx/s of the prediction and end to
end, the matmul rate measured just before and after the prediction (this machine's speed
changes by the minute) and the share of it the model work reached, over the whole prediction and
"steady" after the first slice (without the run's one-off costs: the stack's intensities measured,
the tile shape compiled, the first inference's memory), and peak resident memory.

    python benchmarks/predict_speed.py [--runtimes keras,openvino] [--rounds 3] [--modes fast,accurate]

As on a CPU without AVX-512 (AVX2 and FMA only), on one that has it: cap the instruction sets of
oneDNN (TensorFlow's and OpenVINO's convolutions), OpenVINO's own kernels and OpenBLAS (the
matmul rate), which also keeps bf16-trained models in float32 (:func:`emviewer.core.backend.bf16_isa_cap`):

    ONEDNN_MAX_CPU_ISA=AVX2 OV_CPU_MAX_ISA=AVX2 OPENBLAS_CORETYPE=Haswell python benchmarks/predict_speed.py

Converted models come from the user cache (``$EMVIEWER_CACHE_DIR``); the first run converts
them, before any timing. Numbers depend on the machine and on what else runs: compare the
columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdeep3m_mito" / "testset"
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "OV_CPU_MAX_ISA", "OPENBLAS_CORETYPE")


def cpu_line() -> str:
    """The CPU's name, core count and the vector flags that decide convolution speed."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    present = [f for f in FLAGS if f in flags]
    caps = [f"{var}={os.environ[var]}" for var in ISA_CAPS if os.environ.get(var)]
    line = f"{name}, {os.cpu_count()} cores, flags: {' '.join(present) or 'none of ' + ' '.join(FLAGS)}"
    return line + (f"; capped: {' '.join(caps)}" if caps else "")


def matmul_gflops(side: int = 4096, repeats: int = 5) -> float:
    """Best float32 matrix-multiply rate of NumPy's BLAS on all cores, GFLOP/s (2 side³ per product)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((side, side), dtype=np.float32), rng.random((side, side), dtype=np.float32)
    a @ b  # the BLAS threads start
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * side**3 / best / 1e9


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def flops_per_pixel(keras_file: Path) -> float:
    """Multiply-adds (x2) of the model's convolutions per input pixel, counted from its layers
    on a 256 x 256 input (activations and normalisation, a few percent, are left out)."""
    import keras

    from emviewer.core.models.loading import in_precision

    # Counted in float32: under an instruction-set cap below bf16, oneDNN has no bf16 convolution.
    model = in_precision(keras.saving.load_model(keras_file, compile=False), "float32")
    side, layers = 256, model.layers[1:]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    outputs = probe([np.zeros((1, side, side, model.inputs[0].shape[-1]), np.float32)])
    total = 0.0
    for layer, out in zip(layers, outputs, strict=True):
        if isinstance(layer, keras.layers.Conv2DTranspose):  # each input pixel feeds a kernel of outputs
            kh, kw, cout, cin = layer.kernel.shape
            pixels = out.shape[1] * out.shape[2] / (layer.strides[0] * layer.strides[1])
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            pixels = out.shape[1] * out.shape[2]
        else:
            continue
        total += 2.0 * pixels * kh * kw * cin * cout
    return total / side**2


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's ``VmHWM`` starts afresh at exec, while
    ``ru_maxrss`` keeps the parent's peak (the parent here holds every model for counting)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(models: list[str], tta: int, runtime: str) -> dict:
    """One measurement in this process: start-up (imports, load, warm-up), then every test image."""
    start = time.perf_counter()
    from emviewer.core.io import open_volume
    from emviewer.core.models.loading import load_model
    from emviewer.core.predict import LocalPredictor

    loaded = [load_model(m, runtime=runtime) for m in models]
    for model in loaded:
        model.warm_up()
    predictor = LocalPredictor({"mito": loaded}, tta=tta)
    volume = open_volume(str(DATA))
    started = time.perf_counter() - start
    before = matmul_gflops(repeats=3)
    begin = time.perf_counter()
    finished = [time.perf_counter() for _ in predictor.iter_predict(volume)]
    seconds = time.perf_counter() - begin
    return {
        "matmul_gflops": (before + matmul_gflops(repeats=3)) / 2,  # this machine's speed changes by the minute
        "startup_s": started,
        "predict_s": seconds,
        "pixels": int(np.prod(volume.shape)),
        # after the first slice: without the run's one-off costs (stack measured, tile shape compiled)
        "steady_s": finished[-1] - finished[0],
        "steady_pixels": int(np.prod(volume.shape[1:])) * (len(volume) - 1),
        "passes": predictor._passes_per_tile(),
        "precision": sorted({m.precision for m in loaded}),
        "peak_mb": peak_rss_mb(),
    }


def prepare_models(paths: list[str], runtimes: list[str]) -> dict[str, float]:
    """FLOPs per pixel of each model (:func:`flops_per_pixel`), each converted for every runtime
    on the way (the first run converts, outside every timing)."""
    from emviewer.core.models.loading import load_model

    for runtime in runtimes:
        for path in paths:
            load_model(path, runtime=runtime)
    return {path: flops_per_pixel(Path(path)) for path in paths}


def in_fresh_process(call: str) -> Any:
    """The JSON result of ``call`` (an expression on this module, ``p``) run in a new Python.

    Everything that loads models runs so, and this process stays small: on the 2-core AMD EPYC
    virtual machine these figures come from, a parent holding TensorFlow's models made each
    child's first slice 2.4-2.9 s slower (its first memory pages slower to fault in), which had
    been counted as the runtimes' one-off cost."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import predict_speed as p; "
        f"print('RESULT' + json.dumps({call}))"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(f"{call} failed:\n{out.stderr[-3000:]}")


def measure(models: list[str], tta: int, runtime: str) -> dict:
    """:func:`run_case` in a fresh process."""
    return in_fresh_process(f"p.run_case({models!r}, {tta}, {runtime!r})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default="keras,openvino", help="comma list: keras, openvino, onnx")
    parser.add_argument("--modes", default="fast,accurate", help="comma list: fast, accurate")
    parser.add_argument("--rounds", type=int, default=3, help="times each runtime is measured, interleaved")
    parser.add_argument("--json", help="also write every measurement here")
    args = parser.parse_args()

    from emviewer import config
    from emviewer.core.models.registry import models_for

    entries = config.installed_models()
    runtimes = args.runtimes.split(",")
    print(f"CPU: {cpu_line()}")
    rate = matmul_gflops()
    print(f"float32 matmul (NumPy BLAS, 4096², all cores): {rate:.0f} GFLOP/s")
    bundled = [str(e.path) for e in entries if e.bundled]
    flops = {Path(k): v for k, v in in_fresh_process(f"p.prepare_models({bundled!r}, {runtimes!r})").items()}
    for path, value in flops.items():
        print(f"  {path.stem:<22} {value / 1e3:7.1f} GFLOP per Mpx")
    print(f"test set: {DATA} (5 x 1024 x 1024)")
    print(
        f"{'mode':<9}{'runtime':<10}{'round':>5}{'start s':>9}{'predict s':>10}{'Mpx/s':>8}{'end to end':>11}"
        f"{'matmul':>8}{'share':>7}{'steady':>8}{'peak MB':>9}  precision"
    )
    results = []
    for mode in args.modes.split(","):
        files = models_for("mito", mode, entries)
        tta = 16 if mode == "accurate" else 1
        work = sum(flops[f] for f in files) * tta  # per pixel, every model and variant
        for round_ in range(1, args.rounds + 1):
            for runtime in runtimes:
                r = measure([str(f) for f in files], tta, runtime)
                mpx = r["pixels"] / r["predict_s"] / 1e6
                end_to_end = r["pixels"] / (r["predict_s"] + r["startup_s"]) / 1e6
                share = work * mpx * 1e6 / (r["matmul_gflops"] * 1e9)
                steady_rate = r["steady_pixels"] / r["steady_s"] if r["steady_s"] else float("nan")  # one slice: none
                steady = work * steady_rate / (r["matmul_gflops"] * 1e9)
                results.append({"mode": mode, "runtime": runtime, "round": round_, **r, "mpx_per_s": mpx})
                print(
                    f"{mode:<9}{runtime:<10}{round_:>5}{r['startup_s']:>9.1f}{r['predict_s']:>10.1f}{mpx:>8.3f}"
                    f"{end_to_end:>11.3f}{r['matmul_gflops']:>8.0f}{share:>7.0%}{steady:>8.0%}{r['peak_mb']:>9.0f}"
                    f"  {','.join(r['precision'])}",
                    flush=True,
                )
        for runtime in runtimes[1:]:
            mine = [x["mpx_per_s"] for x in results if x["mode"] == mode and x["runtime"] == runtime]
            base = [x["mpx_per_s"] for x in results if x["mode"] == mode and x["runtime"] == runtimes[0]]
            print(f"{mode}: {runtime} / {runtimes[0]} prediction speed, median of rounds: "
                  f"{np.median(mine) / np.median(base):.2f}x")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_line(), "matmul_gflops": rate, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
