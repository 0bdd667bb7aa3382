#!/usr/bin/env python
"""Run the whole colorization pipeline: prepare -> train -> train-prior -> evaluate -> publish (pipelines/dvc.yaml).

    python main.py                                        # the flowers run (pipelines/flowers/params.yaml)
    python main.py --params pipelines/tiny/params.yaml    # the one-minute smoke test

The stage graph is `pipelines/dvc.yaml`, run by DVC (`pip install -e ".[mlops]"`). Each parameter set
runs in its own folder, outputs/pipelines/<set>/ by default, which holds a copy of dvc.yaml, the
parameters (relative paths made absolute), dvc.lock and every artifact. A re-run skips the stages
whose dependencies and parameters did not change; `--force` runs them all again.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from colorize.cli.train import training_environment
from colorize.flags import respell_flags

ROOT = Path(__file__).resolve().parent
STAGE_FILE = ROOT / "pipelines" / "dvc.yaml"
ARTIFACTS = {
    "data report": "data/data_report.md",
    "split manifest": "data/manifest.csv",
    "trained model": "model",
    "model with prior": "model-with-prior",
    "metrics": "evaluation/metrics.json",
    "evaluation report": "evaluation/report.md",
    "published model": "published",
    "model card": "published/README.md",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--params", default=str(ROOT / "pipelines" / "flowers" / "params.yaml"),
                        help="The parameter set: a params.yaml with the data `source` and prepare, train, train-prior, evaluate and "
                        "publish sections.")
    parser.add_argument("--run-dir", default=None,
                        help="Where the pipeline runs and keeps its artifacts. Default: outputs/pipelines/<set>, "
                        "<set> being the parameter file's folder name.")
    parser.add_argument("--repo-id", default=None, help="Push the published model to this Hub repository "
                        "(needs a token: HF_TOKEN or `hf auth login`). Default: the params' publish repo-id.")
    parser.add_argument("--force", action="store_true", help="Run every stage, changed or not.")
    return parser.parse_args(respell_flags(parser, sys.argv[1:] if argv is None else argv))


def absolute_paths(value):
    """Strings naming an existing path relative to the repository root become absolute paths."""
    if isinstance(value, dict):
        return {key: absolute_paths(item) for key, item in value.items()}
    if isinstance(value, str) and not Path(value).is_absolute() and (ROOT / value).exists():
        return str((ROOT / value).resolve())
    return value


def write_if_changed(path: Path, text: str):
    """Leave an identical file untouched (DVC compares contents, but people read modification times)."""
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def tool_environment() -> dict:
    """The environment for dvc and the stages: this interpreter's scripts (dvc, colorize) first on PATH, and every
    core for training (OMP_NUM_THREADS, when unset)."""
    scripts = str(Path(sys.executable).parent)
    return {**training_environment(), "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}


def set_up_run(params_file: Path, run_dir: Path, repo_id: str | None):
    """The run folder: a DVC project (no git needed) with the stage graph and these parameters."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / ".dvc").is_dir():
        subprocess.run(["dvc", "init", "--no-scm", "--quiet"], cwd=run_dir, check=True, env=tool_environment())
    params = absolute_paths(yaml.safe_load(params_file.read_text()))
    if repo_id is not None:
        params["publish"]["repo-id"] = repo_id
    stages = yaml.safe_load(STAGE_FILE.read_text())
    if not Path(str(params["source"])).exists():  # a Hub dataset id: its parameters identify it
        stages["stages"]["prepare"].pop("deps")
    card_text = (params.get("publish") or {}).get("card-text")
    if card_text:  # the model card's prose: a change of its files re-runs publish
        stages["stages"]["publish"]["deps"].append(card_text)
    write_if_changed(run_dir / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    write_if_changed(run_dir / "dvc.yaml", f"# Copied from {STAGE_FILE} by main.py\n" + yaml.safe_dump(stages, sort_keys=False))


def main(argv=None) -> int:
    args = parse_args(argv)
    if shutil.which("dvc", path=tool_environment()["PATH"]) is None:
        print('main.py: DVC is not installed; run: pip install -e ".[mlops]"', file=sys.stderr)
        return 2
    params_file = Path(args.params).resolve()
    run_dir = Path(args.run_dir or ROOT / "outputs" / "pipelines" / params_file.parent.name).resolve()
    set_up_run(params_file, run_dir, args.repo_id)
    print(f"Running the pipeline of {params_file} in {run_dir}", flush=True)
    result = subprocess.run(["dvc", "repro", *(["--force"] if args.force else [])], cwd=run_dir, env=tool_environment())
    if result.returncode != 0:
        print(f"main.py: the pipeline failed (dvc repro exit code {result.returncode})", file=sys.stderr)
        return result.returncode
    print("\nArtifacts:")
    for name, relative in ARTIFACTS.items():
        print(f"  {name:18} {run_dir / relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
