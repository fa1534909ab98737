"""Load on the online-mode server: N clients at once, each sending a real EM stack through
``RemotePredictor``. Prints completed/failed jobs, latencies, throughput and the server
process's memory (resident before, after, and peak), as text or one JSON line.

    python benchmarks/server_load.py --models-dir models/ [--clients 20] [--slices 2] [--size 512] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cdeep3m_mito" / "validation" / "images"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb(pid: int) -> dict:
    """Resident and peak resident memory of a process, in MiB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[name].split()[0]) / 1024 for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}


def start_server(models_dir: Path, token_file: Path, port: int) -> subprocess.Popen:
    env = dict(
        os.environ,
        EMVIEWER_MODELS_DIR=str(models_dir),
        EMVIEWER_USER_DIR=str(token_file.parent / "user"),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    cmd = [sys.executable, "-m", "emviewer", "serve", "--port", str(port), "--token-file", str(token_file)]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start within 180 s")


def run(models_dir: Path, clients: int, slices: int, size: int, objects: list[str]) -> dict:
    from emviewer.core.volume import from_array
    from emviewer.remote.client import RemotePredictor

    files = sorted(DATA.glob("*.png"))[:slices]
    if len(files) < slices:
        raise SystemExit(f"need {slices} images in {DATA}")
    stack = np.stack([np.asarray(Image.open(f))[:size, :size] for f in files])
    with tempfile.TemporaryDirectory() as tmp:
        token = "load-test-token"
        token_file = Path(tmp) / "token"
        token_file.write_text(token)
        port = free_port()
        server = start_server(models_dir, token_file, port)
        try:
            url = f"http://127.0.0.1:{port}"
            # one warm-up job so the memory baseline includes the models' first-call graphs
            list(RemotePredictor(url, token, objects).iter_predict(from_array(stack)))
            before = memory_mb(server.pid)
            latencies, failures = [], []

            def client(i: int) -> None:
                started = time.perf_counter()
                try:
                    results = list(
                        RemotePredictor(url, token, objects, poll_interval=0.1).iter_predict(from_array(stack))
                    )
                    assert len(results) == len(stack)
                    latencies.append(time.perf_counter() - started)
                except Exception as exc:  # every failure is counted and shown
                    failures.append(f"client {i}: {type(exc).__name__}: {exc}")

            started = time.perf_counter()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=900)
            wall = time.perf_counter() - started
            after = memory_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    lat = np.array(latencies or [np.nan])
    return {
        "clients": clients,
        "completed": len(latencies),
        "failed": len(failures),
        "failures": failures[:5],
        "slices_per_job": len(stack),
        "slice_size": list(stack.shape[1:]),
        "wall_s": round(wall, 2),
        "jobs_per_s": round(len(latencies) / wall, 3),
        "latency_median_s": round(float(np.median(lat)), 2),
        "latency_max_s": round(float(np.max(lat)), 2),
        "server_rss_before_mb": round(before["rss"], 1),
        "server_rss_after_mb": round(after["rss"], 1),
        "server_rss_peak_mb": round(after["peak"], 1),
        "server_rss_growth_mb": round(after["rss"] - before["rss"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--object", default="mito")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    figures = run(args.models_dir, args.clients, args.slices, args.size, args.object.split(","))
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
