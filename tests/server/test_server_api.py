"""The HTTP API against the real app on loopback: auth, uploads, refusals, jobs, results."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from urllib.parse import urlparse

import h5py
import numpy as np
import pytest
import requests
import tifffile

from emviewer.remote.upload import MultipartBody

TOKEN = "test-token-0123456789"  # the test server's (see conftest)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def submit(server, path: Path, parameters: dict, token: str = TOKEN, name: str | None = None) -> requests.Response:
    body = MultipartBody({"parameters": json.dumps(parameters)}, [("files", path)])
    if name:  # what a hostile client could claim the file is called
        body._parts[1] = body._parts[1].replace(f'filename="{path.name}"'.encode(), f'filename="{name}"'.encode())
        body._size += len(name) - len(path.name)
    headers = {"Content-Type": body.content_type, "Authorization": f"Bearer {token}"}
    return requests.post(f"{server.url}/v1/jobs", data=body, headers=headers, timeout=60)


def wait_done(server, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = requests.get(f"{server.url}/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()
        if status["state"] not in ("queued", "running") or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_health_needs_no_token_and_says_the_upload_limit(server):
    answer = requests.get(f"{server.url}/v1/health", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["max_upload_bytes"] == 4 * 2**20 and answer.json()["status"] == "ok"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}]
)
def test_every_other_endpoint_needs_the_token(server, headers):
    for method, path in (
        ("GET", "/models"),
        ("GET", "/jobs/" + "0" * 32),
        ("DELETE", "/jobs/" + "0" * 32),
        ("POST", "/jobs"),
    ):
        answer = requests.request(method, f"{server.url}/v1{path}", headers=headers, timeout=10)
        assert answer.status_code == 401, (method, path, answer.status_code)
        assert answer.json() == {"detail": "missing or wrong token"}


def test_models_lists_the_servers_models_with_cards(server):
    models = requests.get(f"{server.url}/v1/models", headers=AUTH, timeout=10).json()
    assert sorted(m["name"] for m in models) == ["short-mito", "tiny-membrane", "tiny-mito"]
    assert {m["object"] for m in models} == {"mito", "membrane"} and all(len(m["card"]["sha256"]) == 64 for m in models)


def test_job_runs_and_its_result_holds_masks_and_probabilities(server, server_tiff, server_stack, tmp_path):
    answer = submit(server, server_tiff, {"objects": ["mito"]})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["state"] in ("queued", "running", "done") and job["shape"] == list(server_stack.shape)
    status = wait_done(server, job["id"])
    assert status["state"] == "done" and status["done"] == status["total"] > 0
    assert status["queued_seconds"] >= 0 and status["running_seconds"] > 0 and status["expires"] > time.time()
    result = requests.get(f"{server.url}/v1/jobs/{job['id']}/result", headers=AUTH, timeout=30)
    assert result.status_code == 200 and result.headers["content-type"] == "application/x-hdf5"
    (tmp_path / "r.h5").write_bytes(result.content)
    with h5py.File(tmp_path / "r.h5") as h5:
        assert h5["masks/mito"].shape == server_stack.shape and h5["probabilities/mito"].dtype == np.float32
        assert set(np.unique(h5["masks/mito"][:])) <= {0, 255}
    assert not (server.app.state.work_dir / job["id"] / "input").exists()  # the upload is gone once done


def test_result_of_an_unfinished_or_unknown_job(server, server_tiff):
    assert requests.get(f"{server.url}/v1/jobs/{'a' * 32}/result", headers=AUTH, timeout=10).status_code == 404
    assert requests.get(f"{server.url}/v1/jobs/not-a-job-id", headers=AUTH, timeout=10).status_code == 422
    job = submit(server, server_tiff, {"objects": ["mito"], "mode": "accurate"}).json()
    early = requests.get(f"{server.url}/v1/jobs/{job['id']}/result", headers=AUTH, timeout=10)
    assert early.status_code in (200, 409)  # 409 unless the job already finished
    if early.status_code == 409:
        assert "result is ready when it is done" in early.json()["detail"]
    wait_done(server, job["id"])


def job_folders(server) -> set:
    return {p.name for p in server.app.state.work_dir.iterdir()}


def test_corrupt_file_gives_422_with_the_core_message_and_no_server_path(server, tmp_path):
    bad = tmp_path / "stack.tif"
    bad.write_bytes(b"II*\x00" + b"\x07" * 500)
    before = job_folders(server)
    answer = submit(server, bad, {"objects": ["mito"]})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail.startswith("stack.tif: ") and str(server.app.state.work_dir) not in detail
    assert job_folders(server) == before  # the refused upload is deleted


def test_binary_input_is_refused(server, server_stack, tmp_path):
    masks = tmp_path / "masks.tif"
    tifffile.imwrite(masks, np.where(server_stack > 120, 255, 0).astype(np.uint8), photometric="minisblack")
    answer = submit(server, masks, {"objects": ["mito"]})
    assert answer.status_code == 422 and "binary" in answer.json()["detail"] and "masks.tif" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"objects": ["golgi"]}, "objects"),
        ({"objects": ["mito"], "models": {"mito": ["no-such-model"]}}, "unknown model 'no-such-model'"),
        ({"objects": ["mito"], "models": {"mito": ["../../models/x.keras"]}}, "models.mito"),
        ({"objects": ["mito"], "models": {"mito": ["tiny-membrane"]}}, "does not segment 'mito'"),
        ({"objects": ["mito"], "slices": [0, 4]}, "slice 4 is outside the stack"),
        ({"objects": ["mito"], "dataset": "../../etc"}, "dataset"),
        ({"objects": ["mito"], "tta": 3}, "tta"),
    ],
)
def test_bad_parameters_are_refused_with_a_message(server, server_tiff, parameters, words):
    answer = submit(server, server_tiff, parameters)
    assert answer.status_code == 422 and words in answer.json()["detail"], answer.text


def test_a_client_file_name_cannot_reach_outside_the_job_folder(server, server_tiff, tmp_path):
    answer = submit(server, server_tiff, {"objects": ["mito"]}, name="../../../escaped.tif")
    assert answer.status_code == 202, answer.text
    assert wait_done(server, answer.json()["id"])["state"] == "done"
    work = server.app.state.work_dir
    assert not list(work.parent.rglob("escaped.tif")) and not (work.parent.parent / "escaped.tif").exists()


def test_not_multipart_gives_415(server):
    answer = requests.post(
        f"{server.url}/v1/jobs", data=b"{}", headers={**AUTH, "Content-Type": "application/json"}, timeout=10
    )
    assert answer.status_code == 415 and "multipart/form-data" in answer.json()["detail"]


def _open(server) -> http.client.HTTPConnection:
    address = urlparse(server.url)
    return http.client.HTTPConnection(address.hostname, address.port, timeout=20)


def test_oversize_upload_with_its_length_declared_is_refused_before_the_body(server):
    connection = _open(server)
    connection.putrequest("POST", "/v1/jobs")
    for key, value in {
        **AUTH,
        "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(5 * 2**20),
    }.items():
        connection.putheader(key, value)
    connection.endheaders()  # no body sent at all
    answer = connection.getresponse()
    assert answer.status == 413 and "over the server's limit" in json.loads(answer.read())["detail"]


def test_oversize_streamed_upload_is_refused_while_streaming(server):
    """Chunked, no length: the server counts and answers 413 before the body ends."""
    before = job_folders(server)
    connection = _open(server)
    connection.putrequest("POST", "/v1/jobs")
    for key, value in {
        **AUTH,
        "Content-Type": "multipart/form-data; boundary=xyz",
        "Transfer-Encoding": "chunked",
    }.items():
        connection.putheader(key, value)
    connection.endheaders()
    head = b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="big.tif"\r\n\r\n'
    chunk = head + b"\0" * (2**20 - len(head))
    for _ in range(5):  # 5 MiB sent of a body that never ends; the limit is 4 MiB
        connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        chunk = b"\0" * 2**20
    answer = connection.getresponse()  # would time out if the server waited for the end
    assert answer.status == 413
    assert job_folders(server) == before  # the 4 MiB received so far are deleted


def test_openapi_schema_describes_the_upload(server):
    schema = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    upload = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(upload["required"]) == {"parameters", "files"}
    assert {"/v1/health", "/v1/models", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result"} <= set(schema["paths"])
