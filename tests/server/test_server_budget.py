"""The job budget on the real server: decoded size (channels and bytes counted), slices per
job, and slice indices that are unique and inside the stack."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import tifffile
from live_server import TOKEN, live_server

from emviewer.remote.upload import MultipartBody

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BUDGET = 2 * 2**20  # decoded bytes per job


@pytest.fixture(scope="module")
def small_budget_server(model_folder, tmp_path_factory):
    with live_server(model_folder, tmp_path_factory.mktemp("budget"), max_decoded_bytes=BUDGET, max_slices=3) as live:
        yield live


def post(server, path, parameters: dict) -> requests.Response:
    body = MultipartBody({"parameters": json.dumps(parameters)}, [("files", path)])
    return requests.post(
        f"{server.url}/v1/jobs", data=body, headers={**AUTH, "Content-Type": body.content_type}, timeout=60
    )


def tissue(shape, dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(1000, 3000, shape).astype(dtype)


def job_folders(server) -> set:
    return {p.name for p in server.app.state.work_dir.iterdir() if not p.name.startswith(".")}


def test_colour_samples_count_towards_the_decoded_size(small_budget_server, tmp_path):
    grey, rgb = tmp_path / "grey.tif", tmp_path / "rgb.tif"
    tifffile.imwrite(grey, tissue((3, 256, 256)), photometric="minisblack", compression="zlib")  # 0.4 MiB
    tifffile.imwrite(rgb, tissue((3, 256, 256, 3)), photometric="rgb", compression="zlib")  # 1.1 MiB decoded
    tifffile.imwrite(tmp_path / "big.tif", tissue((3, 512, 512, 3)), photometric="rgb", compression="zlib")  # 4.5 MiB
    assert post(small_budget_server, grey, {"objects": ["mito"]}).status_code == 202
    assert post(small_budget_server, rgb, {"objects": ["mito"]}).status_code == 202
    before = job_folders(small_budget_server)
    answer = post(small_budget_server, tmp_path / "big.tif", {"objects": ["mito"]})
    assert answer.status_code == 413, answer.text
    assert "4.5 MiB of image data once decoded" in answer.json()["detail"] and "2.0 MiB" in answer.json()["detail"]
    assert job_folders(small_budget_server) == before  # nothing kept of a refused upload


def test_a_small_compressed_file_cannot_claim_gigabytes(small_budget_server, tmp_path):
    flat = tmp_path / "flat.tif"
    slices = (np.full((4096, 4096), 1000, np.uint16) + np.arange(4096, dtype=np.uint16) for _ in range(3))
    # 3 x 4096 x 4096 uint16 (96 MiB) in a few hundred KB, written slice by slice
    tifffile.imwrite(
        flat,
        slices,
        shape=(3, 4096, 4096),
        dtype=np.uint16,
        photometric="minisblack",
        compression="zlib",
        predictor=True,
    )
    assert flat.stat().st_size < 2**20
    answer = post(small_budget_server, flat, {"objects": ["mito"]})
    assert answer.status_code == 413 and "96.0 MiB" in answer.json()["detail"], answer.text


@pytest.mark.parametrize(
    ("slices", "status", "words"),
    [
        ([0, 1, 0], 422, "slice 0 is listed twice"),
        ([4, 0], 422, "slice 4 is outside the stack"),
        (None, 413, "the job asks for 4 slices; this server predicts at most 3"),
        ([0, 1, 2], 202, ""),
    ],
)
def test_slices_are_unique_inside_the_stack_and_within_the_budget(small_budget_server, tmp_path, slices, status, words):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, tissue((4, 64, 64)), photometric="minisblack")
    parameters = {"objects": ["mito"]} | ({"slices": slices} if slices is not None else {})
    answer = post(small_budget_server, stack, parameters)
    assert answer.status_code == status and words in answer.text, answer.text
