#!/usr/bin/env python
"""The UNet under other runtimes: seconds per photo and per UNet pass, and how far the colours move.

    python benchmarks/runtimes.py --model models/flowers --photos outputs/data/validation.txt --num-photos 12

Each runtime stands in for the UNet's forward inside the same pipeline (encoder, prior, sampler and
colour conversion unchanged): PyTorch eager (the baseline), eager with channels_last, torch.compile
(inductor), ONNX Runtime and OpenVINO (an ONNX export of the UNet, shapes dynamic), and bf16 autocast
(only on CPUs with native bf16: AVX512-BF16 or AMX; elsewhere it is ~12x slower and skipped). A runtime
whose package is missing is skipped with a line saying so. For each: the one-time preparation (export,
compilation), seconds per UNet pass at the working size, seconds per photo at the pipeline's defaults
(one sample, each photo's own size, runtimes taken in turn photo by photo), and the largest difference
from eager's output in uint8 levels over all photos. Writes `runtimes.json` to --output-dir. Run it on
an otherwise idle machine.
"""

import argparse
import copy
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from colorize import ColorizationPipeline
from colorize.image_io import find_images, open_image
from colorize.training.config import cpu_has_native_bf16


def timestep_tensor(timestep, batch: int) -> torch.Tensor:
    return torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(batch).contiguous()


class ExportedUNet:
    """The UNet's forward through an ONNX file run by ONNX Runtime or OpenVINO: (sample, timestep) in, an object
    with ``.sample`` out, as the pipeline calls it (no class embedding: models with pooled features are skipped)."""

    def __init__(self, run: Callable):
        self.run = run

    def __call__(self, sample, timestep, class_labels=None, **_):
        if class_labels is not None:
            raise ValueError("exported UNets here take no class embedding")
        batch = sample.shape[0]
        output = self.run(sample.float().numpy(), timestep_tensor(timestep, batch).numpy())
        return SimpleNamespace(sample=torch.from_numpy(np.asarray(output)))


def export_onnx(unet, channels: int, size: tuple[int, int], path: Path):
    class Forward(torch.nn.Module):
        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep):
            return self.unet(sample, timestep).sample

    sample = torch.randn(2, channels, *size)
    batch, height, width = torch.export.Dim("batch"), torch.export.Dim("height"), torch.export.Dim("width")
    torch.onnx.export(Forward(unet).eval(), (sample, timestep_tensor(500, 2)), str(path), dynamo=True,
                      input_names=["sample", "timestep"], output_names=["out"],
                      dynamic_shapes={"sample": {0: batch, 2: 8 * height, 3: 8 * width}, "timestep": {0: batch}})


def onnxruntime_forward(path: Path) -> Callable:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda sample, timestep: session.run(None, {"sample": sample, "timestep": timestep})[0]


def openvino_forward(path: Path) -> Callable:
    import openvino

    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda sample, timestep: compiled({"sample": sample, "timestep": timestep})[compiled.output(0)]


def compiled_forward(eager, channels: int, size):
    """(torch.compile of the UNet's forward, compilation seconds), or why it cannot compile here."""
    try:
        started = time.perf_counter()
        compiled = torch.compile(eager, dynamic=False)
        compiled(torch.randn(1, channels, *size), torch.tensor(500))
        return compiled, time.perf_counter() - started
    except Exception as error:  # noqa: BLE001 - a missing compiler is a reason, not a crash
        return f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"


def exported_forwards(unet, channels: int, size, folder: Path) -> dict:
    """{"onnxruntime" / "openvino": (forward, export + load seconds) or why not}, from one ONNX export."""
    if unet.config.class_embed_type is not None:
        return dict.fromkeys(("onnxruntime", "openvino"), "the UNet takes a class embedding (pooled features)")
    path = folder / "unet.onnx"
    try:
        started = time.perf_counter()
        export_onnx(unet, channels, size, path)
        exported = time.perf_counter() - started
    except Exception as error:  # noqa: BLE001
        return dict.fromkeys(("onnxruntime", "openvino"), f"export failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}")
    forwards = {}
    for name, make in (("onnxruntime", onnxruntime_forward), ("openvino", openvino_forward)):
        try:
            started = time.perf_counter()
            forwards[name] = (ExportedUNet(make(path)), exported + time.perf_counter() - started)
        except ImportError:
            forwards[name] = f"{name} is not installed (pip install {name})"
    return forwards


RUNTIMES = ["eager", "channels_last", "torch.compile", "onnxruntime", "openvino", "bf16 autocast"]


def prepare_runtimes(pipeline, size, folder: Path, chosen: list[str]) -> dict:
    """{name: (forward replacing the UNet's, preparation seconds)}, or {name: reason} where it cannot run here;
    for the ``chosen`` runtimes (eager always)."""
    unet = pipeline.unet
    eager = unet.forward
    channels = unet.config.in_channels
    runtimes = {"eager": (eager, 0.0)}
    if "channels_last" in chosen:
        started = time.perf_counter()
        channels_last = copy.deepcopy(unet).to(memory_format=torch.channels_last)
        runtimes["channels_last"] = (
            lambda sample, *args, **kwargs: channels_last(sample.contiguous(memory_format=torch.channels_last), *args, **kwargs),
            time.perf_counter() - started,
        )
    if "torch.compile" in chosen:
        runtimes["torch.compile"] = compiled_forward(eager, channels, size)
    if {"onnxruntime", "openvino"} & set(chosen):
        runtimes.update(exported_forwards(unet, channels, size, folder))
    runtimes = {name: value for name, value in runtimes.items() if name == "eager" or name in chosen}
    if "bf16 autocast" not in chosen:
        return runtimes
    if cpu_has_native_bf16():
        def bf16(*args, **kwargs):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output = eager(*args, **kwargs)
            output.sample = output.sample.float()
            return output
        runtimes["bf16 autocast"] = (bf16, 0.0)
    else:
        runtimes["bf16 autocast"] = "no native bf16 on this CPU (AVX512-BF16 / AMX): about 12x slower, not timed"
    return runtimes


def seconds_per_pass(forward, channels: int, size, repeats: int = 20) -> float:
    sample, timestep = torch.randn(1, channels, *size), torch.tensor(500)
    with torch.no_grad():
        forward(sample, timestep)
        started = time.perf_counter()
        for _ in range(repeats):
            forward(sample, timestep)
    return (time.perf_counter() - started) / repeats


def read_photos(source: str, count: int) -> list[Image.Image]:
    """``count`` photos of a folder or list, spread over it (its classes), in gray."""
    files = find_images(source)
    return [open_image(file.path).convert("L") for file in files[:: max(1, len(files) // count)][:count]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default=None, help="Pipeline folder (default: the shipped model).")
    parser.add_argument("--photos", default="outputs/data/validation.txt", help="A folder of photos or a list file.")
    parser.add_argument("--num-photos", type=int, default=12)
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=RUNTIMES, help="Runtimes to compare with eager.")
    parser.add_argument("--output-dir", default="outputs/bench-runtimes")
    args = parser.parse_args()

    pipeline = ColorizationPipeline.from_pretrained(args.model)
    pipeline.set_progress_bar_config(disable=True)
    photos = read_photos(args.photos, args.num_photos)
    size = pipeline.model_size_for(photos[0].height, photos[0].width)
    eager = pipeline.unet.forward
    with tempfile.TemporaryDirectory() as folder:
        runtimes = prepare_runtimes(pipeline, size, Path(folder), args.runtimes)
        usable = {name: value for name, value in runtimes.items() if not isinstance(value, str)}
        results = {name: {"skipped": reason} for name, reason in runtimes.items() if isinstance(reason, str)}
        for name, (forward, prepared) in usable.items():
            results[name] = {"prepare_seconds": prepared,
                             "seconds_per_unet_pass": seconds_per_pass(forward, pipeline.unet.config.in_channels, size)}
        totals, outputs = dict.fromkeys(usable, 0.0), {name: [] for name in usable}
        for photo in photos:
            for name, (forward, _) in usable.items():
                pipeline.unet.forward = forward
                started = time.perf_counter()
                image = pipeline(photo, generator=torch.Generator().manual_seed(0)).images[0]
                totals[name] += time.perf_counter() - started
                outputs[name].append(np.asarray(image, dtype=np.int16))
        pipeline.unet.forward = eager
    for name in usable:
        results[name]["seconds_per_photo"] = totals[name] / len(photos)
        results[name]["ratio"] = totals[name] / totals["eager"]
        results[name]["max_uint8_difference"] = int(max(np.abs(a - b).max() for a, b in zip(outputs[name], outputs["eager"])))
        results[name]["mean_uint8_difference"] = float(np.mean([np.abs(a - b).mean() for a, b in zip(outputs[name], outputs["eager"])]))
    print(f"{len(photos)} photos, working size {size[0]}x{size[1]}, {torch.get_num_threads()} threads")
    print("| runtime | preparation s | s / UNet pass | s / photo | ratio | max / mean uint8 difference |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        if "skipped" in result:
            print(f"| {name} | skipped: {result['skipped']} | | | | |")
        else:
            print(f"| {name} | {result['prepare_seconds']:.1f} | {result['seconds_per_unet_pass']:.4f} | "
                  f"{result['seconds_per_photo']:.3f} | {result['ratio']:.2f} | {result['max_uint8_difference']} / "
                  f"{result['mean_uint8_difference']:.3f} |")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "runtimes.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
