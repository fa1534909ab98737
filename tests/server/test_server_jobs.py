"""Job life cycle on the real server: queue limit, cancel (waiting and running), expiry."""

from __future__ import annotations

import json

import requests
from live_server import live_server, wait_for

from emviewer.remote.upload import MultipartBody


def post(live, path, parameters) -> requests.Response:
    body = MultipartBody({"parameters": json.dumps(parameters)}, [("files", path)])
    return requests.post(
        f"{live.url}/v1/jobs", data=body, headers={**live.auth, "Content-Type": body.content_type}, timeout=60
    )


def state(live, job_id) -> requests.Response:
    return requests.get(f"{live.url}/v1/jobs/{job_id}", headers=live.auth, timeout=10)


def test_queue_limit_then_cancel_waiting_and_running_jobs(model_folder, slow_tiff, tmp_path):
    with live_server(model_folder, tmp_path, workers=1, max_waiting=1) as live:
        slow = {"objects": ["mito"], "mode": "accurate"}
        first = post(live, slow_tiff, slow).json()
        wait_for(lambda: state(live, first["id"]).json()["state"] == "running")
        second = post(live, slow_tiff, slow)
        assert second.status_code == 202
        third = post(live, slow_tiff, slow)
        assert third.status_code == 503 and "try again later" in third.json()["detail"]

        waiting = requests.delete(f"{live.url}/v1/jobs/{second.json()['id']}", headers=live.auth, timeout=10).json()
        assert waiting["state"] == "cancelled" and not (live.app.state.work_dir / waiting["id"]).exists()

        requests.delete(f"{live.url}/v1/jobs/{first['id']}", headers=live.auth, timeout=10)
        ended = wait_for(lambda: (s := state(live, first["id"]).json())["state"] != "running" and s)
        assert ended["state"] == "cancelled" and ended["done"] < ended["total"]
        assert not (live.app.state.work_dir / first["id"]).exists()
        # the worker is free again: a new job runs to the end
        quick = post(live, slow_tiff, {"objects": ["mito"], "slices": [0]}).json()
        assert wait_for(lambda: state(live, quick["id"]).json()["state"] == "done")


def test_finished_jobs_and_results_expire(model_folder, server_tiff, tmp_path):
    with live_server(model_folder, tmp_path, result_ttl=1.0) as live:
        job = post(live, server_tiff, {"objects": ["mito"]}).json()
        wait_for(lambda: state(live, job["id"]).json()["state"] == "done")
        assert (live.app.state.work_dir / job["id"] / "result").is_dir()
        gone = wait_for(lambda: state(live, job["id"]).status_code == 404, timeout=10)
        assert gone and not (live.app.state.work_dir / job["id"]).exists()
        assert requests.get(f"{live.url}/v1/jobs/{job['id']}/result", headers=live.auth, timeout=10).status_code == 404


def test_deleting_a_finished_job_deletes_its_result(server, server_tiff):
    job = post(server, server_tiff, {"objects": ["mito"]}).json()
    wait_for(lambda: state(server, job["id"]).json()["state"] == "done")
    assert requests.delete(f"{server.url}/v1/jobs/{job['id']}", headers=server.auth, timeout=10).status_code == 200
    assert state(server, job["id"]).status_code == 404 and not (server.app.state.work_dir / job["id"]).exists()
