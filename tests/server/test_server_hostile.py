"""Crafted uploads cannot make the real server read outside them: HDF5 external storage,
virtual datasets and external links are refused (422, one line, no server path), whether
or not the file they point at exists."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import requests
from live_server import TOKEN

from emviewer.remote.upload import MultipartBody

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post(server, path) -> requests.Response:
    body = MultipartBody({"parameters": json.dumps({"objects": ["mito"], "dataset": "raw"})}, [("files", path)])
    return requests.post(
        f"{server.url}/v1/jobs", data=body, headers={**AUTH, "Content-Type": body.content_type}, timeout=60
    )


@pytest.fixture
def secret(tmp_path):
    """A file on the server's machine that no upload may read: 64 x 64 uint8 of grey 123."""
    path = tmp_path / "secret.raw"
    path.write_bytes(bytes([123]) * 64 * 64)
    return path


def external_storage(path, target) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", shape=(1, 64, 64), dtype=np.uint8, external=[(str(target), 0, 64 * 64)])


def virtual_dataset(path, target) -> None:
    with h5py.File(target, "w") as f:
        f["data"] = np.full((1, 64, 64), 123, np.uint8)
    layout = h5py.VirtualLayout(shape=(1, 64, 64), dtype=np.uint8)
    layout[:] = h5py.VirtualSource(str(target), "data", shape=(1, 64, 64))
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("raw", layout)


def external_link(path, target) -> None:
    with h5py.File(target, "w") as f:
        f["data"] = np.full((1, 64, 64), 123, np.uint8)
    with h5py.File(path, "w") as f:
        f["raw"] = h5py.ExternalLink(str(target), "/data")


@pytest.mark.parametrize(
    ("craft", "words"),
    [(external_storage, "external files"), (virtual_dataset, "virtual dataset"), (external_link, "external link")],
)
def test_an_upload_pointing_outside_itself_is_refused(server, tmp_path, secret, craft, words):
    target = secret if craft is external_storage else tmp_path / "other.h5"
    crafted = tmp_path / "crafted.h5"
    craft(crafted, target)
    before = {p.name for p in server.app.state.work_dir.iterdir()}
    answer = post(server, crafted)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("crafted.h5: ") and words in detail and "\n" not in detail
    assert "123" not in detail and str(server.app.state.work_dir) not in detail
    assert {p.name for p in server.app.state.work_dir.iterdir()} == before


def test_a_missing_external_file_gets_the_same_answer_as_an_existing_one(server, tmp_path, secret):
    """The answer must not tell a client whether a path exists on the server."""
    answers = []
    for target in (secret, tmp_path / "no-such-file.raw"):
        crafted = tmp_path / "crafted.h5"
        external_storage(crafted, target)
        answers.append(post(server, crafted))
    assert [a.status_code for a in answers] == [422, 422]
    assert answers[0].json() == answers[1].json()
