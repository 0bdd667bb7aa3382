"""Bad and unusual inputs, through the CLI and the Python API: each gives a correct result or one
clear line naming the file, never a traceback, and the rest of the batch is still processed."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import colour_image, gray_image, make_tiny_pipeline
from PIL import Image

from colorize.cli import main
from colorize.image_io import open_image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces width x height pixels but holds no image data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def write_bad_and_odd_inputs(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Write every case; returns file name -> expected output size, or None when it must fail."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero_bytes.jpg").write_bytes(b"")
    jpeg = folder / "whole.jpg"
    colour_image(64, 48).save(jpeg, quality=90)
    (folder / "truncated.jpg").write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    jpeg.unlink()
    (folder / "text.jpg").write_text("this is not an image\n")
    (folder / "bomb.png").write_bytes(png_header_only(20_000, 20_000))

    colour_image(30, 20).convert("CMYK").save(folder / "cmyk.jpg")
    rgba = colour_image(30, 20).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "rgba.png")
    Image.fromarray(np.full((20, 30), 30_000, dtype=np.uint16)).save(folder / "sixteen_bit.png")
    colour_image(30, 20).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    colour_image(40, 20).save(folder / "rotated.jpg", exif=exif)
    colour_image(1, 1).save(folder / "one_pixel.png")
    gray_image(30, 20).convert("L").save(folder / "already_gray.png")
    frames = [colour_image(24, 16, rgb=rgb) for rgb in ((200, 40, 30), (40, 180, 60))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {
        "zero_bytes.jpg": None, "truncated.jpg": None, "text.jpg": None, "bomb.png": None,
        "cmyk.jpg": (30, 20), "rgba.png": (30, 20), "sixteen_bit.png": (30, 20), "palette.png": (30, 20),
        "rotated.jpg": (20, 40), "one_pixel.png": (1, 1), "already_gray.png": (30, 20), "animated.png": (24, 16),
    }


def test_cli_colorizes_the_odd_and_reports_the_bad_in_one_line_each(model_dir, tmp_path, capsys):
    expected = write_bad_and_odd_inputs(tmp_path / "in")
    code = main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_dir),
                 "--num-inference-steps", "1", "--batch-size", "3"])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 1 and "Traceback" not in text
    failures = [line for line in text.splitlines() if line.startswith("failed ")]
    assert len(failures) == 4
    for name in ("zero_bytes.jpg", "truncated.jpg", "text.jpg", "bomb.png"):
        assert sum(name in line for line in failures) == 1
    assert "decompression bomb" in next(line for line in failures if "bomb.png" in line)
    assert "8 done, 0 skipped, 4 failed" in captured.out
    for name, size in expected.items():
        if size is not None:
            output = Image.open(tmp_path / "out" / name)
            assert output.size == size and output.mode == "RGB", name
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_sixteen_bit_gray_keeps_its_brightness(model_dir, tmp_path):
    write_bad_and_odd_inputs(tmp_path / "in")
    assert abs(np.asarray(open_image(tmp_path / "in" / "sixteen_bit.png")).mean() - 30_000 / 257) < 1
    main([str(tmp_path / "in" / "sixteen_bit.png"), "-o", str(tmp_path / "out"), "--model", str(model_dir),
          "--num-inference-steps", "1"])
    lightness = np.asarray(Image.open(tmp_path / "out" / "sixteen_bit.png").convert("L"), dtype=float)
    assert abs(lightness.mean() - 30_000 / 257) < 8  # not clipped to white


def test_python_api_takes_every_mode_and_open_image_explains_failures(tmp_path):
    write_bad_and_odd_inputs(tmp_path)
    pipeline = make_tiny_pipeline()
    images = [Image.open(tmp_path / name) for name in ("cmyk.jpg", "rgba.png", "sixteen_bit.png", "palette.png",
                                                       "one_pixel.png", "already_gray.png", "animated.gif")]
    outputs = pipeline(images, num_inference_steps=1).images
    assert [o.size for o in outputs] == [i.size for i in images]
    assert open_image(tmp_path / "rotated.jpg").size == (20, 40)  # upright
    for name, message in (("zero_bytes.jpg", "cannot identify"), ("text.jpg", "cannot identify"),
                          ("truncated.jpg", "truncated"), ("bomb.png", "decompression bomb")):
        with pytest.raises(Exception, match=message):
            open_image(tmp_path / name)


def test_pickled_weights_are_refused(tmp_path, capsys):
    make_tiny_pipeline().save_pretrained(tmp_path / "pickled", safe_serialization=False)
    colour_image(16, 16).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "--model", str(tmp_path / "pickled"), "-o", str(tmp_path / "out")]) == 2
    assert "cannot load the model" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_no_remote_code_anywhere():
    root = Path(__file__).resolve().parent.parent
    sources = list((root / "colorize").rglob("*.py")) + [root / "train_colorization.py", root / "main.py"]
    assert not [path for path in sources if "trust_remote_code" in path.read_text()]


def test_arrays_and_tensors_are_checked_where_they_enter():
    """NaN / infinite pixels, floats outside [0, 1], other integer types and odd shapes are one clear ValueError
    before any denoising; 16-bit arrays are read as 16-bit, and one (N, C, H, W) tensor is a batch."""
    import torch

    pipeline = make_tiny_pipeline()
    rgb = np.asarray(colour_image(20, 16))
    run = lambda image: pipeline(image, num_inference_steps=1, generator=torch.Generator().manual_seed(0),  # noqa: E731
                                 output_type="np").images
    for bad, message in ((np.where(rgb == rgb.max(), np.nan, rgb / 255.0), "NaN or infinite"),
                         (np.full((16, 20, 3), np.inf), "NaN or infinite"),
                         (rgb.astype(np.float32), r"in \[0, 1\], got values from \d+ to \d+"),
                         (rgb.astype(np.int32), "uint8, uint16 or float"),
                         (rgb[..., :2], r"\(H, W, 3\) or \(H, W\)"),
                         (torch.rand(2, 16, 20), r"\(3, H, W\) or \(1, H, W\)")):
        with pytest.raises(ValueError, match=message):
            run(bad)
    np.testing.assert_allclose(run(rgb.astype(np.uint16) * 257), run(rgb), atol=1e-5)  # 16-bit, not white
    as_tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    np.testing.assert_allclose(run(as_tensor), run(rgb), atol=1e-5)  # a uint8 tensor is 0..255 too
    np.testing.assert_allclose(run(as_tensor[None].float() / 255), run(rgb), atol=1e-5)  # (1, 3, H, W): a batch of one


def test_the_library_loads_safetensors_only_unless_told(tmp_path):
    from colorize import ColorizationPipeline

    make_tiny_pipeline().save_pretrained(tmp_path, safe_serialization=False)
    with pytest.raises(OSError, match="use_safetensors=False") as error:
        ColorizationPipeline.from_pretrained(tmp_path)
    assert str(error.value).count("\n") == 0
    assert ColorizationPipeline.from_pretrained(tmp_path, use_safetensors=False).unet is not None
