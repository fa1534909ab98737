"""``emviewer serve`` as a real process, and ``emviewer predict --server`` against it."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from import_scan import imported_names
from PIL import Image

from emviewer.cli import build_parser
from emviewer.server.command import settings_from_args
from emviewer.server.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(model_folder, tmp_path_factory):
    """``python -m emviewer serve`` on a free port with a token file; yields (url, token)."""
    folder = tmp_path_factory.mktemp("serve")
    token_file = folder / "token"
    token_file.write_text("cli-token\n")
    token_file.chmod(0o600)  # no warning about a token file others may read
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, EMVIEWER_MODELS_DIR=str(model_folder), EMVIEWER_USER_DIR=str(folder / "user"))
    process = subprocess.Popen(
        [sys.executable, "-m", "emviewer", "serve", "--port", str(port), "--token-file", str(token_file)],
        env=env,
        stderr=subprocess.PIPE,
    )
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


def test_predict_online_writes_the_same_masks_as_offline(
    served, model_folder, server_tiff, tmp_path, run_cli, monkeypatch
):
    monkeypatch.setenv("EMVIEWER_MODELS_DIR", str(model_folder))
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    url, token = served
    code, out, err = run_cli(
        "predict",
        server_tiff,
        "-o",
        tmp_path / "online",
        "--object",
        "mito,membrane",
        "--server",
        url,
        "--token",
        token,
    )
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
    code, _, err = run_cli(
        "predict", server_tiff, "-o", tmp_path / "out", "--object", "mito", "--server", url, "--token", "nope"
    )
    assert code == 4 and err.count("\n") == 1 and "refused the token" in err  # 4: the server (core/errors.py)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_predict_online_refuses_a_local_model_file(served, server_tiff, tmp_path, run_cli):
    url, token = served
    code, _, err = run_cli(
        "predict",
        server_tiff,
        "-o",
        tmp_path / "out",
        "--object",
        "mito",
        "--server",
        url,
        "--token",
        token,
        "--model",
        "my.keras",
    )
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
    code, _, err = run_cli(
        "predict",
        server_tiff,
        "-o",
        tmp_path / "out",
        "--object",
        "mito",
        "--server",
        url,
        "--token",
        token,
        "--model",
        "../../etc/x",
    )
    assert code == 2 and err.count("\n") == 1 and "online mode: models.mito" in err


def test_serve_new_token_writes_a_private_token_and_serves_nothing(run_cli, tmp_path):
    path = tmp_path / "token"
    code, out, err = run_cli("serve", "--new-token", path)
    assert code == 0 and err == ""
    assert out.count("\n") == 1 and f"wrote a new token to {path.absolute()} " in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) >= 32
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--token-file", str(path)])
    settings = settings_from_args(args)
    assert settings.token == token
    settings.check()  # good enough beyond loopback


def test_serve_new_token_refuses_an_existing_file(run_cli, tmp_path):
    path = tmp_path / "token"
    path.write_text("the token in use\n")
    code, out, err = run_cli("serve", "--new-token", path)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{path}: already exists; not overwritten" in err
    assert path.read_text() == "the token in use\n"


def test_serve_refuses_a_short_token_beyond_loopback(run_cli, tmp_path):
    path = tmp_path / "token"
    path.write_text("short-token\n")
    path.chmod(0o600)
    code, _, err = run_cli("serve", "--host", "0.0.0.0", "--token-file", path)
    assert code == 2 and err.count("\n") == 1
    assert (
        "with a 11-character token (16+ needed beyond loopback); make one with: emviewer serve --new-token FILE" in err
    )


def test_serve_warns_of_a_token_file_others_can_read(run_cli, tmp_path):
    """The token is also too short, so the command stops after the warning instead of serving."""
    path = tmp_path / "token"
    path.write_text("short-token\n")
    path.chmod(0o644)
    code, _, err = run_cli("serve", "--host", "0.0.0.0", "--token-file", path)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 2
    assert lines[0] == f"emviewer: warning: {path}: other users may open the token file (mode 644); chmod 600 it"


def test_serve_budget_options_reach_the_settings(monkeypatch):
    monkeypatch.delenv("EMVIEWER_TOKEN", raising=False)
    argv = ["serve", "--max-parts", "7", "--max-decoded-gb", "0.5", "--max-slices", "3", "--max-upload-mb", "2"]
    argv += ["--keep-results", "1.5", "--workers", "2", "--port", "9999", "--host", "::1"]
    settings = settings_from_args(build_parser().parse_args(argv))
    assert (settings.max_parts, settings.max_decoded_bytes, settings.max_slices) == (7, 2**29, 3)
    assert (settings.max_upload_bytes, settings.result_ttl, settings.workers) == (2 * 2**20, 90.0, 2)
    assert (settings.host, settings.port, settings.token) == ("::1", 9999, None)


def test_serve_defaults_are_the_settings_defaults(monkeypatch, run_cli):
    monkeypatch.delenv("EMVIEWER_TOKEN", raising=False)
    assert settings_from_args(build_parser().parse_args(["serve"])) == ServerSettings()
    code, out, _ = run_cli("serve", "--help")
    help_text = " ".join(out.split())
    defaults = {"--max-parts": "10000", "--max-decoded-gb": "16", "--max-slices": "10000", "--max-upload-mb": "4096"}
    for option, default in defaults.items():
        assert re.search(rf"{option} [A-Z]+ [^(]*\(default {default}\)", help_text), option


@pytest.mark.parametrize(
    "option, value", [("--max-slices", "0"), ("--max-parts", "2.5"), ("--max-decoded-gb", "inf"), ("--workers", "-1")]
)
def test_serve_refuses_a_budget_that_is_not_a_positive_number(run_cli, option, value):
    code, _, err = run_cli("serve", option, value)
    assert code == 2 and f"argument {option}: {value!r} is not a positive" in err


# ---------------------------------------------------------------------------- the container


def _module_path(name: str):
    """The file of an emviewer module or package, or None for a name that is not one (a function, a class)."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def _libraries_the_server_may_import() -> set[str]:
    """Top-level names of the libraries ``emviewer serve`` may import, found statically: the module
    level of cli.py, then every emviewer module reachable from it and from emviewer/server."""
    todo = [f"emviewer.server.{p.stem}" for p in (ROOT / "emviewer" / "server").glob("*.py")]
    todo += list(imported_names(ROOT / "emviewer" / "cli.py", "emviewer.cli", top_level_only=True))
    seen, libraries = set(), set()
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if not name.startswith("emviewer"):
            libraries.add(name.split(".")[0])
        elif path and name not in seen:
            seen.add(name)
            todo += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # parent packages run too
            todo += imported_names(path, name)
    return libraries


def test_the_container_leaves_out_only_packages_the_server_never_imports():
    text = (ROOT / "packaging" / "Containerfile").read_text()
    left_out = re.search(r'^ARG NOT_FOR_THE_SERVER="([^"]*)"', text, re.M).group(1).split()
    block = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M).group(1)
    dependencies = {re.match(r"[\w.-]+", d).group().lower() for d in re.findall(r'^\s*"([^"]+)"', block, re.M)}
    # Qt is the app extra: not among the dependencies the container installs, and never imported.
    assert {"pyside6-essentials", "pyqtgraph"}.isdisjoint(dependencies)
    assert {name.lower() for name in left_out} <= dependencies
    modules = set(left_out) | {"PySide6", "pyqtgraph"}
    imported = _libraries_the_server_may_import()
    assert {"fastapi", "uvicorn", "tensorflow", "h5py"} <= imported  # the walk does reach the server's libraries
    assert modules & imported == set()
