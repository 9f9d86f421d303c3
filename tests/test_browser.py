"""The web app in a real browser: Chromium driven by Playwright draws digits with the mouse,
uploads a photo and clears, against a real server with a model trained on real MNIST.

Skipped when Playwright or Chromium is missing, unless REQUIRE_BROWSER=1 (CI), where that
fails instead.
"""

import math
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from photo_fixtures import synthetic_strip
from PIL import Image

import train
from digits.datasets import load_dataset
from digits.modelfile import load_model

try:
    import uvicorn

    from digits.serve import create_app, model_info
except ImportError:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise
    pytest.skip("the web app needs the serve extra: pip install '.[serve]'",
                allow_module_level=True)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 15_000


def _missing(message: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, mnist_dir) -> Path:
    path = tmp_path_factory.mktemp("browser") / "mlp.npz"
    assert train.main(["--data-dir", str(mnist_dir), "--layers", "784,128,10", "--epochs",
                       "2", "--save", str(path), "--quiet"]) == 0
    return path


@pytest.fixture(scope="module")
def server(model_path):
    """A real uvicorn server on a free port of 127.0.0.1, in a thread."""
    model = load_model(str(model_path))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(model.predict_proba, model_info(model))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install '.[test]')")
    if not CHROMIUM.exists():
        _missing(f"Chromium is not at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    page.goto(server + "/")
    yield page
    page.close()


def stroke(page, points, pause_ms: int = 0) -> None:
    """One mouse stroke through `points` (pad pixels), interpolated every few pixels."""
    box = page.locator("#pad").bounding_box()
    at = [(box["x"] + x, box["y"] + y) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(at, at[1:]):
        steps = max(2, int(math.hypot(x1 - x0, y1 - y0) / 6))
        page.mouse.move(x1, y1, steps=steps)
        if pause_ms:
            page.wait_for_timeout(pause_ms)
    page.mouse.up()


ONE = [(245, 35), (238, 210)]
SEVEN = [(180, 45), (300, 45), (295, 60), (230, 210)]
ZERO = [(240 + 55 * math.sin(t), 125 - 85 * math.cos(t))
        for t in np.linspace(0, 2 * math.pi, 40)]


def test_draw_a_one_a_seven_and_a_zero(page):
    from playwright.sync_api import expect

    digit = page.locator("#digit")
    expect(digit).to_have_text("")
    for points, want in ((ONE, "1"), (SEVEN, "7"), (ZERO, "0")):
        stroke(page, points)
        expect(digit).to_have_text(want, timeout=WAIT_MS)
        expect(page.locator("#probabilities .bar")).to_have_count(3)
        expect(page.locator("#preview canvas")).to_have_count(1)
        page.click("#clear")
        expect(digit).to_have_text("")


def test_the_answer_updates_while_drawing(page):
    from playwright.sync_api import expect

    asked = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith("/api/predict") else None)
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + 245, box["y"] + 35)
    page.mouse.down()
    for y in range(40, 215, 10):  # a slow downward stroke: about a second
        page.mouse.move(box["x"] + 242, box["y"] + y, steps=2)
        page.wait_for_timeout(60)
    expect(page.locator("#digit")).not_to_have_text("", timeout=WAIT_MS)
    during = len(asked)
    page.mouse.up()
    assert during >= 1  # answered before the pen was lifted
    expect(page.locator("#digit")).to_have_text("1", timeout=WAIT_MS)


def test_upload_a_photo_of_a_number_then_clear(page, tmp_path, mnist_dir):
    from playwright.sync_api import expect

    data = load_dataset("mnist", mnist_dir, download=False, progress=False)
    pick = [int(np.flatnonzero(data.test_labels == k)[0]) for k in (3, 1, 4)]
    photo, _ = synthetic_strip(data.test_images[pick], np.random.default_rng(0), noise=0.01)
    path = tmp_path / "number.jpg"
    Image.fromarray(np.round(photo * 255).astype(np.uint8)).save(path, quality=92)
    page.set_input_files("#upload", str(path))
    expect(page.locator("#digit")).to_have_text("314", timeout=WAIT_MS)
    expect(page.locator("#preview canvas")).to_have_count(3)
    expect(page.locator("#probabilities .candidates")).to_have_count(3)
    page.click("#clear")
    expect(page.locator("#digit")).to_have_text("")
    expect(page.locator("#preview canvas")).to_have_count(0)


def test_a_photo_without_a_digit_says_so(page, tmp_path):
    from playwright.sync_api import expect

    path = tmp_path / "blank.png"
    Image.new("L", (200, 120), 235).save(path)
    page.set_input_files("#upload", str(path))
    expect(page.locator("#status")).to_contain_text("no digit", timeout=WAIT_MS)
    expect(page.locator("#digit")).to_have_text("")
