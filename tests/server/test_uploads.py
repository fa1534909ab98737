"""Uploads on the real server: many parts parsed off the event loop, the parts budget, and
client file names that stay distinct and in order."""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlparse

import anyio
import h5py
import numpy as np
import pytest
import requests
import tifffile
from live_server import TOKEN, live_server, wait_for
from PIL import Image

from emviewer.core.io.common import image_files
from emviewer.server.uploads import UploadError, receive_form, upload_names

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BOUNDARY = "upload-test-boundary"


def multipart(parameters: dict, files: list[tuple[str, bytes]]) -> bytes:
    """A ``multipart/form-data`` body: the parameters field, then one ``files`` part per file."""
    field = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="parameters"\r\n\r\n{json.dumps(parameters)}\r\n'
    parts = [field.encode()]
    for name, data in files:
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n\r\n'
        parts += [head.encode(), data, b"\r\n"]
    return b"".join(parts + [f"--{BOUNDARY}--\r\n".encode()])


def post(server, body: bytes) -> requests.Response:
    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return requests.post(f"{server.url}/v1/jobs", data=body, headers=headers, timeout=600)


def job_folders(server) -> set[Path]:
    return {p for p in server.app.state.work_dir.iterdir() if re.fullmatch(r"[0-9a-f]{32}", p.name)}


def png_bytes(image: np.ndarray, path: Path) -> bytes:
    Image.fromarray(image).save(path)
    return path.read_bytes()


def wait_done(server, job_id: str) -> dict:
    def finished():
        status = requests.get(f"{server.url}/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()
        return status if status["state"] not in ("queued", "running") else None

    return wait_for(finished, timeout=120)


@pytest.fixture(scope="module")
def small_server(model_folder, tmp_path_factory):
    """A server that takes at most 5 parts per upload."""
    with live_server(model_folder, tmp_path_factory.mktemp("uploads"), max_parts=5) as live:
        yield live


def result_probabilities(server, job_id: str, tmp_path: Path) -> np.ndarray:
    assert wait_done(server, job_id)["state"] == "done"
    answer = requests.get(f"{server.url}/v1/jobs/{job_id}/result", headers=AUTH, timeout=30)
    assert answer.status_code == 200
    path = tmp_path / f"{job_id}.h5"
    path.write_bytes(answer.content)
    with h5py.File(path) as h5:
        return h5["probabilities/mito"][:]


# ---------------------------------------------------------------- the API stays live


@pytest.mark.load
def test_health_answers_while_a_20000_part_upload_is_parsed(model_folder, tmp_path):
    n = 20_000
    body = multipart({"objects": ["mito"]}, [(f"s{i}.png", b"not an image") for i in range(n)])
    events: list[str] = []
    with live_server(model_folder, tmp_path, max_parts=n + 1) as server:
        upload = threading.Thread(target=lambda: (post(server, body), events.append("upload answered")))
        upload.start()
        inputs = wait_for(lambda: [f / "input" for f in job_folders(server) if any(os.scandir(f / "input"))])[0]
        asked = len(os.listdir(inputs))  # the server is writing the parts now
        health = requests.get(f"{server.url}/v1/health", timeout=600)
        answered = len(os.listdir(inputs)) if inputs.exists() else n
        events.append("health answered")
        upload.join()
    assert health.status_code == 200
    assert events == ["health answered", "upload answered"]
    # Counting the server's own progress, not seconds: it wrote only a few parts while /health
    # was answered (parsing on the event loop, it had written ~14,500 of the 20,000 by then).
    assert answered - asked < n // 10, (asked, answered)


# ---------------------------------------------------------------- the parts budget


def test_more_parts_than_the_budget_is_refused_before_the_rest_is_sent(small_server):
    before = job_folders(small_server)
    body = multipart({"objects": ["mito"]}, [(f"s{i}.png", b"x" * 100) for i in range(10)])
    sixth_part = body.index(b'filename="s5.png"') + 100  # parameters + 5 files: the 6th part has begun
    url = urlparse(small_server.url)
    # The timeout is a fail-safe only: a server without the budget would wait for the rest.
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.putrequest("POST", "/v1/jobs")
        headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        headers["Content-Length"] = str(len(body))
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body[:sixth_part])  # the rest is never sent: the answer must come first
        answer = connection.getresponse()
        detail = json.loads(answer.read())["detail"]
    finally:
        connection.close()
    assert answer.status == 413 and "more than 5 parts" in detail, detail
    assert job_folders(small_server) == before  # the refused upload left nothing behind


def test_an_upload_at_the_parts_budget_is_taken(small_server, server_stack, tmp_path):
    files = [(f"s{z}.png", png_bytes(server_stack[z], tmp_path / f"{z}.png")) for z in range(4)]
    answer = post(small_server, multipart({"objects": ["mito"], "mode": "fast"}, files))  # 5 parts
    assert answer.status_code == 202, answer.text
    assert answer.json()["shape"] == [4, *server_stack.shape[1:]]


# ---------------------------------------------------------------- file names


def test_unicode_names_stay_distinct_and_in_order(small_server, server_stack, tmp_path):
    parameters = {"objects": ["mito"], "mode": "fast"}
    slices = [(name, png_bytes(server_stack[z], tmp_path / f"{z}.png")) for z, name in enumerate(("α.png", "β.png"))]
    answer = post(small_server, multipart(parameters, slices))
    assert answer.status_code == 202, answer.text
    assert answer.json()["shape"] == [2, *server_stack.shape[1:]]
    by_names = result_probabilities(small_server, answer.json()["id"], tmp_path)
    tifffile.imwrite(tmp_path / "stack.tif", server_stack[:2], photometric="minisblack")
    stack = post(small_server, multipart(parameters, [("stack.tif", (tmp_path / "stack.tif").read_bytes())]))
    by_stack = result_probabilities(small_server, stack.json()["id"], tmp_path)
    assert by_names.shape[0] == 2 and not np.array_equal(by_names[0], by_names[1])
    np.testing.assert_array_equal(by_names, by_stack)  # slice 0 is α's, slice 1 is β's


def test_the_same_name_twice_is_refused(small_server, server_stack, tmp_path):
    before = job_folders(small_server)
    data = png_bytes(server_stack[0], tmp_path / "a.png")
    answer = post(small_server, multipart({"objects": ["mito"]}, [("α.png", data), ("dir/α.png", data)]))
    assert answer.status_code == 422 and "sent twice" in answer.json()["detail"]
    assert job_folders(small_server) == before


@pytest.mark.parametrize(
    "client, server",
    [
        (["stack.tif"], ["stack.tif"]),
        (["slice_10.png", "slice_1.png", "slice_2.png"], ["slice_10.png", "slice_1.png", "slice_2.png"]),
        (["α.png", "β.png"], ["1.png", "2.png"]),
        (["β.png", "α.png"], ["2.png", "1.png"]),
        (["café.TIF"], ["1_cafe.TIF"]),
        (["A.png", "a.png"], ["1_A.png", "2_a.png"]),  # one file on a case-blind disk
        (["../../etc/passwd"], ["passwd"]),
        ("C:\\Users\\x\\scan 1.png", ["1_scan_1.png"]),
        ([".hidden.png"], ["1_hidden.png"]),
        ([".."], ["1"]),
        (["x.pñg"], ["1_x.png"]),
    ],
)
def test_upload_names(client, server):
    client = [client] if isinstance(client, str) else client
    assert upload_names(client) == server


def test_upload_names_are_safe_and_distinct_for_many_odd_names():
    client = [f"{chr(0x3B1 + i % 20)}/{chr(0x4E00 + i)} {i}.PNG" for i in range(1000)]
    client += ["a" * 300 + ".png", "slice:3?.png"]
    names = upload_names(client)
    assert len(set(names)) == len(names) == len(client)
    assert all(re.fullmatch(r"[0-9]{4}(_[A-Za-z0-9._-]+)?\.(PNG|png)", n) and len(n) <= 200 for n in names), names[:3]


@pytest.mark.parametrize("client", [["a.png", "a.png"], ["x/a.png", "y\\a.png"], [""]])
def test_upload_names_refuse_repeated_or_empty_names(client):
    with pytest.raises(UploadError) as refused:
        upload_names(client)
    assert refused.value.status == 422


NATURAL = ["slice_1.png", "slice_2.png", "slice_10.png"]


@pytest.mark.parametrize(
    "client, expected",
    [
        (["slice_10.png", "slice_2.png", "slice_1.png"], NATURAL),
        (["slice_10.png", "slice_ä3.png", "slice_2.png", "slice_1.png"], NATURAL + ["slice_ä3.png"]),
        (["β.png", "α.png", "γ.png"], ["α.png", "β.png", "γ.png"]),
        (["α.png", "β.png"], ["α.png", "β.png"]),
    ],
)
def test_the_folder_reads_in_the_natural_order_of_the_clients_names(client, expected, tmp_path):
    """Each file holds its client name; the core's folder order must be the names' natural order."""
    body = multipart({}, [(name, name.encode()) for name in client])

    async def chunks():
        for start in range(0, len(body), 7):  # parts split across many small chunks
            yield body[start : start + 7]

    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    form = anyio.run(lambda: receive_form(chunks(), content_type, tmp_path, 10**6, "files", max_parts=10))
    assert [p.read_text() for p in image_files(tmp_path)] == expected
    assert form.files == image_files(tmp_path) and form.fields == {"parameters": "{}"}
