"""The server as its own process: a restart after kill -9 leaves no earlier upload on disk,
and a decompression bomb does not blow up its memory."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import requests
from live_server import TOKEN, ServeProcess
from PIL import Image

from emviewer.remote.upload import MultipartBody

AUTH = {"Authorization": f"Bearer {TOKEN}"}
pytestmark = [
    pytest.mark.slow,  # each test starts (and kills) its own server process
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9 and /proc memory figures are Linux's"),
]


def post(url: str, path, parameters: dict) -> requests.Response:
    body = MultipartBody({"parameters": json.dumps(parameters)}, [("files", path)])
    return requests.post(f"{url}/v1/jobs", data=body, headers={**AUTH, "Content-Type": body.content_type}, timeout=120)


def server_folders(temp_dir) -> set:
    return {p.name for p in temp_dir.glob("emviewer-server-*")}


def test_a_restart_after_kill_9_removes_the_killed_servers_uploads(model_folder, server_tiff, tmp_path):
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    first = ServeProcess(model_folder, tmp_path, temp_dir).wait_ready()
    try:
        assert post(first.url, server_tiff, {"objects": ["mito"]}).status_code == 202
        (killed,) = server_folders(temp_dir)
        assert list((temp_dir / killed).rglob("*.tif")) or list((temp_dir / killed).rglob("*.h5"))
    finally:
        first.stop(kill=True)
    assert server_folders(temp_dir) == {killed}  # kill -9: nothing cleaned up

    second = ServeProcess(model_folder, tmp_path, temp_dir).wait_ready()
    try:
        folders = server_folders(temp_dir)
        assert killed not in folders and len(folders) == 1  # only the running server's own
        # a second server at the same time leaves the first one's folder alone
        third = ServeProcess(model_folder, tmp_path, temp_dir).wait_ready()
        assert folders < server_folders(temp_dir)
        third.stop()
    finally:
        second.stop()
    assert server_folders(temp_dir) == set()  # a clean stop removes its own


def test_an_rgb_decompression_bomb_stays_under_a_gigabyte(model_folder, tmp_path):
    bomb = tmp_path / "bomb.png"
    rgb = np.zeros((8192, 8192, 3), np.uint8)
    rgb[:, :, 1] = (np.arange(8192) // 32 % 256).astype(np.uint8)  # grey levels PNG compresses to little
    rgb[::64, :, 0] = 200
    Image.fromarray(rgb).save(bomb, optimize=True)
    del rgb
    assert bomb.stat().st_size < 1_000_000
    server = ServeProcess(model_folder, tmp_path).wait_ready()
    try:
        before = server.memory_mb()
        # listed twice: refused after the upload is opened, decoded and checked, before predicting
        answer = post(server.url, bomb, {"objects": ["mito"], "slices": [0, 0]})
        assert answer.status_code == 422 and "listed twice" in answer.json()["detail"], answer.text
        growth = server.memory_mb()["peak"] - before["rss"]
        assert growth < 1024, f"the server grew by {growth:.0f} MiB for a {bomb.stat().st_size} byte upload"
    finally:
        server.stop()
