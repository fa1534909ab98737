"""Online-mode fixtures (a pytest plugin, see tests/conftest.py): small real models with
cards, real EM crops, and the real app served by uvicorn on a free loopback port, in this
process so tests can look at its job folders. Used by tests/server and tests/remote."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from emviewer.core.models.loading import sha256_of

TOKEN = "test-token-0123456789"


def wait_for(condition, timeout: float = 60.0):
    """Poll ``condition`` until it returns something true, and return that; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def save_model_with_card(
    folder: Path,
    name: str,
    obj: str,
    context: int,
    seed: int,
    max_length: float | None = None,
    modes=("fast", "accurate"),
) -> Path:
    """An untrained but deterministic small model, saved with a card as the registry expects
    (``max_length``: the card's object length limit)."""
    import keras

    from emviewer.core.models import build_model

    keras.utils.set_random_seed(seed)
    path = folder / obj / f"{name}.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    build_model("deepem3d", context=context, width=4, depth=2).save(path)
    card = {
        "object": obj,
        "architecture": "deepem3d",
        "context": context,
        "threshold": 0.5,
        "modes": list(modes),
        "sha256": sha256_of(path),
    }
    card["max_object_length_px"] = max_length
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory) -> Path:
    """``mito/tiny-mito.keras`` (1 slice), ``membrane/tiny-membrane.keras`` (3 slices) and
    ``mito/short-mito.keras`` (the default of no mode; objects up to 20 px long)."""
    folder = tmp_path_factory.mktemp("server_models")
    save_model_with_card(folder, "tiny-mito", "mito", 1, seed=3)
    save_model_with_card(folder, "short-mito", "mito", 1, seed=3, max_length=20, modes=())
    save_model_with_card(folder, "tiny-membrane", "membrane", 3, seed=4)
    return folder


@pytest.fixture(scope="session")
def server_stack(cdeep3m) -> np.ndarray:
    """``(4, 192, 224)`` uint8: crops of four consecutive real SBEM slices."""
    files = [cdeep3m / "validation" / "images" / f"images.05{i}.png" for i in range(4)]
    return np.stack([np.asarray(Image.open(f))[64:256, 96:320] for f in files])


@pytest.fixture(scope="session")
def server_tiff(server_stack, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("server_inputs") / "stack.tif"
    tifffile.imwrite(path, server_stack, photometric="minisblack")
    return path


class LiveServer:
    """The app under uvicorn in a thread; ``url``, ``app`` (for its state) and ``stop()``."""

    def __init__(self, settings) -> None:
        import uvicorn

        from emviewer.server.app import create_app

        self.token = settings.token
        self.auth = {"Authorization": f"Bearer {settings.token}"}
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 120.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:  # lifespan loads models first; bounded wait
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def live_server(model_folder: Path, tmp_path: Path, **overrides):
    from emviewer.server.settings import ServerSettings

    settings = ServerSettings(
        token=TOKEN,
        models_dir=model_folder,
        user_models_dir=tmp_path / "no-user-models",
        work_dir=tmp_path / "work",
        **overrides,
    )
    server = LiveServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(model_folder, tmp_path_factory):
    """One server for a test module: token, 4 MiB upload limit, results kept 10 minutes."""
    with live_server(
        model_folder, tmp_path_factory.mktemp("server"), max_upload_bytes=4 * 2**20, result_ttl=600
    ) as live:
        yield live


@pytest.fixture(scope="session")
def slow_tiff(cdeep3m, tmp_path_factory) -> Path:
    """Six real 1024² slices: with 16x test-time augmentation a job that takes a few seconds."""
    files = sorted((cdeep3m / "training" / "images").glob("images.01[0-5].png"))
    path = tmp_path_factory.mktemp("server_inputs") / "slow.tif"
    tifffile.imwrite(path, np.stack([np.asarray(Image.open(f)) for f in files]), photometric="minisblack")
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``emviewer serve`` as a separate process (for kill -9 and its own memory figures)."""

    def __init__(self, model_folder: Path, folder: Path, temp_dir: Path | None = None) -> None:
        import os
        import subprocess
        import sys

        token_file = folder / "token"
        token_file.write_text(TOKEN)
        token_file.chmod(0o600)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            EMVIEWER_MODELS_DIR=str(model_folder),
            EMVIEWER_USER_DIR=str(folder / "user"),
            TF_CPP_MIN_LOG_LEVEL="3",
        )
        if temp_dir is not None:
            env["TMPDIR"] = str(temp_dir)
        self.log = open(folder / f"serve-{self.port}.log", "wb")  # noqa: SIM115 - the server's output until stop()
        cmd = [sys.executable, "-m", "emviewer", "serve", "--port", str(self.port), "--token-file", str(token_file)]
        self.process = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180.0) -> ServeProcess:
        import requests

        def up():
            assert self.process.poll() is None, "the server exited"
            try:
                return requests.get(f"{self.url}/v1/health", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(up, timeout)
        return self

    def memory_mb(self) -> dict:
        """Resident and peak resident memory (VmRSS, VmHWM) in MiB, from /proc (Linux)."""
        lines = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        return {key: int(fields[name].split()[0]) / 1024 for key, name in (("rss", "VmRSS"), ("peak", "VmHWM"))}

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(timeout=60)
        self.log.close()
