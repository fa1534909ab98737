"""Prediction speed and memory: fast vs accurate mode, 1k x 1k vs 8k x 8k slices, backends.

Prints megapixels per second for the fast mode (one model, no test-time augmentation) and
the accurate mode (ensemble + 16x augmentation) on the CDeep3M test images (five
1024 x 1024 slices), then the time and peak memory for one 1k x 1k and one 8k x 8k slice
(time should grow with the pixel count, memory beyond the output should not), each case
in a fresh process so peaks do not mix.

    python benchmarks/predict_speed.py --model models/mito/mito-1fm.keras \
        [--ensemble a.keras,b.keras,c.keras] [--backends tensorflow,jax,onnx]

JAX needs ``pip install jax``; ONNX needs ``pip install onnxruntime onnx tf2onnx``; neither is
a dependency of EMViewer.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdeep3m_mito" / "testset"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class OnnxModel:
    """A Keras model exported to ONNX (float32) and run by ONNX Runtime, for comparison only."""

    def __init__(self, loaded) -> None:
        import keras
        import onnxruntime

        from emviewer.core.models import build_model

        card, path = loaded.card, Path(tempfile.mkdtemp()) / "model.onnx"
        keras.mixed_precision.set_global_policy("float32")  # ONNX Runtime has no bfloat16 convolutions
        model = build_model(card.architecture, card.context, card.width or 16, card.depth or 4)
        model.set_weights(loaded.model.get_weights())
        model.predict_on_batch(np.zeros((1, 64, 64, card.context), np.float32))
        model.export(str(path), format="onnx")
        self.session = onnxruntime.InferenceSession(str(path))
        self.input = self.session.get_inputs()[0].name

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: batch})[0]


def run_case(models: list[str], tta: int, image: str, runtime: str = "keras") -> dict:
    """One measurement in this process: load, warm up, predict every slice of ``image``."""
    from emviewer.core.backend import device_summary
    from emviewer.core.io import open_volume
    from emviewer.core.models.loading import load_model
    from emviewer.core.predict import LocalPredictor
    from emviewer.core.volume import from_array

    loaded = [load_model(m) for m in models]
    if runtime == "onnx":
        for entry in loaded:
            entry.model = OnnxModel(entry)
    predictor = LocalPredictor({"mito": loaded}, tta=tta)
    volume = open_volume(image)
    # Compile for the tile shape before timing (a crop as large as one tile).
    list(predictor.iter_predict(from_array(volume.slice(0)[: predictor.tile, : predictor.tile])))
    base = _peak_rss_mb()
    start = time.perf_counter()
    for _ in predictor.iter_predict(volume):
        pass
    seconds = time.perf_counter() - start
    pixels = int(np.prod(volume.shape))
    info = device_summary()
    if runtime == "onnx":
        info["backend"] = "onnxruntime"
    return {
        "seconds": seconds,
        "mpx_per_s": pixels / seconds / 1e6,
        "pixels": pixels,
        "peak_mb": _peak_rss_mb(),
        "base_mb": base,
        "backend": info["backend"],
        "device": ", ".join(info["devices"]),
    }


def measure(models: list[str], tta: int, image: str, backend: str = "tensorflow") -> dict:
    """Run :func:`run_case` in a fresh process with the given Keras backend (or ``onnx``)."""
    runtime = "onnx" if backend == "onnx" else "keras"
    env = dict(os.environ, KERAS_BACKEND="tensorflow" if runtime == "onnx" else backend, TF_CPP_MIN_LOG_LEVEL="3")
    call = f"p.run_case({models!r}, {tta}, {image!r}, {runtime!r})"
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import predict_speed as p; print('RESULT' + json.dumps({call}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(f"{backend} run failed:\n{out.stderr[-3000:]}")


def make_big(folder: Path, side: int) -> str:
    """A side x side slice tiled from a real test image, as a memory-mapped TIFF."""
    import tifffile
    from PIL import Image

    tile = np.asarray(Image.open(sorted(DATA.glob("*.png"))[0]))
    reps = -(-side // tile.shape[0])
    path = folder / f"big_{side}.tif"
    tifffile.imwrite(path, np.tile(tile, (reps, reps))[:side, :side])
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the fast-mode model (.keras with its card)")
    parser.add_argument("--ensemble", help="comma list of models for the accurate mode (default: --model alone)")
    parser.add_argument(
        "--backends",
        default="tensorflow",
        help="comma list to compare: tensorflow, jax, torch (Keras backends) and onnx (ONNX Runtime)",
    )
    parser.add_argument("--big", type=int, default=8192, help="side of the large slice (default 8192)")
    args = parser.parse_args()
    ensemble = args.ensemble.split(",") if args.ensemble else [args.model]

    print(f"test set: {DATA} (5 x 1024 x 1024)")
    speeds = {}
    for backend in args.backends.split(","):
        result = measure([args.model], 1, str(DATA), backend)
        speeds[backend] = result["mpx_per_s"]
        print(
            f"[{result['backend']} on {result['device']}] fast mode: "
            f"{result['mpx_per_s']:.2f} Mpx/s ({result['seconds']:.1f} s)"
        )
    if len(speeds) > 1:
        first = next(iter(speeds))
        print(
            "speed relative to " + first + ": " + ", ".join(f"{b} {v / speeds[first]:.2f}x" for b, v in speeds.items())
        )
    fast = measure([args.model], 1, str(DATA))
    accurate = measure(ensemble, 16, str(DATA))
    print(
        f"accurate mode ({len(ensemble)} model(s), 16x TTA): "
        f"{accurate['mpx_per_s']:.3f} Mpx/s ({accurate['seconds']:.1f} s); "
        f"fast / accurate time ratio {accurate['seconds'] / fast['seconds']:.1f}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        small, big = make_big(Path(tmp), 1024), make_big(Path(tmp), args.big)
        one, large = measure([args.model], 1, small), measure([args.model], 1, big)
    pixel_ratio = large["pixels"] / one["pixels"]
    output_mb = large["pixels"] * 4 * 2 / 2**20  # the slice's float32 sum and weight maps
    print(f"1k x 1k: {one['seconds']:.2f} s, peak {one['peak_mb']:.0f} MB (after model load {one['base_mb']:.0f} MB)")
    print(
        f"{args.big // 1024}k x {args.big // 1024}k: {large['seconds']:.2f} s, peak {large['peak_mb']:.0f} MB "
        f"(after model load {large['base_mb']:.0f} MB)"
    )
    print(
        f"time ratio {large['seconds'] / one['seconds']:.1f} for pixel ratio {pixel_ratio:.0f} "
        f"(per-pixel cost ratio {large['seconds'] / one['seconds'] / pixel_ratio:.2f})"
    )
    growth_small, growth_large = one["peak_mb"] - one["base_mb"], large["peak_mb"] - large["base_mb"]
    print(
        f"peak memory ratio {large['peak_mb'] / one['peak_mb']:.2f}; "
        f"growth during prediction {growth_small:.0f} MB vs {growth_large:.0f} MB, "
        f"of which the large slice's own output is {output_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
