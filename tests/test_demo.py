"""The Gradio demo: driven through its API with gradio_client, and in headless Chromium when installed."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import colour_image
from gradio_client import Client, handle_file
from PIL import Image

from colorize import ColorizationPipeline
from colorize.demo import build_demo

MAX_UPLOAD_MB = 0.1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(model_dir):
    pipeline = ColorizationPipeline.from_pretrained(model_dir)
    pipeline.set_progress_bar_config(disable=True)
    demo = build_demo(pipeline, "tiny test model", max_upload_mb=MAX_UPLOAD_MB)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                max_file_size=int(MAX_UPLOAD_MB * 2**20))
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_colorizes_an_upload_at_full_resolution_with_samples_and_steps(demo_url, tmp_path):
    colour_image(90, 60).save(tmp_path / "photo.png")
    client = Client(demo_url, verbose=False)
    gray, colorized, gallery, strip = client.predict(handle_file(str(tmp_path / "photo.png")), 3, 0, 3, 1.0,
                                                     api_name="/colorize")
    assert Image.open(gray).size == Image.open(colorized).size == (90, 60)
    assert len(gallery) == 3 and all(Image.open(item["image"]).size == (90, 60) for item in gallery)
    assert Image.open(strip).width > Image.open(strip).height  # one row of steps


def test_refuses_oversized_and_unreadable_uploads_with_a_message(demo_url, tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "big.png")  # about 270 KB, over the limit
    (tmp_path / "notes.png").write_text("not an image")
    client = Client(demo_url, verbose=False)
    with pytest.raises(Exception, match="(?i)limit|too large|exceeds"):
        client.predict(handle_file(str(tmp_path / "big.png")), 2, 0, 1, 1.0, api_name="/colorize")
    with pytest.raises(Exception, match="Cannot read this file"):
        client.predict(handle_file(str(tmp_path / "notes.png")), 2, 0, 1, 1.0, api_name="/colorize")


def test_every_setting_is_checked_on_the_server_in_one_line_without_server_paths(demo_url, tmp_path):
    colour_image(90, 60).save(tmp_path / "photo.png")
    (tmp_path / "notes.png").write_text("not an image")
    client = Client(demo_url, verbose=False)
    photo = handle_file(str(tmp_path / "photo.png"))
    for arguments, message in (((101, 0, 1, 1.0), "Denoising steps must be a whole number from 1 to 100, got 101"),
                               ((0, 0, 1, 1.0), "Denoising steps must be"), ((-3, 0, 1, 1.0), "Denoising steps must be"),
                               ((2.5, 0, 1, 1.0), "Denoising steps must be"), ((2, -1, 1, 1.0), "Seed must be"),
                               ((2, 0, 9, 1.0), "Samples must be"), ((2, 0, 1, 50.0), "Guidance scale must be"),
                               ((2, 0, 1, "lots"), "Guidance scale must be")):
        with pytest.raises(Exception, match=message) as error:
            client.predict(photo, *arguments, api_name="/colorize")
        assert "\n" not in str(error.value)
    with pytest.raises(Exception, match="Cannot read this file") as error:
        client.predict(handle_file(str(tmp_path / "notes.png")), 2, 0, 1, 1.0, api_name="/colorize")
    assert "/tmp" not in str(error.value) and "gradio" not in str(error.value)
    gray, *_ = client.predict(photo, 2, 0, 1, 1.0, api_name="/colorize")  # and it still serves
    assert Image.open(gray).size == (90, 60)


def test_a_request_over_the_budget_is_refused_before_any_work(model_dir, tmp_path, monkeypatch):
    import gradio as gr

    from colorize import demo

    pipeline = ColorizationPipeline.from_pretrained(model_dir)
    monkeypatch.setattr(demo, "MAX_OUTPUT_PIXELS", 90 * 60 * 4)
    monkeypatch.setattr(pipeline, "__call__", lambda *a, **k: pytest.fail("ran the pipeline"))
    colour_image(90, 60).save(tmp_path / "photo.png")
    with pytest.raises(gr.Error, match="5 samples of a 0.0-megapixel photo is over .* ask for at most 4"):
        demo.colorize_photo(pipeline, str(tmp_path / "photo.png"), 2, 0, 5, 1.0)


PEAK_MEMORY_SCRIPT = """
import resource, sys
from colorize import ColorizationPipeline
from colorize.demo import MAX_STEPS, colorize_photo
pipeline = ColorizationPipeline.from_pretrained()  # the shipped model
pipeline.set_progress_bar_config(disable=True)
gray, colorized, gallery, strip = colorize_photo(pipeline, sys.argv[1], MAX_STEPS, 0, 1, 20, hints=[[5, 5, "#ff0000"]])
assert colorized.size == gray.size and len(gallery) == 1 and strip.height == 128
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""
PEAK_MEMORY_BOUND_GB = 5.0


@pytest.mark.slow
def test_the_largest_request_inside_the_limits_stays_under_the_memory_bound(tmp_path):
    """The largest photo the demo takes (40 megapixels, in a small PNG), at the most steps, with a hint: the whole
    process's peak memory (model included) stays under the bound. Its full-resolution work is what costs memory;
    8 samples of a 5-megapixel photo (the same pixels x samples) peaked at 1.85 GB, under half of it."""
    from colorize.demo import MAX_OUTPUT_PIXELS, MAX_PIXELS

    width = 8000
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None].repeat(MAX_PIXELS // width, 0)
    Image.fromarray(np.concatenate([ramp, ramp[:, ::-1], np.full_like(ramp, 90)], axis=2).astype(np.uint8)).save(
        tmp_path / "largest.png")
    assert MAX_PIXELS <= MAX_OUTPUT_PIXELS and (tmp_path / "largest.png").stat().st_size < 20 * 2**20
    result = subprocess.run([sys.executable, "-c", PEAK_MEMORY_SCRIPT, str(tmp_path / "largest.png")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_gb = float(result.stdout.split()[-1])
    print(f"peak memory of the largest in-limit request: {peak_gb:.2f} GB")
    assert peak_gb < PEAK_MEMORY_BOUND_GB


def test_demo_listens_on_localhost_by_default():
    from colorize.cli.demo import build_parser as build_demo_parser

    assert build_demo_parser().parse_args([]).host == "127.0.0.1"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver packages")
def test_in_headless_chromium_one_colorization_and_a_screenshot(model_dir, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as expected
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([sys.executable, "-m", "colorize", "demo", "--model", str(model_dir), "--port",
                               str(port), "--num-inference-steps", "2"], env={**os.environ, "OMP_NUM_THREADS": "1"})
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(argument)
    driver = None
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "the demo server did not start"
                time.sleep(0.5)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
        driver.get(url)
        wait = WebDriverWait(driver, 90)
        colour_image(120, 80).save(tmp_path / "photo.png")
        wait.until(expected.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]"))).send_keys(
            str(tmp_path / "photo.png"))
        wait.until(expected.presence_of_element_located((By.CSS_SELECTOR, "#photo img")))
        # a hint: click on the gray photo (shown as soon as the photo is uploaded), see it listed, clear, place again
        gray = wait.until(expected.visibility_of_element_located((By.CSS_SELECTOR, "#gray img")))
        gray.click()
        wait.until(expected.text_to_be_present_in_element((By.CSS_SELECTOR, "#hints"), "#d02020"))
        driver.find_element(By.CSS_SELECTOR, "#clear-hints").click()
        wait.until_not(expected.text_to_be_present_in_element((By.CSS_SELECTOR, "#hints"), "#d02020"))
        gray.click()
        wait.until(expected.text_to_be_present_in_element((By.CSS_SELECTOR, "#hints"), "#d02020"))
        driver.find_element(By.CSS_SELECTOR, "#colorize-button").click()
        result = wait.until(expected.presence_of_element_located((By.CSS_SELECTOR, "#colorized img")))
        assert result.get_attribute("src")
        thumbnail = wait.until(expected.visibility_of_element_located((By.CSS_SELECTOR, "#samples img")))
        screenshot = Path(os.environ.get("COLORIZE_SCREENSHOT", tmp_path / "demo.png"))
        driver.save_screenshot(str(screenshot))
        assert Image.open(screenshot).size[0] > 0
        assert thumbnail.size["width"] < 700  # a thumbnail, not one sample blown up to the page's 1400 px
        page = driver.find_element(By.TAG_NAME, "body").text
        assert str(model_dir) not in page and Path(model_dir).name in page  # the model named, not its path
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)


def test_hints_placed_in_the_demo_reach_the_pipeline_and_bad_ones_are_messages(model_dir, tmp_path):
    import gradio as gr

    from colorize.demo import add_hint, colorize_photo, model_display_name

    pipeline = ColorizationPipeline.from_pretrained(model_dir)
    pipeline.set_progress_bar_config(disable=True)
    colour_image(40, 30).save(tmp_path / "photo.png")
    hints = add_hint(add_hint([], "#D02020", 5.0, 6.0), "rgb(20, 40, 200)", 30, 20)
    assert hints == [[5, 6, "#d02020"], [30, 20, "#1428c8"]]
    with pytest.raises(gr.Error, match="unknown colour"):
        add_hint(hints, "not a colour", 1, 1)
    _, with_hints, _, _ = colorize_photo(pipeline, str(tmp_path / "photo.png"), 2, 0, 1, 1.0, 1.0, hints)
    _, without, _, _ = colorize_photo(pipeline, str(tmp_path / "photo.png"), 2, 0, 1, 1.0, 1.0, [])
    assert with_hints.size == (40, 30) and with_hints.tobytes() != without.tobytes()
    with pytest.raises(gr.Error, match="outside the 40x30 image"):
        colorize_photo(pipeline, str(tmp_path / "photo.png"), 2, 0, 1, 1.0, 1.0, [[50, 5, "#d02020"]])
    _, gray, _, _ = colorize_photo(pipeline, str(tmp_path / "photo.png"), 2, 0, 1, 1.0, 1.0, [], 0)  # the saturation slider at 0
    pixels = np.asarray(gray, dtype=int)
    assert np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max() <= 2
    with pytest.raises(gr.Error, match="Saturation must be a number from 0 to 2, got -0.5"):
        colorize_photo(pipeline, str(tmp_path / "photo.png"), 2, 0, 1, 1.0, 1.0, [], -0.5)
    with pytest.raises(gr.Error, match="Saturation must be"):
        colorize_photo(pipeline, str(tmp_path / "photo.png"), 2, 0, 1, 1.0, 1.0, [], float("nan"))
    assert model_display_name(str(model_dir)) == Path(model_dir).name
    assert model_display_name("you/my-colorizer") == "you/my-colorizer"
