"""Load: 20 clients at once against a real ``emviewer serve`` process (bounded: small stacks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.load

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "server_load.py"


def test_twenty_concurrent_clients_all_succeed_and_server_memory_stays_bounded(model_folder):
    cmd = [
        sys.executable,
        str(BENCHMARK),
        "--models-dir",
        str(model_folder),
        "--clients",
        "20",
        "--slices",
        "2",
        "--size",
        "256",
        "--json",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["completed"] == 20 and figures["failed"] == 0, figures["failures"]
    # 20 uploads and results go to disk, not memory: the server grows by far less than 20 stacks' worth of TF buffers
    assert figures["server_rss_growth_mb"] < 300, figures
