"""The benchmark scripts run end to end on a tiny model and write what they promise (no timing asserts)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_image_folder

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run_script(name, *args) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *map(str, args)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_sampling_benchmark_writes_table_json_and_plot(model_dir, tmp_path):
    data = write_image_folder(tmp_path / "data", per_class=1, size=(24, 20), corrupt=False, gray=False)
    out = tmp_path / "bench"
    stdout = run_script("sampling.py", "--model", model_dir, "--data", data, "--num-images", "2",
                        "--slow-images", "1", "--output-dir", out)
    rows = json.loads((out / "sampling.json").read_text())
    assert [(row["scheduler"], row["steps"]) for row in rows][:3] == [("ddpm", 1000), ("ddim", 50), ("dpm", 10)]
    assert rows[0]["images"] == 1 and rows[1]["images"] == 2
    assert rows[0]["speedup_vs_slowest"] == 1.0 and all(row["seconds_per_image"] > 0 for row in rows)
    assert "| ddpm | 1000 |" in (out / "sampling.md").read_text()
    assert (out / "sampling.png").stat().st_size > 1000 and "sampling.md" in stdout


def test_full_resolution_benchmark_reports_both_sizes(model_dir):
    stdout = run_script("full_resolution.py", "--model", model_dir, "--size", "320x240",
                        "--num-inference-steps", "2", "--repeats", "1")
    assert "256x192" in stdout and "320x240" in stdout and "peak MiB" in stdout


def test_working_size_benchmark_times_each_size_against_the_baseline(model_dir, image_folder):
    stdout = run_script("working_size.py", "--model", model_dir, "--data", image_folder, "--sizes", "16", "24",
                        "--baseline-model", model_dir, "--baseline-steps", "2", "--num-images", "2", "--num-samples", "2")
    rows = [line for line in stdout.splitlines() if "working size" in line or "2 steps" in line]
    assert len(rows) == 3 and rows[0].split()[-1] == "1.00"  # the baseline first, the ratios against it
    assert rows[1].split()[-4:-2] == ["size", "16"] and rows[2].split()[-4:-2] == ["size", "24"]


def test_presets_benchmark_lists_every_preset():
    stdout = run_script("presets.py", "--presets", "tiny", "--resolution", "16", "--batch-size", "2",
                        "--steps", "1", "--repeats", "1")
    assert "tiny" in stdout and "train img/s" in stdout


def test_data_loading_benchmark_compares_both_paths(image_folder):
    stdout = run_script("data_loading.py", "--train_data_dir", image_folder, "--resolution", "16",
                        "--batch-size", "4", "--batches", "2")
    assert "decode" in stdout and "cached" in stdout and "cache: 12 images" in stdout


def test_training_step_benchmark_breaks_the_step_down():
    stdout = run_script("training_step.py", "--preset", "tiny", "--resolution", "16", "--batch-size", "2",
                        "--repeats", "1", "--no-bf16")
    for row in ("bare UNet step", "+ encoder features", "+ EMA", "+ data loading"):
        assert row in stdout


def test_guidance_benchmark_scores_each_scale_with_one_classifier(image_folder, tmp_path):
    from conftest import make_tiny_pipeline

    from colorize import ColorizationPipeline, ImageEncoder
    from colorize.modeling import build_unet

    encoder = ImageEncoder.from_imagenet(projection_channels=4)
    base = make_tiny_pipeline()
    ColorizationPipeline(unet=build_unet("tiny", 16, feature_channels=4), scheduler=base.scheduler,
                         image_encoder=encoder).save_pretrained(tmp_path / "model")
    out = tmp_path / "bench"
    stdout = run_script("guidance.py", "--model", tmp_path / "model", "--data", image_folder, "--reference-data",
                        image_folder, "--settings", "1:2", "2:1:1.5", "--num-samples", "2", "--output-dir", out)
    rows = json.loads((out / "guidance.json").read_text())
    assert [(row["guidance_scale"], row["steps"], row["saturation"]) for row in rows] == [(1.0, 2, 1.0), (2.0, 1, 1.5)]
    assert all(0 <= row["chroma_accuracy"] <= 1 and row["images"] == 13 and row["psnr_best_of_n"] for row in rows)
    assert "| 2 | 1 | 1.5 |" in (out / "guidance.md").read_text() and "chroma accuracy" in stdout


def test_throughput_benchmark_prints_one_row_per_preset_and_resolution():
    stdout = run_script("throughput.py", "--presets", "tiny", "--resolutions", "16", "--precisions", "fp32",
                        "--repeats", "1")
    row = [line for line in stdout.splitlines() if line.startswith("| tiny | 16 |")]
    assert len(row) == 1 and float(row[0].split("|")[3]) > 0


def test_streaming_memory_benchmark_reports_both_modes():
    stdout = run_script("streaming_memory.py", "--sizes", "16")
    cells = [line for line in stdout.splitlines() if line.startswith("| 16 |")][0].split("|")[1:-1]
    assert int(cells[1]) == 1 and float(cells[2]) > 100 and float(cells[3]) > 100  # MiB of a torch process


def test_folder_throughput_benchmark_compares_processes_batch_sizes_and_trees(model_dir):
    # (one process here: test_cli.py runs the command with two)
    from conftest import ROOT

    stdout = run_script("folder_throughput.py", "--model", model_dir, "--num-photos", "3", "--sizes", "64",
                        "--processes", "1", "--batch-sizes", "1", "3", "--trees", str(ROOT), str(ROOT))
    rows = [line.split() for line in stdout.splitlines() if line.split()[1:2] == ["64"]]
    assert [row[2:4] for row in rows] == [["1", "1"], ["1", "1"], ["1", "3"], ["1", "3"]]
    assert rows[0][6] == rows[0][8] == "1.00" and all(float(row[7]) > 0 for row in rows)


def test_fast_sampling_benchmark_counts_unet_passes_per_model_and_setting(image_folder, tmp_path):
    from conftest import make_tiny_pipeline

    from colorize import ColorizationPipeline, ImageEncoder
    from colorize.modeling import build_unet

    base = make_tiny_pipeline()
    plain = ColorizationPipeline(unet=build_unet("tiny", 16, feature_channels=4), scheduler=base.scheduler,
                                 image_encoder=ImageEncoder.from_imagenet(projection_channels=4))
    plain.save_pretrained(tmp_path / "plain")
    plain.register_to_config(distilled_guidance_scale=2.0)
    plain.save_pretrained(tmp_path / "distilled")
    out = tmp_path / "bench"
    stdout = run_script("fast_sampling.py", "--models", tmp_path / "plain", tmp_path / "distilled", "--data", image_folder,
                        "--reference", image_folder, "--settings", "dpm/3/1.0", "unipc/2/1.0", "dpm3/2/1.0/karras",
                        "--num-samples", "2", "--limit", "4", "--timing-photos", "2", "--output-dir", out)
    rows = json.loads((out / "fast_sampling.json").read_text())
    # guided: two UNet passes a step; distilled at its scale: one
    assert [(Path(row["model"]).name, row["setting"], row["unet_passes"]) for row in rows] == [
        ("plain", "dpm/3/1.0", 6), ("plain", "unipc/2/1.0", 4), ("plain", "dpm3/2/1.0/karras", 4),
        ("distilled", "dpm/3/1.0", 3), ("distilled", "unipc/2/1.0", 2), ("distilled", "dpm3/2/1.0/karras", 2),
    ]
    assert all(row["seconds_per_photo"] > 0 and row["psnr_best_of_n"] >= row["psnr"] for row in rows)
    assert "| UNet passes / photo |" in (out / "fast_sampling.md").read_text() and "dpm3/2/1.0/karras" in stdout


def test_release_speed_benchmark_times_both_sides_in_turn(image_folder, tmp_path):
    stdout = run_script("release_speed.py", "--baseline", "HEAD", "--photos", image_folder / "red", "--num-photos", "2",
                        "--rounds", "2", "--output-dir", tmp_path)
    result = json.loads((tmp_path / "release_speed.json").read_text())
    assert result["baseline"] == "HEAD" and len(result["photos"]) == 2 and result["ratio"] > 0
    assert stdout.count("round 1") == 2 and stdout.count("round 2") == 2 and "ratio" in stdout


def test_runtimes_benchmark_compares_each_runtime_with_eager(model_dir, tmp_path):
    photos = write_image_folder(tmp_path / "photos", per_class=1, corrupt=False, gray=False)
    stdout = run_script("runtimes.py", "--model", model_dir, "--photos", photos, "--num-photos", "2",
                        "--runtimes", "channels_last", "bf16 autocast", "--output-dir", tmp_path)
    results = json.loads((tmp_path / "runtimes.json").read_text())
    assert set(results) == {"eager", "channels_last", "bf16 autocast"}
    assert results["eager"]["ratio"] == 1.0 and results["channels_last"]["max_uint8_difference"] <= 1
    assert "| channels_last |" in stdout
