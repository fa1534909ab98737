"""``emviewer export-model`` / ``import-model``: a bundled model out and back in, then used by name."""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import tifffile

from emviewer import config

MODEL = "membrane-mru-1fm"  # computes in float32: its file is packed unchanged


def test_export_import_list_and_predict_like_the_original(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    package = tmp_path / f"{MODEL}.zip"
    code, out, err = run_cli("export-model", MODEL, "-o", package)
    assert code == 0, err
    assert "valid-format" in out and "ONNX vs Keras" in out and zipfile.is_zipfile(package)

    code, out, err = run_cli("import-model", package, "--name", "exchanged")
    assert code == 0, err
    assert (tmp_path / "user" / "models" / "membrane" / "exchanged.json").is_file()
    code, out, _ = run_cli("models")
    assert "exchanged" in out

    sample = config.sample_stack()
    for name in (MODEL, "exchanged"):
        code, _, err = run_cli(
            "predict",
            sample,
            "-o",
            tmp_path / name,
            "--object",
            "membrane",
            "--model",
            name,
            "--format",
            "tif",
            "--save-probabilities",
        )
        assert code == 0, err
    original = tifffile.imread(tmp_path / MODEL / "membrane_probabilities.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "exchanged" / "membrane_probabilities.tif"), original)

    code, _, err = run_cli("import-model", package, "--name", "exchanged")
    assert code == 2 and "installed already" in err and len(err.strip().splitlines()) == 1


def test_import_of_a_zip_with_paths_outside_exits_2_and_registers_nothing(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\nformat_version: 0.5.4\n")
        archive.writestr("../../escape.keras", b"x")
    code, _, err = run_cli("import-model", bad)
    assert code == 2 and str(bad) in err and "outside" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "user").exists() and not (tmp_path.parent / "escape.keras").exists()


def test_export_without_the_exchange_packages_says_what_to_install(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # how Python sees a package that is not installed
    code, _, err = run_cli("export-model", MODEL, "-o", tmp_path / "m.zip")
    assert code == 2 and "pip install 'emviewer[exchange]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.zip").exists()
