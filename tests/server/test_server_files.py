"""Every file a job opens is closed when the job ends (done, failed or refused), and a failed
job's message reaches the client as one line without the server's paths."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import h5py
import pytest
import requests
import tifffile
from live_server import TOKEN, live_server, wait_for

from emviewer.core.io import open_volume
from emviewer.remote.upload import MultipartBody
from emviewer.server.workdir import LOCK_NAME

AUTH = {"Authorization": f"Bearer {TOKEN}"}
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="open files are read from /proc")


def post(server, path, parameters: dict) -> requests.Response:
    body = MultipartBody({"parameters": json.dumps(parameters)}, [("files", path)])
    try:
        return requests.post(
            f"{server.url}/v1/jobs", data=body, headers={**AUTH, "Content-Type": body.content_type}, timeout=60
        )
    finally:
        body.close()  # the client's own handle on the file must not count as the server's


def open_files_under(folder: Path) -> list[str]:
    """Files this process has open under ``folder`` (deleted ones included), but the server's
    lock on its work folder."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(folder)) and not target.endswith(LOCK_NAME):
            found.append(target)
    return found


def finished(server, job_id: str) -> dict:
    def state():
        status = requests.get(f"{server.url}/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()
        return status if status["state"] not in ("queued", "running") else None

    return wait_for(state, 120)


@pytest.mark.parametrize("kind", ["tif", "h5"])
def test_no_upload_stays_open_after_a_job(server, server_stack, tmp_path, kind):
    path = tmp_path / f"stack.{kind}"
    if kind == "h5":
        with h5py.File(path, "w") as f:
            f["raw"] = server_stack
    else:
        tifffile.imwrite(path, server_stack, photometric="minisblack")
    parameters = {"objects": ["mito"]} | ({"dataset": "raw"} if kind == "h5" else {})
    answer = post(server, path, parameters)
    assert answer.status_code == 202, answer.text
    assert finished(server, answer.json()["id"])["state"] == "done"
    time.sleep(0.2)  # the worker closes files right after it sets the state
    assert open_files_under(server.app.state.work_dir) == []
    # a refused upload (slice outside the stack) leaves nothing open either
    assert post(server, path, parameters | {"slices": [9]}).status_code == 422
    assert open_files_under(server.app.state.work_dir) == []


def test_a_failed_job_says_why_in_one_line_without_server_paths(server, server_stack, tmp_path):
    """A stack whose third slice is cut short: opened and checked at upload, fails while predicting."""
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, server_stack, photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        third = tif.pages[2].dataoffsets[0]
    path.write_bytes(path.read_bytes()[: third + 100])
    answer = post(server, path, {"objects": ["mito"]})
    refused_at_upload = answer.status_code == 422  # also one line, no path
    message = answer.json()["detail"] if refused_at_upload else finished(server, answer.json()["id"])["message"]
    assert "cut.tif" in message and "\n" not in message, message
    assert str(server.app.state.work_dir) not in message
    assert open_files_under(server.app.state.work_dir) == []


def test_a_waiting_job_holds_its_upload_open_once_and_cancelling_closes_it(model_folder, slow_tiff, tmp_path):
    """The upload is opened once, at the check, and carried to the run: while the job waits its
    file is open (once); cancelling a waiting or a running job closes it."""
    with live_server(model_folder, tmp_path, workers=1, max_waiting=2) as live:
        slow = {"objects": ["mito"], "mode": "accurate"}
        running = post(live, slow_tiff, slow).json()["id"]
        wait_for(lambda: finished_or(live, running, "running"))
        waiting = post(live, slow_tiff, slow).json()["id"]
        work_dir = live.app.state.work_dir
        before = len(open_files_under(slow_tiff))
        with open_volume(slow_tiff):  # how many handles one opening of this file takes (TIFF + memory map)
            per_opening = len(open_files_under(slow_tiff)) - before
        upload = str(work_dir / waiting / "input" / slow_tiff.name)
        assert per_opening > 0 and open_files_under(work_dir / waiting) == [upload] * per_opening
        for job_id in (waiting, running):
            requests.delete(f"{live.url}/v1/jobs/{job_id}", headers=AUTH, timeout=10)
            assert finished(live, job_id)["state"] == "cancelled"
        assert open_files_under(work_dir) == []


def finished_or(server, job_id: str, state: str) -> bool:
    return requests.get(f"{server.url}/v1/jobs/{job_id}", headers=AUTH, timeout=10).json()["state"] == state
