import numpy as np
import pytest
from conftest import colour_image, gray_image
from PIL import Image

from colorize.cli import main


def test_colorizes_a_folder_keeping_sizes_formats_and_layout(model_dir, image_folder, tmp_path, capsys):
    code = main([str(image_folder), "-o", str(tmp_path / "out"), "--model", str(model_dir), "--num-inference-steps", "2"])
    summary = capsys.readouterr()
    assert code == 1  # the corrupt file failed...
    assert "failed" in summary.err + summary.out and "broken.jpg" in summary.err + summary.out
    assert "13 done, 0 skipped, 1 failed" in summary.out  # ...after all the others were done
    output = tmp_path / "out" / "red" / "0.png"
    assert Image.open(output).size == (40, 48) and Image.open(output).mode == "RGB"
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_never_overwrites_without_the_flag(model_dir, tmp_path, capsys):
    source = tmp_path / "photo.jpg"
    colour_image(30, 20).save(source)
    existing = tmp_path / "out" / "photo.jpg"
    existing.parent.mkdir()
    existing.write_bytes(b"precious")
    arguments = [str(source), "-o", str(tmp_path / "out"), "--model", str(model_dir), "--num-inference-steps", "2"]
    assert main(arguments) == 0
    assert existing.read_bytes() == b"precious" and "0 done, 1 skipped" in capsys.readouterr().out
    assert main(arguments + ["--overwrite"]) == 0
    assert Image.open(existing).size == (30, 20) and Image.open(existing).format == "JPEG"


def test_globs_and_missing_inputs(model_dir, tmp_path, capsys):
    for name in ("a.png", "b.png"):
        colour_image(16, 16).save(tmp_path / name)
    assert main([str(tmp_path / "*.png"), "-o", str(tmp_path / "out"), "--model", str(model_dir),
                 "--num-inference-steps", "1", "--scheduler", "dpm"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert main([str(tmp_path / "missing.jpg"), "--model", str(model_dir)]) == 2
    assert "No such file" in capsys.readouterr().err


def test_missing_model_is_one_clear_line(tmp_path, capsys):
    colour_image(16, 16).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "--model", str(tmp_path / "no-model")]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def test_side_by_side_shows_gray_colorized_and_original_at_full_size(model_dir, tmp_path):
    colour_image(30, 20).save(tmp_path / "colour.png")
    gray_image(30, 20).save(tmp_path / "gray.png")
    inputs = [str(tmp_path / "colour.png"), str(tmp_path / "gray.png")]
    assert main(inputs + ["-o", str(tmp_path / "out"), "--model", str(model_dir), "--num-inference-steps", "1",
                          "--side-by-side"]) == 0
    assert Image.open(tmp_path / "out" / "colour.png").size == (3 * 30 + 2 * 8, 20)
    assert Image.open(tmp_path / "out" / "gray.png").size == (2 * 30 + 8, 20)  # a gray input has no original column


def test_samples_intermediates_and_batches(model_dir, tmp_path, capsys):
    for index in range(3):
        colour_image(30 + 10 * index, 20, seed=index).save(tmp_path / f"p{index}.png")
    common = ["--model", str(model_dir), "--num-inference-steps", "3"]
    assert main([str(tmp_path / "p*.png"), "-o", str(tmp_path / "one"), "--batch-size", "1", *common]) == 0
    assert main([str(tmp_path / "p*.png"), "-o", str(tmp_path / "many"), "--batch-size", "2", "--num-samples", "2",
                 "--save-intermediates", *common]) == 0
    assert main([str(tmp_path / "p0.png"), "-o", str(tmp_path / "gif"), "--save-intermediates", "gif", *common]) == 0
    names = sorted(path.name for path in (tmp_path / "many").iterdir())
    assert names == sorted([f"p{i}_{k}.png" for i in range(3) for k in range(2)] + [f"p{i}_denoising.png" for i in range(3)])
    # The same seed gives the same first sample whatever the batch size; the second sample differs.
    first = np.asarray(Image.open(tmp_path / "one" / "p1.png"), dtype=int)
    assert np.abs(first - np.asarray(Image.open(tmp_path / "many" / "p1_0.png"), dtype=int)).max() <= 1
    assert np.abs(first - np.asarray(Image.open(tmp_path / "many" / "p1_1.png"), dtype=int)).mean() > 0.5
    animation = Image.open(tmp_path / "gif" / "p0_denoising.gif")
    assert animation.n_frames == 3
    assert "3 done, 0 skipped, 0 failed" in capsys.readouterr().out


def test_saturation_zero_gives_gray_and_a_negative_one_is_refused_in_one_line(model_dir, tmp_path, capsys):
    import pytest
    colour_image(30, 20).save(tmp_path / "photo.png")
    arguments = [str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"), "--model", str(model_dir), "--num-inference-steps", "1"]
    assert main(arguments + ["--saturation", "0"]) == 0
    pixels = np.asarray(Image.open(tmp_path / "out" / "photo.png"), dtype=int)
    assert np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max() <= 2  # no chroma left
    with pytest.raises(SystemExit) as exit_info:
        main(arguments + ["--saturation", "-1", "--overwrite"])
    assert exit_info.value.code == 2 and "saturation must be a finite number >= 0, got -1.0" in capsys.readouterr().err
    for bad in ("4", "24.5", "big", "inf"):
        with pytest.raises(SystemExit) as exit_info:
            main(arguments + ["--working-size", bad, "--overwrite"])
        assert exit_info.value.code == 2 and "working" in capsys.readouterr().err


def test_one_seeding_rule_for_the_command_evaluate_and_the_python_api(model_dir, tmp_path):
    """Sample k of a photo is drawn from seed + k everywhere: `colorize --seed S --num-samples 2` writes what
    ``pipe(photo, generator=manual_seed(S + k))`` gives, and `colorize evaluate --seed S` scores those same
    colorizations, wherever the photo stands in the folder."""
    import csv

    import torch

    from colorize import ColorizationPipeline
    from colorize.evaluation.metrics import psnr
    from colorize.image_io import pil_to_tensor

    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(2):
        colour_image(24, 20, rgb=(200, 40 + 100 * index, 30), seed=index).save(photos / f"p{index}.png")
    common = ["--model", str(model_dir), "--num-inference-steps", "2", "--seed", "5", "--num-samples", "2"]
    assert main([str(photos), "-o", str(tmp_path / "out"), *common]) == 0
    assert main(["evaluate", str(photos), "--output-dir", str(tmp_path / "eval"), "--no-kid", *common]) == 0

    pipe = ColorizationPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    scored = {row["file"]: row for row in csv.DictReader((tmp_path / "eval" / "per_image.csv").open())}
    for index in range(2):
        photo = Image.open(photos / f"p{index}.png").convert("RGB")
        truth = pil_to_tensor(photo)[None]
        samples = []
        for k in range(2):
            api = pipe(photo, num_inference_steps=2, generator=torch.Generator().manual_seed(5 + k))
            written = Image.open(tmp_path / "out" / f"p{index}_{k}.png")
            assert np.array_equal(np.asarray(written), np.asarray(api.images[0]))  # the command == the API
            samples.append(pipe(photo, num_inference_steps=2, generator=torch.Generator().manual_seed(5 + k),
                                output_type="pt").images)
        scores = psnr(torch.cat(samples), truth.expand(2, -1, -1, -1))
        row = scored[str(photos / f"p{index}.png")]
        assert float(row["psnr"]) == pytest.approx(scores.mean().item(), rel=1e-6)  # evaluate == the API
        assert float(row["psnr_best_of_n"]) == pytest.approx(scores.max().item(), rel=1e-6)


def test_sample_spread_flag_sets_how_the_samples_differ_in_the_command_and_evaluate(model_dir, tmp_path):
    """`--sample-spread prior:1 prior:2`: sample 1 is what the API gives at twice the saturation; evaluate records
    the spread it ran."""
    import json

    import torch

    from colorize import ColorizationPipeline

    photos = tmp_path / "photos"
    photos.mkdir()
    colour_image(24, 20, rgb=(200, 40, 30)).save(photos / "p.png")
    common = ["--model", str(model_dir), "--num-inference-steps", "2", "--num-samples", "2",
              "--sample-spread", "prior:1", "prior:2"]
    assert main([str(photos), "-o", str(tmp_path / "out"), *common]) == 0
    pipe = ColorizationPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    photo = Image.open(photos / "p.png").convert("RGB")
    vivid = pipe(photo, num_inference_steps=2, generator=torch.Generator().manual_seed(1), saturation=2.0).images[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "p_1.png")), np.asarray(vivid))
    assert main(["evaluate", str(photos), "--output-dir", str(tmp_path / "eval"), "--no-kid", *common]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["sample_spread"] == [["prior", 1.0], ["prior", 2.0]]


def test_two_photos_with_one_name_both_get_written_and_a_rerun_skips_both(model_dir, tmp_path, capsys):
    for folder, rgb in (("a", (200, 40, 30)), ("b", (40, 180, 60))):
        (tmp_path / folder).mkdir()
        colour_image(20, 16, rgb=rgb).save(tmp_path / folder / "x.png")
    arguments = [str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "out"), "--model", str(model_dir),
                 "--num-inference-steps", "1", "--batch-size", "2"]
    assert main(arguments) == 0
    output = capsys.readouterr().out
    assert "2 done, 0 skipped, 0 failed" in output and "written as x_2.png" in output
    first, second = (np.asarray(Image.open(tmp_path / "out" / name)) for name in ("x.png", "x_2.png"))
    assert not np.array_equal(first, second)  # each photo its own colours: nothing lost
    assert main(arguments) == 0 and "0 done, 2 skipped" in capsys.readouterr().out
    twice = [str(tmp_path / "a" / "x.png"), str(tmp_path / "a"), "-o", str(tmp_path / "twice"), "--model", str(model_dir),
             "--num-inference-steps", "1"]
    assert main(twice) == 0 and "1 done" in capsys.readouterr().out  # one file named twice is one photo
    assert [p.name for p in (tmp_path / "twice").iterdir()] == ["x.png"]


def test_outputs_never_replace_inputs_and_earlier_outputs_are_not_inputs(model_dir, tmp_path, capsys):
    photos = tmp_path / "io"
    photos.mkdir()
    colour_image(20, 16).save(photos / "x.png")
    original = (photos / "x.png").read_bytes()
    common = ["--model", str(model_dir), "--num-inference-steps", "1"]
    assert main([str(photos), "-o", str(photos), "--overwrite", *common]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "inside the output folder" in error
    assert main([str(photos / "x.png"), "-o", str(photos), "--overwrite", *common]) == 2  # named on its own
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "would replace the input photo" in error
    assert (photos / "x.png").read_bytes() == original and sorted(p.name for p in photos.iterdir()) == ["x.png"]

    nested = photos / "colorized"
    for _ in range(2):
        assert main([str(photos), "-o", str(nested), *common]) == 0
    assert "left out 1 images inside the output folder" in capsys.readouterr().out
    assert sorted(str(p.relative_to(photos)) for p in photos.rglob("*.png")) == ["colorized/x.png", "x.png"]


def test_an_unwritable_output_folder_stops_before_the_first_photo(model_dir, tmp_path, capsys, monkeypatch):
    import colorize.cli.photos as photos_command

    colour_image(20, 16).save(tmp_path / "x.png")
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setattr(photos_command, "colorize_batch", lambda *a: pytest.fail("colorized before the check"))
    assert main([str(tmp_path / "x.png"), "-o", str(tmp_path / "file" / "out"), "--model", str(model_dir)]) == 2
    error = capsys.readouterr().err  # (after the loading bar of the model)
    assert error.endswith("Not a directory\n") and "colorize: cannot write into the output folder" in error
    assert "Traceback" not in error and not (tmp_path / "file" / "out").exists()


def test_ctrl_c_keeps_finished_files_and_exits_130_in_one_line(model_dir, tmp_path, capsys, monkeypatch):
    import colorize.cli.photos as photos_command

    for index in range(3):
        colour_image(20, 16, seed=index).save(tmp_path / f"p{index}.png")
    real, calls = photos_command.colorize_batch, []

    def interrupted_on_the_second(pipeline, jobs, args):
        calls.append(len(jobs))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(pipeline, jobs, args)

    monkeypatch.setattr(photos_command, "colorize_batch", interrupted_on_the_second)
    code = main([str(tmp_path / f"p{index}.png") for index in range(3)]
                + ["-o", str(tmp_path / "out"), "--model", str(model_dir), "--num-inference-steps", "1"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and error[-1] == "colorize: interrupted after 1 done, 0 skipped, 0 failed; every file written is whole"
    assert "Traceback" not in "\n".join(error)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png"]  # no half-written or temporary file


def test_photos_are_read_ahead_and_written_behind_the_model(model_dir, tmp_path, capsys, monkeypatch):
    """The model works on photo 1 while photo 2 is read and photo 0 written: each step waits (at most 10 s) for the
    other thread's work, which a one-thread loop would never do. A photo that cannot be written is one line; the
    others are written and a re-run does the one left."""
    import threading

    import colorize.cli.photos as photos_command

    for index in range(4):
        colour_image(20, 16, seed=index).save(tmp_path / f"p{index}.png")
    read, colorizing = {n: threading.Event() for n in range(4)}, {n: threading.Event() for n in range(4)}
    real_open, real_colorize, real_save = photos_command.open_image, photos_command.colorize_batch, photos_command.save_atomically
    waited = []

    def open_image(path):
        read[int(path.stem[1:])].set()
        return real_open(path)

    def colorize_batch(pipeline, jobs, args):
        number = int(jobs[0].source.stem[1:])
        colorizing[number].set()
        waited.append(("read ahead", read[min(number + 1, 3)].wait(10)))
        return real_colorize(pipeline, jobs, args)

    def save_atomically(image, path):
        number = int(path.stem[1:])
        waited.append(("written behind", colorizing[min(number + 1, 3)].wait(10)))
        if number == 2:
            raise OSError(28, "No space left on device")
        real_save(image, path)

    monkeypatch.setattr(photos_command, "open_image", open_image)
    monkeypatch.setattr(photos_command, "colorize_batch", colorize_batch)
    monkeypatch.setattr(photos_command, "save_atomically", save_atomically)
    arguments = [str(tmp_path / f"p{index}.png") for index in range(4)] + [
        "-o", str(tmp_path / "out"), "--model", str(model_dir), "--num-inference-steps", "1"]
    assert main(arguments) == 1
    summary = capsys.readouterr()
    assert all(ok for _, ok in waited) and len(waited) == 8, waited
    assert "3 done, 0 skipped, 1 failed" in summary.out
    assert [line for line in summary.out.splitlines() if line.startswith("failed")] == [
        f"failed {tmp_path / 'p2.png'}: OSError: [Errno 28] No space left on device"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png", "p3.png"]
    monkeypatch.setattr(photos_command, "save_atomically", real_save)
    assert main(arguments) == 0 and "1 done, 3 skipped, 0 failed" in capsys.readouterr().out


def test_a_folder_holds_only_the_photos_in_flight(model_dir, tmp_path, monkeypatch):
    """Every decoded photo is let go once its files are written (or it failed): 50,000 photos never pile up."""
    import gc
    import weakref

    import colorize.cli.photos as photos_command

    for index in range(5):
        colour_image(20, 16, seed=index).save(tmp_path / f"p{index}.png")
    real_open, opened = photos_command.open_image, []

    def open_image(path):
        image = real_open(path)
        opened.append(weakref.ref(image))
        return image

    def colorize_batch(pipeline, jobs, args):
        if any(job.source.name == "p3.png" for job in jobs):
            raise RuntimeError("the model failed on this one")
        return real_colorize(pipeline, jobs, args)

    def colorize_all(pipeline, jobs, *rest):
        real_colorize_all(pipeline, jobs, *rest)
        gc.collect()  # the jobs are still held here, as main holds them
        released.extend(reference() is None for reference in opened)

    real_colorize, real_colorize_all, released = photos_command.colorize_batch, photos_command.colorize_all, []
    monkeypatch.setattr(photos_command, "open_image", open_image)
    monkeypatch.setattr(photos_command, "colorize_batch", colorize_batch)
    monkeypatch.setattr(photos_command, "colorize_all", colorize_all)
    assert main([str(tmp_path), "-o", str(tmp_path / "out"), "--model", str(model_dir),
                 "--num-inference-steps", "1", "--batch-size", "2"]) == 1
    assert released == [True] * 5


@pytest.mark.slow
def test_accelerate_shares_the_photos_between_processes_and_writes_the_files_of_one_process(model_dir, tmp_path):
    """`accelerate launch --num_processes 2 -m colorize FOLDER -o OUT`: every photo once, in whole batches of the
    one-process run, so the files are the same bytes as `colorize FOLDER -o OUT`."""
    import os
    import subprocess
    import sys

    from conftest import ROOT, write_image_folder

    photos = write_image_folder(tmp_path / "photos", per_class=3, corrupt=False)
    common = ["--model", str(model_dir), "--num-inference-steps", "2", "--batch-size", "2", "--num-samples", "2"]
    assert main([str(photos), "-o", str(tmp_path / "one"), *common]) == 0
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "accelerate_config.yaml"),
               "--multi_gpu", "--num_processes", "2", "--main_process_port", "29543",
               "-m", "colorize", str(photos), "-o", str(tmp_path / "two"), *common]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "(process 0 of 2)" in result.stdout and "(process 1 of 2)" in result.stdout
    written = {path.relative_to(tmp_path / "one") for path in (tmp_path / "one").rglob("*.png")}
    assert len(written) == 2 * 7  # 7 photos (one of them gray), 2 samples each
    assert {path.relative_to(tmp_path / "two") for path in (tmp_path / "two").rglob("*.png")} == written
    assert all((tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes() for name in written)
