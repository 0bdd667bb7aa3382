"""The DVC pipeline (pipelines/dvc.yaml via main.py, run as a script) on the tiny parameter set: a full run, a
re-run that skips every stage, and a training-parameter change that re-runs train, train-prior, evaluate and
publish only."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_script

TINY = ROOT / "pipelines" / "tiny" / "params.yaml"
STAGES = ["prepare", "train", "train-prior", "evaluate", "publish"]


def run_main(*argv) -> int:
    """`python main.py ARGV...`'s exit status."""
    with pytest.raises(SystemExit) as exit_info:
        run_script("main.py", *argv)
    return exit_info.value.code


def stages_run(output: str) -> dict[str, str]:
    status = {}
    for stage in STAGES:
        if f"Running stage '{stage}'" in output:
            status[stage] = "ran"
        elif f"Stage '{stage}' didn't change, skipping" in output:
            status[stage] = "skipped"
    return status


@pytest.mark.slow
def test_tiny_pipeline_runs_then_skips_then_reruns_only_what_a_parameter_change_touches(tmp_path, capfd):
    run_dir = tmp_path / "run"
    assert run_main("--params", TINY, "--run-dir", run_dir) == 0
    output = capfd.readouterr().out
    assert stages_run(output) == dict.fromkeys(STAGES, "ran")
    for artifact in ("data/manifest.csv", "data/data_report.md", "model/model_index.json",
                     "model-with-prior/chroma_prior/config.json", "evaluation/metrics.json", "evaluation/report.md",
                     "published/README.md", "published/unet/diffusion_pytorch_model.safetensors"):
        assert (run_dir / artifact).is_file(), artifact
        assert str(run_dir / Path(artifact).parts[0]) in output  # main.py says where the artifacts are
    report = json.loads((run_dir / "data" / "data_report.json").read_text())
    assert report["dropped"] == {"grayscale": 1, "duplicate": 1} and report["splits"] == {
        "train": 12, "validation": 6, "test": 6}
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert metrics["num_images"] == 6  # scored on the test split
    assert "dry run, nothing pushed" in output

    assert run_main("--params", TINY, "--run-dir", run_dir) == 0
    assert stages_run(capfd.readouterr().out) == dict.fromkeys(STAGES, "skipped")

    params = yaml.safe_load(TINY.read_text())
    params["train"]["max-train-steps"] = 4
    changed = tmp_path / "params.yaml"
    changed.write_text(yaml.safe_dump(params))
    assert run_main("--params", changed, "--run-dir", run_dir) == 0
    assert stages_run(capfd.readouterr().out) == {"prepare": "skipped", **dict.fromkeys(STAGES[1:], "ran")}
    records = [json.loads(path.read_text()) for path in (run_dir / "published" / "budget").glob("*.json")]
    assert len(records) == 2  # DVC cleared the old outputs first: this run's UNet training and prior fitting
    assert sorted(record["end_step"] for record in records if "train_colorization.py" in record["command"]) == [4]
    assert sum("train_chroma_prior.py" in record["command"] for record in records) == 1


def test_without_dvc_main_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    assert run_main("--params", TINY) == 2
    assert "pip install" in capsys.readouterr().err
