"""Fine-tuning as a new user meets it: mistakes fail in one line, before anything is loaded or written, and the
defaults suit a fine-tune (the model's own working size, a warm-up that fits the run, a quiet resume)."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import colour_image, make_tiny_pipeline, run_script

from colorize import ColorizationPipeline
from colorize.cli import main as colorize_main

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FAST = ["--train_batch_size", "4", "--num_inference_steps", "2", "--num_validation_images", "1", "--seed", "0"]


def colorize_train(*args, cwd=ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """`colorize train ARGS` as a user runs it (OMP_NUM_THREADS unset: `colorize train` sets it)."""
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    return subprocess.run([str(BIN / "colorize"), "train", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A saved tiny pipeline working at 16 px: the model being fine-tuned."""
    folder = tmp_path_factory.mktemp("pretrained") / "model"
    make_tiny_pipeline(seed=1, resolution=16).save_pretrained(folder)
    return folder


def broken_image_folder(root: Path) -> Path:
    root.mkdir()
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return root


def mistake_arguments(mistake: str, image_folder: Path, pretrained: Path, tmp_path: Path) -> tuple[list, str, Path]:
    """(arguments of `colorize train`, the words its one-line error must hold, its output folder) for ``mistake``."""
    data, model, extra = image_folder, pretrained, []
    output_dir = tmp_path / "run"
    if mistake == "missing data":
        data, expected = tmp_path / "no-such-folder", "no such folder"
    elif mistake == "empty folder":
        (tmp_path / "empty").mkdir()
        data, expected = tmp_path / "empty", "holds no image files"
    elif mistake == "only a broken image":
        data, expected = broken_image_folder(tmp_path / "broken"), "No usable training images"
    elif mistake == "odd resolution":  # the tiny UNet halves once (the small preset: 3 times, and 36 fails)
        extra, expected = ["--resolution", "17"], "--resolution 17 is not a multiple of 2"
    elif mistake == "timestep bias beyond the schedule":
        extra = ["--timestep-bias-strategy", "range", "--timestep-bias-multiplier", "2",
                 "--timestep-bias-begin", "900", "--timestep-bias-end", "5000"]
        expected = "range [900, 5000) must lie within [0, 1000]"
    elif mistake == "unknown checkpoint":
        (output_dir / "checkpoint-500").mkdir(parents=True)
        extra, expected = ["--resume-from-checkpoint", "checkpoint-999"], "has checkpoint-500"
    else:
        model, expected = "someone/not-downloaded", "--pretrained_model_name_or_path someone/not-downloaded"
    arguments = ["--pretrained-model-name-or-path", model, "--train-data-dir", data, "--output-dir", output_dir,
                 "--max-train-steps", "2", *extra]
    return [str(argument) for argument in arguments], expected, output_dir


def assert_nothing_written(mistake: str, output_dir: Path):
    if mistake == "unknown checkpoint":
        assert sorted(p.name for p in output_dir.iterdir()) == ["checkpoint-500"]  # nothing added
    else:
        assert not output_dir.exists()


@pytest.mark.parametrize("mistake", ["missing data", "empty folder", "only a broken image", "odd resolution",
                                     "timestep bias beyond the schedule", "unknown checkpoint", "uncached Hub model"])
def test_a_mistake_fails_in_one_line_and_leaves_no_output(mistake, image_folder, pretrained, tmp_path, capsys):
    """The script's own checks, run in-process (the next test runs one of them as a user does, through
    `colorize train` and accelerate): each is one line on stderr and exit status 2, not a traceback, before
    anything is written."""
    from accelerate.state import AcceleratorState

    arguments, expected, output_dir = mistake_arguments(mistake, image_folder, pretrained, tmp_path)
    try:
        with pytest.raises(SystemExit) as stopped:
            run_script("train_colorization.py", *arguments)  # hyphenated, as `colorize train` takes them
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert stopped.value.code == 2
    assert message.startswith("train_colorization.py: error:") and expected in message, message
    assert_nothing_written(mistake, output_dir)


@pytest.mark.slow
def test_a_mistake_through_colorize_train_is_one_line_without_traceback(image_folder, pretrained, tmp_path):
    arguments, expected, output_dir = mistake_arguments("missing data", image_folder, pretrained, tmp_path)
    result = colorize_train(*arguments)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("train_colorization.py: error:") and expected in last_line, result.stderr[-2000:]
    assert "Steps" not in result.stderr  # failed before training
    assert_nothing_written("missing data", output_dir)


@pytest.mark.slow
def test_fine_tuning_keeps_the_model_size_fits_the_warm_up_and_resumes_quietly(image_folder, pretrained, tmp_path):
    output_dir = tmp_path / "tuned"
    common = ["--pretrained_model_name_or_path", pretrained, "--train-data-dir", image_folder, "--output-dir", output_dir,
              "--learning-rate", "1e-4", "--checkpointing-steps", "2", "--validation-steps", "0", "--use-ema", *FAST]
    first = colorize_train(*common, "--max-train-steps", "2", "--lr-warmup-steps", "500")
    assert first.returncode == 0, first.stderr[-3000:]
    log = first.stderr + first.stdout
    assert "--resolution 16: the pretrained UNet's sample_size" in log
    assert "--lr_warmup_steps 500 is as long as the 2-step run" in log
    assert f"torch threads per process = {len(os.sched_getaffinity(0))}" in log  # OMP_NUM_THREADS was unset
    assert ColorizationPipeline.from_pretrained(output_dir).unet.config.sample_size == 16

    resumed = colorize_train(*common, "--max-train-steps", "4", "--resume-from-checkpoint", "latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stderr + resumed.stdout
    assert "Resuming from checkpoint" in log and "at step 2" in log
    for spurious in ("FutureWarning", "were passed to UNet2DModel", "were passed to ImageEncoder"):
        assert spurious not in log


def test_a_resolution_the_small_unet_cannot_take_is_refused_with_the_nearest_that_work():
    from colorize.training.starting_point import choose_resolution

    with pytest.raises(ValueError, match="--resolution 36 is not a multiple of 8, the UNet's downsampling factor: use 32 or 40"):
        choose_resolution(36, {}, "small")


@pytest.mark.parametrize("flags, expected", [
    (["--timestep_bias_multiplier", "0"], "timestep_bias_multiplier must be positive, got 0.0"),
    (["--timestep_bias_portion", "1.5"], "timestep_bias_portion must be between 0 and 1, got 1.5"),
    (["--timestep_bias_begin", "600", "--timestep_bias_end", "500"], "timestep_bias_begin must be at least 0"),
])
def test_bad_timestep_bias_options_stop_at_parsing(flags, expected, tmp_path, capsys):
    from colorize.training import config

    with pytest.raises(SystemExit) as stopped:
        config.parse_args(config.training_parser("test"), ["--train_data_dir", str(tmp_path), *flags])
    assert stopped.value.code == 2 and expected in capsys.readouterr().err


def test_colorize_on_a_folder_without_images_exits_non_zero_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    assert colorize_main([str(tmp_path / "empty"), "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no images found" in error
    assert not (tmp_path / "out").exists()


def test_an_uncached_hub_model_says_how_to_get_it(tmp_path, capsys):
    """Tests run with HF_HUB_OFFLINE=1 and an empty cache (conftest): the Python error and the CLI's line say
    how to fill the cache, with no diffusers 'stacktrace above' that the CLI never shows."""
    with pytest.raises(OSError, match="hf download someone/not-downloaded") as raised:
        ColorizationPipeline.from_pretrained("someone/not-downloaded")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    colour_image(16, 16).save(tmp_path / "photo.png")
    assert colorize_main([str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--model", "someone/not-downloaded"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "hf download" in error and "stacktrace" not in error


def test_a_folder_named_colorize_does_not_shadow_the_installed_package(tmp_path):
    """A clone called `colorize` in the working folder (an empty folder stands in for it) must not hide the
    package: the install puts a regular package on sys.path, which wins over a namespace folder."""
    (tmp_path / "colorize").mkdir()
    code = "from colorize import ColorizationPipeline; print(ColorizationPipeline.__name__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def readme_recipe() -> tuple[list[str], str]:
    """The README's fine-tuning recipe: its shell commands (continuation lines joined, comments and `ls`
    dropped) and its Python snippet."""
    text = (ROOT / "README.md").read_text()
    after = text[text.index("<!-- recipe: fine-tune"):]
    blocks = re.findall(r"```(\w+)\n(.*?)```", after, flags=re.S)[:2]
    assert [language for language, _ in blocks] == ["bash", "python"]
    shell = blocks[0][1].replace("\\\n", " ")
    commands = [line.strip() for line in shell.splitlines() if line.strip() and not line.strip().startswith(("#", "ls "))]
    return commands, blocks[1][1]


# The recipe at a few steps, offline: (README text, what the test runs instead); each must occur.
TINY_BUDGET = {
    "--max-train-steps 300": "--max-train-steps 2",
    "--checkpointing-steps 100": "--checkpointing-steps 1",
    "--validation-steps 100": "--validation-steps 2",
    "--num-samples 4": "--num-samples 2",
    " --repo-id you/my-colorizer": "",  # the Hub is out of reach here: the dry run
}


@pytest.mark.slow
def test_the_readme_fine_tuning_recipe_runs_as_written(tmp_path):
    commands, python_code = readme_recipe()
    for old, new in TINY_BUDGET.items():
        assert any(old in command for command in commands), f"the README recipe no longer has {old!r}"
        commands = [command.replace(old, new) for command in commands]
    for folder, count, rgb in (("my_photos", 12, (200, 60, 40)), ("my_test_photos", 3, (60, 160, 60))):
        (tmp_path / folder).mkdir()
        for i in range(count):
            colour_image(48, 40, rgb=rgb, seed=i).save(tmp_path / folder / f"{i}.jpg")
    (tmp_path / "old_photos").mkdir()
    colour_image(48, 40, seed=7).convert("L").save(tmp_path / "old_photos" / "grandma.jpg")
    (tmp_path / "models").symlink_to(ROOT / "models")  # the recipe runs from the clone's root
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    # (resuming with --resume-from-checkpoint latest is tested by test_fine_tuning_keeps_the_model_size_...)
    for command in commands:
        result = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    assert (tmp_path / "colorized" / "grandma.jpg").is_file()
    assert (tmp_path / "eval" / "mine" / "metrics.json").is_file() and (tmp_path / "eval" / "shipped" / "metrics.json").is_file()
    assert (tmp_path / "my-colorizer-hub" / "README.md").is_file()
    # fine-tuning models/flowers without --resolution kept its training resolution (48 px since the distilled release)
    assert json.loads((tmp_path / "my-colorizer" / "unet" / "config.json").read_text())["sample_size"] == 48
    result = subprocess.run([sys.executable, "-c", python_code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "grandma_colour.jpg").is_file()
