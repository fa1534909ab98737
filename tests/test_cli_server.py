"""``emviewer serve`` as a real process, and ``emviewer predict --server`` against it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from PIL import Image


@pytest.fixture(scope="module")
def served(model_folder, tmp_path_factory):
    """``python -m emviewer serve`` on a free port with a token file; yields (url, token)."""
    folder = tmp_path_factory.mktemp("serve")
    token_file = folder / "token"
    token_file.write_text("cli-token\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, EMVIEWER_MODELS_DIR=str(model_folder), EMVIEWER_USER_DIR=str(folder / "user"))
    process = subprocess.Popen([sys.executable, "-m", "emviewer", "serve", "--port", str(port), "--token-file", str(token_file)], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "server did not start"
        try:
            if requests.get(f"{url}/v1/health", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    yield url, "cli-token"
    process.terminate()
    process.wait(timeout=30)


def test_predict_online_writes_the_same_masks_as_offline(served, model_folder, server_tiff, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(model_folder))
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    url, token = served
    code, out, err = run_cli("predict", server_tiff, "-o", tmp_path / "online", "--object", "mito,membrane", "--server", url, "--token", token)
    assert code == 0, err
    code, _, err = run_cli("predict", server_tiff, "-o", tmp_path / "offline", "--object", "mito,membrane")
    assert code == 0, err
    for obj in ("mito", "membrane"):
        names = sorted(p.name for p in (tmp_path / "offline" / obj).glob("*.png"))
        assert names == [f"slice_{i:04d}.png" for i in range(4)]
        for name in names:
            online = np.asarray(Image.open(tmp_path / "online" / obj / name))
            offline = np.asarray(Image.open(tmp_path / "offline" / obj / name))
            np.testing.assert_array_equal(online, offline)


def test_predict_online_with_a_wrong_token_is_one_line(served, server_tiff, tmp_path, run_cli):
    url, _ = served
    code, _, err = run_cli("predict", server_tiff, "-o", tmp_path / "out", "--object", "mito", "--server", url, "--token", "nope")
    assert code == 2 and err.count("\n") == 1 and "refused the token" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_predict_online_refuses_a_local_model_file(served, server_tiff, tmp_path, run_cli):
    url, token = served
    code, _, err = run_cli("predict", server_tiff, "-o", tmp_path / "out", "--object", "mito", "--server", url, "--token", token, "--model", "my.keras")
    assert code == 2 and "server's models" in err


def test_serve_refuses_an_open_address_without_a_token(run_cli, monkeypatch):
    monkeypatch.delenv("EMVIEWER_TOKEN", raising=False)
    code, _, err = run_cli("serve", "--host", "0.0.0.0")
    assert code == 2 and "without a token" in err


def test_serve_names_an_empty_token_file(run_cli, tmp_path):
    (tmp_path / "token").write_text("  \n")
    code, _, err = run_cli("serve", "--host", "0.0.0.0", "--token-file", tmp_path / "token")
    assert code == 2 and "token: the token file is empty" in err


def test_predict_online_refuses_a_model_name_that_is_a_path(served, server_tiff, tmp_path, run_cli):
    url, token = served
    code, _, err = run_cli("predict", server_tiff, "-o", tmp_path / "out", "--object", "mito", "--server", url, "--token", token, "--model", "../../etc/x")
    assert code == 2 and err.count("\n") == 1 and "online mode: models.mito" in err
