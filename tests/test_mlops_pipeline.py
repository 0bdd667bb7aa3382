"""The DVC pipeline (pipelines/dvc.yaml via main.py) on the tiny parameter set: a full run, a re-run that
skips every stage, and a training-parameter change that re-runs train, evaluate and publish only."""

import json
from pathlib import Path

import pytest
import yaml

import main as pipeline_main

TINY = Path(pipeline_main.ROOT) / "pipelines" / "tiny" / "params.yaml"
STAGES = ["prepare", "train", "evaluate", "publish"]


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
    assert pipeline_main.main(["--params", str(TINY), "--run-dir", str(run_dir)]) == 0
    output = capfd.readouterr().out
    assert stages_run(output) == dict.fromkeys(STAGES, "ran")
    for artifact in ("data/manifest.csv", "data/data_report.md", "model/model_index.json",
                     "evaluation/metrics.json", "evaluation/report.md", "published/README.md",
                     "published/unet/diffusion_pytorch_model.safetensors"):
        assert (run_dir / artifact).is_file(), artifact
        assert str(run_dir / Path(artifact).parts[0]) in output  # main.py says where the artifacts are
    report = json.loads((run_dir / "data" / "data_report.json").read_text())
    assert report["dropped"] == {"grayscale": 1, "duplicate": 1} and report["splits"] == {
        "train": 12, "validation": 6, "test": 6}
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    assert metrics["num_images"] == 6  # scored on the test split
    assert "dry run, nothing pushed" in output

    assert pipeline_main.main(["--params", str(TINY), "--run-dir", str(run_dir)]) == 0
    assert stages_run(capfd.readouterr().out) == dict.fromkeys(STAGES, "skipped")

    params = yaml.safe_load(TINY.read_text())
    params["train"]["max-train-steps"] = 4
    changed = tmp_path / "params.yaml"
    changed.write_text(yaml.safe_dump(params))
    assert pipeline_main.main(["--params", str(changed), "--run-dir", str(run_dir)]) == 0
    assert stages_run(capfd.readouterr().out) == {"prepare": "skipped", "train": "ran", "evaluate": "ran", "publish": "ran"}
    records = list((run_dir / "published" / "budget").glob("*.json"))  # DVC cleared the old outputs first
    assert len(records) == 1 and json.loads(records[0].read_text())["end_step"] == 4


def test_without_dvc_main_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(pipeline_main.shutil, "which", lambda *args, **kwargs: None)
    assert pipeline_main.main(["--params", str(TINY)]) == 2
    assert "pip install" in capsys.readouterr().err
