"""`accelerate launch train_colorization.py` end to end on a tiny synthetic folder (one launch at a time)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import torch
from conftest import make_tiny_pipeline, run_script

from colorize import ColorizationPipeline

ROOT = Path(__file__).resolve().parent.parent
TINY_RUN = [
    "--model_preset", "tiny", "--resolution", "16", "--train_batch_size", "4", "--lr_warmup_steps", "0",
    "--num_inference_steps", "2", "--num_validation_images", "2", "--seed", "0",
]


def launch(*args, processes: int = 1, timeout: int = 300) -> str:
    """Run the training script through `accelerate launch` with the repo's config; returns its output. Several
    processes get 120 s and one more try: a gloo rendezvous on these 2 cores has, rarely, left a worker waiting
    forever (once in a CI run; the run takes about 8 s). On a timeout the whole process group is killed, so no
    worker is left behind, and the output folder is removed before the next try."""
    env = dict(os.environ, OMP_NUM_THREADS="1" if processes > 1 else os.environ.get("OMP_NUM_THREADS", "2"))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "accelerate_config.yaml")]
    if processes > 1:
        # Several CPU processes: torchrun through --multi_gpu, with ACCELERATE_USE_CPU (see README, "Training").
        command += ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", "29517"]
        env["ACCELERATE_USE_CPU"] = "true"
        timeout = min(timeout, 120)
    command += [str(ROOT / "train_colorization.py"), *map(str, args)]
    tries = 2 if processes > 1 else 1
    for attempt in range(1, tries + 1):
        run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
        try:
            stdout, stderr = run.communicate(timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
            if attempt == tries:
                raise
            if "--output_dir" in args:  # the next try starts clean
                shutil.rmtree(args[args.index("--output_dir") + 1], ignore_errors=True)
    output = stdout + stderr
    assert run.returncode == 0, output[-5000:]
    return output


def load(path) -> ColorizationPipeline:
    pipeline = ColorizationPipeline.from_pretrained(path)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def ema_step(checkpoint: Path) -> int:
    return json.loads((checkpoint / "unet_ema" / "config.json").read_text())["optimization_step"]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the models saved in ``folder`` (a checkpoint or a pipeline), by sub-folder and name."""
    from safetensors.torch import load_file
    return {f"{file.parent.name}/{name}": tensor for file in sorted(folder.glob("*/*.safetensors"))
            for name, tensor in load_file(file).items()}


def max_difference(first: dict, second: dict) -> float:
    assert first.keys() == second.keys() and first
    return max((first[name].double() - second[name].double()).abs().max().item() for name in first)


@pytest.fixture(scope="module")
def trained_run(image_folder, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run") / "out"
    log = launch(
        "--train_data_dir", image_folder, "--output_dir", output_dir, *TINY_RUN, "--max_train_steps", "4",
        "--checkpointing_steps", "2", "--validation_steps", "2", "--use_ema",
    )
    return output_dir, log


@pytest.mark.slow
def test_training_reports_skipped_images_and_writes_everything(trained_run, image_folder):
    output_dir, log = trained_run
    assert "kept 12 images, skipped 2" in log and "1 undecodable" in log and "1 grayscale" in log
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not list(output_dir.glob("*.tmp"))
    assert (output_dir / "checkpoint-4" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert ema_step(output_dir / "checkpoint-4") == 4
    assert {p.name for p in (output_dir / "validation").iterdir()} == {
        "grid-000002.png", "grid-000004.png", "denoising-000002.png", "denoising-000004.png"
    }
    assert list((output_dir / "logs").rglob("events.out.tfevents.*"))
    assert "Validation at step 4: 1 photo: PSNR " in log and "(gray " in log  # `colorize evaluate`'s summary line
    held_out = (output_dir / "validation_split.txt").read_text().split()
    assert len(held_out) == 1 and held_out[0].startswith(str(image_folder))


@pytest.mark.slow
def test_final_pipeline_loads_and_holds_the_ema_weights(trained_run):
    output_dir, _ = trained_run
    pipeline = load(output_dir)
    assert pipeline.unet.config.sample_size == 16 and pipeline.config.chroma_scale == 4.4
    assert type(pipeline.scheduler).__name__ == "DPMSolverMultistepScheduler"  # the inference default
    assert pipeline.scheduler.config.prediction_type == "v_prediction"
    ema = ColorizationPipeline.from_pretrained(output_dir).unet.state_dict()
    from diffusers import UNet2DModel
    ema_checkpoint = UNet2DModel.from_pretrained(output_dir / "checkpoint-4" / "unet_ema").state_dict()
    raw_checkpoint = UNet2DModel.from_pretrained(output_dir / "checkpoint-4" / "unet").state_dict()
    assert all(torch.equal(ema[name], ema_checkpoint[name]) for name in ema)
    assert any(not torch.equal(ema[name], raw_checkpoint[name]) for name in ema)
    # the image encoder (on by default) ships in the pipeline, its trained projection as the EMA holds it
    from colorize import ImageEncoder
    assert isinstance(pipeline.image_encoder, ImageEncoder)
    assert pipeline.unet.config.in_channels == 3 + pipeline.image_encoder.config.projection_channels
    encoder_ema = ImageEncoder.from_pretrained(output_dir / "checkpoint-4" / "image_encoder_ema").state_dict()
    assert torch.equal(pipeline.image_encoder.projection.weight, encoder_ema["projection.weight"])
    from PIL import Image
    assert pipeline(Image.new("RGB", (19, 23), "gray"), num_inference_steps=2).images[0].size == (19, 23)


@pytest.mark.slow
def test_a_run_resumed_half_way_ends_with_the_weights_of_the_uninterrupted_run(trained_run, image_folder, tmp_path):
    """The 4-step run, resumed from its checkpoint-2 (latest once checkpoint-4 is gone) to step 4, ends where the
    uninterrupted run did: model, optimizer, LR schedule, EMA (shadow and step counter), data order (the resume
    is mid-epoch: 3 batches an epoch), crops, noise and feature dropout all continue exactly."""
    output_dir = tmp_path / "out"
    shutil.copytree(trained_run[0], output_dir)
    shutil.rmtree(output_dir / "checkpoint-4")  # latest left: checkpoint-2
    (output_dir / "checkpoint-3.tmp").mkdir()  # a half-written checkpoint must be ignored
    log = launch(
        "--train_data_dir", image_folder, "--output_dir", output_dir, *TINY_RUN, "--max_train_steps", "4",
        "--checkpointing_steps", "2", "--validation_steps", "0", "--use_ema", "--resume_from_checkpoint", "latest",
        "--checkpoints_total_limit", "1",
    )
    assert f"Resuming from checkpoint {output_dir / 'checkpoint-2'} at step 2" in log
    # checkpoint-4 only: the older one went when the limit of 1 was reached; the half-written one was removed
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-4"]
    # The EMA's step counter was restored at 2 and advanced by the 2 new steps only.
    assert ema_step(output_dir / "checkpoint-4") == 4
    for folder in ("checkpoint-4", "."):  # raw and EMA weights of the checkpoint; the saved (EMA) pipeline
        assert max_difference(weights(trained_run[0] / folder), weights(output_dir / folder)) <= 1e-6
    load(output_dir)


@pytest.mark.slow
def test_two_process_cpu_launch_trains(image_folder, tmp_path):
    log = launch(
        "--train_data_dir", image_folder, "--output_dir", tmp_path / "out", *TINY_RUN, "--train_batch_size", "2",
        "--max_train_steps", "3", "--checkpointing_steps", "3", "--validation_steps", "0",
        processes=2,
    )
    assert "MULTI_CPU" in log and "Num processes: 2" in log
    assert "total (parallel x accumulation) = 4" in log
    assert (tmp_path / "out" / "checkpoint-3").is_dir()
    load(tmp_path / "out")


@pytest.mark.slow
def test_fine_tuning_starts_from_the_pretrained_weights_and_config(image_folder, tmp_path):
    pretrained = make_tiny_pipeline(seed=123)
    pretrained.scheduler = pretrained.scheduler.from_config(pretrained.scheduler.config, prediction_type="epsilon")
    pretrained.register_to_config(chroma_scale=3.0, working_size=24,  # sampled at 1.5x its training resolution
                                  chroma_sharpening=0.7, detail_transfer=0.5)
    pretrained.save_pretrained(tmp_path / "pretrained")
    launch(
        "--train_data_dir", image_folder, "--output_dir", tmp_path / "out", *TINY_RUN,
        "--pretrained_model_name_or_path", tmp_path / "pretrained", "--max_train_steps", "1",
        "--learning_rate", "1e-6", "--checkpointing_steps", "100", "--validation_steps", "0", "--no-image_encoder",
    )
    tuned = load(tmp_path / "out")
    assert tuned.config.chroma_scale == 3.0 and tuned.config.chroma_sharpening == 0.7  # calibrations kept
    assert tuned.config.detail_transfer == 0.5
    assert tuned.scheduler.config.prediction_type == "epsilon"  # kept, though v_prediction is the default
    assert (tuned.unet.config.sample_size, tuned.config.working_size) == (16, 24)  # same resolution: kept
    start = pretrained.unet.state_dict()
    fresh = make_tiny_pipeline(seed=999).unet.state_dict()
    weights = tuned.unet.state_dict()
    distance_to_start = max((weights[n] - start[n]).abs().max().item() for n in start)
    distance_to_fresh = max((weights[n] - fresh[n]).abs().max().item() for n in start)
    assert 0 < distance_to_start < 1e-4 < 0.01 < distance_to_fresh  # one small step away from the start


def test_a_fine_tune_keeps_the_calibrated_working_size_only_at_the_same_resolution(tmp_path):
    from colorize.training import config
    from colorize.training.starting_point import load_starting_point

    pretrained = make_tiny_pipeline()
    pretrained.register_to_config(working_size=24)
    pretrained.save_pretrained(tmp_path / "pretrained")
    args = config.parse_args(config.training_parser("test"), [
        "--train_data_dir", str(tmp_path), "--no-image_encoder", "--pretrained_model_name_or_path", str(tmp_path / "pretrained"),
    ])
    for resolution, working_size in ((16, 24), (32, None)):  # the tiny UNet was trained at 16
        args.resolution = resolution
        start = load_starting_point(args)
        assert start.working_size == working_size and start.unet.config.sample_size == resolution


@pytest.mark.slow
def test_push_to_hub_uploads_the_pipeline_with_a_model_card(image_folder, tmp_path):
    """In-process so that HfApi can be mocked: no network."""
    from accelerate.state import AcceleratorState

    try:
        with mock.patch("colorize.hub.HfApi") as api_class:
            api_class.return_value.create_repo.return_value.repo_id = "someone/colorizer"
            run_script(
                "train_colorization.py", "--train_data_dir", image_folder, "--output_dir", tmp_path / "colorizer",
                *TINY_RUN, "--max_train_steps", "1", "--checkpointing_steps", "1", "--validation_steps", "1",
                "--push_to_hub", "--hub_model_id", "someone/colorizer", "--hub_token", "hf_test",
            )
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    api = api_class.return_value
    api_class.assert_called_once_with(token="hf_test")
    assert api.create_repo.call_args.kwargs["repo_id"] == "someone/colorizer"
    upload = api.upload_folder.call_args.kwargs
    assert upload["repo_id"] == "someone/colorizer" and upload["folder_path"] == str(tmp_path / "colorizer")
    assert "checkpoint-*" in upload["ignore_patterns"]
    card = (tmp_path / "colorizer" / "README.md").read_text()
    assert "library_name: diffusers" in card and "someone/colorizer" in card and "--max_train_steps 1" in card
    assert "| PSNR (dB) |" in card and "## Training budget" in card  # the last validation, the budget record


@pytest.mark.slow
def test_unwritable_output_dir_fails_before_training(image_folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, str(ROOT / "train_colorization.py"), "--train_data_dir", str(image_folder),
         "--output_dir", str(blocker / "out"), *TINY_RUN],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "Cannot write to --output_dir" in result.stderr and "Steps" not in result.stderr


@pytest.mark.slow
def test_hub_style_dataset_with_bf16_and_gradient_accumulation(tmp_path):
    """--dataset_name with another image column (a local parquet dataset stands in for a Hub id)."""
    from conftest import colour_image
    from datasets import Dataset, Features, Image, Value

    files = []
    for i in range(6):
        colour_image(24, 20, seed=i).save(tmp_path / f"{i}.png")
        files.append(str(tmp_path / f"{i}.png"))
    features = Features({"picture": Image(), "caption": Value("string")})
    (tmp_path / "dataset" / "data").mkdir(parents=True)
    Dataset.from_dict({"picture": files, "caption": ["a flower"] * 6}, features=features).to_parquet(
        tmp_path / "dataset" / "data" / "train-00000-of-00001.parquet"
    )
    log = launch(
        "--dataset_name", tmp_path / "dataset", "--image_column", "picture", "--output_dir", tmp_path / "out",
        *TINY_RUN, "--train_batch_size", "2", "--gradient_accumulation_steps", "2", "--mixed_precision", "bf16",
        "--max_train_steps", "2", "--checkpointing_steps", "2", "--validation_steps", "2",
    )
    assert "Mixed precision type: bf16" in log
    assert "Num training images = 5, validation images = 1" in log
    assert "total (parallel x accumulation) = 4" in log and "Validation at step 2" in log
    assert len((tmp_path / "out" / "validation_split.txt").read_text().split()) == 1
    load(tmp_path / "out")


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_latest_continues_from_the_last_complete_checkpoint(image_folder, tmp_path):
    output_dir = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "accelerate_config.yaml"),
               str(ROOT / "train_colorization.py"), "--train_data_dir", str(image_folder), "--output_dir",
               str(output_dir), *TINY_RUN, "--max_train_steps", "100000", "--checkpointing_steps", "2",
               "--checkpoints_total_limit", "2", "--validation_steps", "0"]
    run = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 240
        while len(list(output_dir.glob("checkpoint-*[0-9]"))) < 2:
            assert run.poll() is None and time.time() < deadline, "training did not write two checkpoints"
            time.sleep(0.2)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # no clean-up code runs: as after a power cut or the OOM killer
        run.wait()
    complete = sorted(int(path.name.split("-")[1]) for path in output_dir.glob("checkpoint-*[0-9]"))
    latest = complete[-1]
    for step in complete:  # every complete checkpoint is whole: the model, EMA, optimizer and RNG states
        folder = output_dir / f"checkpoint-{step}"
        assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file() and (folder / "optimizer.bin").is_file()

    log = launch("--train_data_dir", image_folder, "--output_dir", output_dir, *TINY_RUN,
                 "--max_train_steps", latest + 2, "--checkpointing_steps", "2", "--checkpoints_total_limit", "2",
                 "--validation_steps", "0", "--resume_from_checkpoint", "latest")
    assert f"Resuming from checkpoint {output_dir / f'checkpoint-{latest}'} at step {latest}" in log
    assert (output_dir / f"checkpoint-{latest + 2}").is_dir() and not list(output_dir.glob("*.tmp"))
    assert (output_dir / "model_index.json").is_file()


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_disk_is_a_clear_error_before_training(tmp_path, monkeypatch, error):
    from colorize.training.config import check_output_dir

    def refuse(self, data):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(ValueError, match=f"Cannot write to --output_dir .*{os.strerror(error)}"):
        check_output_dir(str(tmp_path / "out"))


@pytest.mark.slow
def test_data_on_device_trains_and_resumes_exactly(image_folder, tmp_path):
    """--data_on_device (batches cut from photos held on the device) trains, and a resume from its step-4
    checkpoint ends where the uninterrupted 8-step run did."""
    run = ["--train_data_dir", image_folder, *TINY_RUN, "--data_on_device", "--use_ema", "--checkpointing_steps", "4",
           "--lr_scheduler", "constant", "--validation_steps", "8", "--max_train_steps", "8"]
    log = launch(*run, "--output_dir", tmp_path / "whole")
    assert "Validation at step 8" in log
    shutil.copytree(tmp_path / "whole" / "checkpoint-4", tmp_path / "halves" / "checkpoint-4")
    launch(*run, "--output_dir", tmp_path / "halves", "--resume_from_checkpoint", "latest")
    assert max_difference(weights(tmp_path / "whole" / "checkpoint-8"), weights(tmp_path / "halves" / "checkpoint-8")) <= 1e-6


@pytest.mark.slow
def test_two_machines_on_localhost_train_in_step_and_end_with_the_same_weights(image_folder, tmp_path):
    """`accelerate launch --num_machines 2 --machine_rank R --main_process_ip 127.0.0.1` twice (gloo on CPU, one
    process a machine, one shared output folder), with validation (main process only) and checkpoints on: both
    finish (no deadlock, each waits at most 400 s) with identical weights."""
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    machines = [
        subprocess.Popen(
            [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "accelerate_config.yaml"),
             "--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
             "--main_process_ip", "127.0.0.1", "--main_process_port", "29531",
             str(ROOT / "train_colorization.py"), "--train_data_dir", str(image_folder), "--output_dir",
             str(tmp_path / "out"), *TINY_RUN, "--train_batch_size", "2", "--max_train_steps", "4",
             "--checkpointing_steps", "2", "--validation_steps", "2", "--use_ema"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in (0, 1)
    ]
    try:
        logs = [machine.communicate(timeout=400)[0] for machine in machines]
    finally:
        for machine in machines:
            machine.kill()
    assert [machine.returncode for machine in machines] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "Num processes: 2" in logs[0] and "total (parallel x accumulation) = 4" in logs[0]
    assert "Validation at step 4" in logs[0] and "Validation at step" not in logs[1]
    assert "Weights identical on all 2 processes" in logs[0]
    checkpoint = tmp_path / "out" / "checkpoint-4"
    assert {"random_states_0.pkl", "random_states_1.pkl", "unet", "unet_ema"} <= {p.name for p in checkpoint.iterdir()}
    assert not list((tmp_path / "out").glob("*.tmp"))
    load(tmp_path / "out")
