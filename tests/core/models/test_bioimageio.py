"""bioimage.io model packages: export (validated by bioimageio.spec), import, hostile zips refused."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from emviewer import config
from emviewer.core.errors import InputError
from emviewer.core.io import open_volume
from emviewer.core.models import bioimageio_import
from emviewer.core.models.bioimageio import card_dict, export_package
from emviewer.core.models.bioimageio_convert import bioimageio_input, run_onnx
from emviewer.core.models.bioimageio_import import import_package
from emviewer.core.models.loading import load_model
from emviewer.core.models.registry import list_models

#: A bundled model that computes in float32, so its file is packed unchanged.
MODEL = "membrane-mru-1fm"


def _entry(name: str):
    return next(e for e in config.installed_models() if e.name == name)


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    entry = _entry(MODEL)
    out = tmp_path_factory.mktemp("export") / f"{MODEL}.zip"
    result = export_package(entry.path, entry.card, open_volume(str(config.sample_stack())), out)
    assert result.path == out and out.stat().st_size == result.size_bytes
    assert result.validation == "valid-format"
    assert result.onnx_max_abs_diff < 1e-4
    assert result.installed_max_abs_diff == 0.0  # float32 model: the installed file is packed as it is
    return out


def _rdf(package: Path) -> dict:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


def test_package_validates_with_bioimageio_spec(package):
    from bioimageio.spec import load_description

    descr = load_description(package, perform_io_checks=True)
    assert descr.validation_summary.status == "valid-format", descr.validation_summary.display()
    assert descr.weights.keras_v3 is not None and descr.weights.onnx is not None
    assert descr.weights.onnx.parent == "keras_v3"
    assert [str(a.type) for a in descr.inputs[0].axes] == ["batch", "space", "space", "channel"]
    steps = [p.id for p in descr.inputs[0].preprocessing if p.id != "ensure_dtype"]
    assert steps == ["scale_range", "scale_linear", "clip"]
    assert descr.covers and descr.documentation is not None


def test_rdf_holds_the_card_figures_and_cites_the_training_data(package):
    rdf, card = _rdf(package), card_dict(_entry(MODEL).card)
    assert rdf["config"]["emviewer"]["validation"]["f1"] == pytest.approx(card["validation"]["f1"])
    assert rdf["config"]["emviewer"]["threshold"] == card["threshold"]
    assert any(c.get("doi") == "10.1371/journal.pbio.1000502" for c in rdf["cite"])  # ISBI 2012 (Cardona 2010)
    gain = rdf["inputs"][0]["preprocessing"][2]["kwargs"]
    assert gain["offset"] == pytest.approx(card["input_reference"][0])
    assert gain["offset"] + gain["gain"] == pytest.approx(card["input_reference"][1])
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        readme = archive.read("README.md").decode()
    assert {"rdf.yaml", "cover.png", "README.md", "test_input.npy", "test_output.npy", f"{MODEL}.onnx"} <= names
    assert f"{card['validation']['f1']:.3f}" in readme


def test_onnx_and_keras_give_the_test_output(package, tmp_path):
    with zipfile.ZipFile(package) as archive:
        archive.extractall(tmp_path)
    raw, expected = np.load(tmp_path / "test_input.npy"), np.load(tmp_path / "test_output.npy")
    reference = tuple(_entry(MODEL).card.input_reference)
    batch = bioimageio_input(raw, reference)
    assert np.abs(run_onnx(tmp_path / f"{MODEL}.onnx", batch) - expected).max() < 1e-4
    installed = load_model(_entry(MODEL).path)
    np.testing.assert_array_equal(installed.predict(batch), expected)
    assert (expected >= installed.threshold).mean() > 0.01  # the crop shows the object


def test_import_registers_the_model_and_it_predicts_as_the_original(package, tmp_path):
    models_dir = tmp_path / "models"
    path = import_package(package, models_dir, set(), name="imported")
    assert path == models_dir / "membrane" / "imported.keras"
    assert path.read_bytes() == _entry(MODEL).path.read_bytes()
    entries = list_models(tmp_path / "none", models_dir)
    assert [e.name for e in entries] == ["imported"] and entries[0].card.object == "membrane"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(tmp_path / "unpacked")
    batch = bioimageio_input(np.load(tmp_path / "unpacked" / "test_input.npy"), (0.1, 0.9))
    np.testing.assert_array_equal(load_model(path).predict(batch), load_model(_entry(MODEL).path).predict(batch))


def test_import_refuses_a_taken_name_and_leaves_nothing(package, tmp_path):
    with pytest.raises(InputError, match="installed already"):
        import_package(package, tmp_path / "models", {MODEL})
    assert not (tmp_path / "models").exists()


# ---------------------------------------------------------------------------- hostile packages


def _rewrite(package: Path, target: Path, drop=(), add=None, rdf=None) -> Path:
    """A copy of ``package`` without ``drop``, with extra members ``add`` and a changed rdf."""
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            if info.filename in drop:
                continue
            data = src.read(info.filename)
            if info.filename == "rdf.yaml" and rdf is not None:
                data = rdf(yaml.safe_load(data)) if callable(rdf) else rdf
                data = data if isinstance(data, bytes) else yaml.safe_dump(data).encode()
            out.writestr(info.filename, data)
        for name, data in (add or {}).items():
            out.writestr(name, data)
    return target


def _no_weights(rdf: dict) -> dict:
    del rdf["weights"]["keras_v3"]
    del rdf["weights"]["onnx"]["parent"]
    return rdf


def _channels_first(rdf: dict) -> dict:
    for tensor in rdf["inputs"] + rdf["outputs"]:
        tensor["axes"] = [tensor["axes"][0], tensor["axes"][3], tensor["axes"][1], tensor["axes"][2]]
    return rdf


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"add": {"../evil.txt": b"x"}}, "outside"),
        ({"add": {"/etc/evil": b"x"}}, "outside"),
        ({"drop": ("rdf.yaml",)}, "no rdf.yaml"),
        ({"rdf": b"type: model\nformat_version: [0.5\n"}, "not valid YAML"),
        ({"rdf": b"type: model\nformat_version: 0.4.10\n"}, "not supported"),
        ({"rdf": lambda rdf: {**rdf, "inputs": "image"}}, "invalid rdf.yaml"),
        ({"rdf": _no_weights}, "unsupported weights format"),
        ({"rdf": _channels_first}, "cannot run in EMViewer"),
    ],
)
def test_hostile_or_incompatible_packages_are_refused(package, tmp_path, change, message):
    bad = _rewrite(package, tmp_path / "bad.zip", **change)
    models_dir = tmp_path / "models"
    with pytest.raises(InputError, match=message) as caught:
        import_package(bad, models_dir, set(), name="bad")
    assert caught.value.path == str(bad) and "\n" not in str(caught.value)
    assert not list(models_dir.rglob("*")) if models_dir.exists() else True
    assert not (tmp_path / "evil.txt").exists()


def test_a_link_inside_the_package_is_refused(package, tmp_path):
    bad = _rewrite(package, tmp_path / "bad.zip")
    with zipfile.ZipFile(bad, "a") as archive:
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(InputError, match="link"):
        import_package(bad, tmp_path / "models", set())


def test_weights_that_do_not_reproduce_the_test_output_are_refused(package, tmp_path):
    other = _entry("membrane-mru32-1fm").path.read_bytes()
    bad = _rewrite(package, tmp_path / "bad.zip", drop=(f"{MODEL}.keras",), add={f"{MODEL}.keras": other})
    with pytest.raises(InputError, match="reproduce|invalid rdf"):
        import_package(bad, tmp_path / "models", set(), name="bad")
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").rglob("*.keras"))


def test_a_package_too_large_is_refused(package, tmp_path, monkeypatch):
    monkeypatch.setattr(bioimageio_import, "MAX_PACKAGE_BYTES", 1 << 20)  # the real limit is 2 GiB
    with pytest.raises(InputError, match="larger than"):
        import_package(package, tmp_path / "models", set())


def test_not_a_zip_is_refused(tmp_path):
    fake = tmp_path / "model.zip"
    fake.write_text("not a zip")
    with pytest.raises(InputError, match="not a zip"):
        import_package(fake, tmp_path / "models", set())


def test_a_foreign_package_needs_the_object(package, tmp_path):
    def foreign(rdf: dict) -> dict:
        del rdf["config"]["emviewer"]
        return rdf

    bad = _rewrite(package, tmp_path / "foreign.zip", rdf=foreign)
    with pytest.raises(InputError, match="--object"):
        import_package(bad, tmp_path / "models", set(), name="foreign")
    path = import_package(bad, tmp_path / "models", set(), name="foreign", object_key="membrane")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["object"] == "membrane" and "imported_from" in card
    assert card["input_reference"] == pytest.approx(list(_entry(MODEL).card.input_reference), abs=1e-6)


def test_the_readme_of_a_zoomed_model_says_to_resize_first():
    from emviewer.core.models.exchange_docs import readme_text

    drift = {"onnx_max_abs_diff": 0.0}
    assert "resize the image by 0.59" in readme_text({"object": "mito", "name": "m", "input_zoom": 0.59}, drift)
    assert "Resize first" not in readme_text({"object": "mito", "name": "m"}, drift)
