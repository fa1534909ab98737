"""``emviewer adapt``: figures before and after on the held-back slice, one-line refusals."""

from __future__ import annotations


def test_the_command_prints_before_and_after(sbem_model, fib_sem, tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("EMVIEWER_USER_DIR", str(tmp_path / "user"))
    code, out, err = run_cli(
        "adapt",
        "--images",
        fib_sem[0],
        "--labels",
        fib_sem[1],
        "--object",
        "mito",
        "--from",
        sbem_model,
        "--time-limit",
        "0.2",
        "--out",
        "mine",
    )
    assert code == 0, err
    assert "held-back slice(s) train_080" in out and "F1 " in out and "->" in out
    assert "trained at zoom 0." in out and "px wide" in out  # Lucchi++ mitochondria are wider than SBEM's
    written = tmp_path / "user" / "models" / "mito" / "mine.keras"
    assert ("wrote" in out) == written.exists()
    code, _, err = run_cli(
        "adapt", "--images", fib_sem[0], "--labels", fib_sem[1], "--object", "nuclei", "--from", sbem_model
    )
    assert code == 2 and "segments 'mito', not 'nuclei'" in err and err.count("\n") == 1
    code, _, err = run_cli(
        "adapt", "--images", fib_sem[0], "--labels", fib_sem[1], "--object", "mito", "--zoom", "3", "--from", sbem_model
    )
    assert code == 2 and "'3' is not 'auto' or a zoom from 0.25 to 2" in err
