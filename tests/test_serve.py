"""digits.serve: the JSON API and the page, through Starlette's test client."""

import asyncio
import dataclasses
import http.client
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the web app needs the serve extra: pip install '.[serve]'")
from starlette.testclient import TestClient  # noqa: E402

from digits import serve  # noqa: E402
from digits.modelfile import TrainedModel, save_model  # noqa: E402
from digits.serve import MAX_BODY, create_app  # noqa: E402
from nets.config import CNN, MLP  # noqa: E402
from nets.errors import ConfigError  # noqa: E402
from nets.models import build_model  # noqa: E402

INFO = {"kind": "mlp", "layers": [784, 16, 10], "dataset": "mnist", "test_accuracy": 0.9}


def fake_model(calls: list):
    """Probabilities that say 7 (0.9) for every image, recording what it was given."""

    def predict_proba(images: np.ndarray) -> np.ndarray:
        calls.append(images)
        out = np.full((len(images), 10), 0.1 / 9, np.float32)
        out[:, 7] = 0.9
        return out

    return predict_proba


@pytest.fixture
def calls() -> list:
    return []


@pytest.fixture
def client(calls) -> TestClient:
    app = create_app(fake_model(calls), INFO)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def page(strokes: int = 1, h: int = 240, w: int = 480, mode: str = "L") -> Image.Image:
    """White paper with `strokes` black vertical bars (each a '1'), left to right."""
    pixels = np.full((h, w), 255, np.uint8)
    for i in range(strokes):
        left = 40 + i * (w - 80) // max(strokes, 1)
        pixels[40:200, left: left + 16] = 0
    return Image.fromarray(pixels).convert(mode)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def assert_error(response, status: int, words: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and words in body["error"].lower(), body
    assert "Traceback" not in response.text


def test_health_and_model(client):
    assert client.get("/api/health").json() == {"status": "ok"}
    assert client.get("/api/model").json() == INFO


def test_the_page_and_its_files_are_served(client):
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    for element in ('id="pad"', 'id="digit"', 'id="probabilities"', 'id="preview"',
                    'id="clear"', 'id="upload"'):
        assert element in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "http" not in response.text.replace("http-equiv", "")  # nothing from elsewhere
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert "http://" not in asset.text and "https://" not in asset.text


@pytest.mark.parametrize("fmt,content_type", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_predict_a_raw_body(client, calls, fmt, content_type):
    response = client.post("/api/predict", content=encode(page(), fmt),
                           headers={"Content-Type": content_type})
    assert response.status_code == 200
    answer = response.json()
    assert answer["number"] == "7"
    (digit,) = answer["digits"]
    assert digit["digit"] == 7 and digit["confidence"] == pytest.approx(0.9)
    assert len(digit["probabilities"]) == 10 and sum(digit["probabilities"]) == pytest.approx(1)
    left, top, right, bottom = digit["box"]
    assert abs(left - 40) <= 2 and abs(top - 40) <= 2 and abs(right - 56) <= 2
    assert abs(bottom - 200) <= 2
    assert digit["unsure"] is False
    seen = np.array(answer["seen"])
    assert seen.shape == (1, 28, 28) and seen.max() == pytest.approx(1.0)
    (images,) = calls
    assert images.shape == (1, 28, 28) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1


def test_predict_a_multipart_upload_of_a_number(client):
    files = {"image": ("strip.jpg", encode(page(strokes=3, mode="RGB"), "JPEG"), "image/jpeg")}
    response = client.post("/api/predict", files=files)
    assert response.status_code == 200
    answer = response.json()
    assert answer["number"] == "777" and len(answer["seen"]) == 3
    lefts = [d["box"][0] for d in answer["digits"]]
    assert lefts == sorted(lefts) and lefts[0] < 60 < lefts[1] < 240 < lefts[2]


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP"])
def test_the_other_documented_formats(client, fmt):
    response = client.post("/api/predict", content=encode(page(mode="RGB"), fmt),
                           headers={"Content-Type": f"image/{fmt.lower()}"})
    assert response.status_code == 200 and response.json()["number"] == "7"


def test_transparent_drawing_is_read_on_white_paper(client):
    ink = np.zeros((240, 240, 4), np.uint8)
    ink[40:200, 100:116, 3] = 255  # black strokes on a transparent canvas
    response = client.post("/api/predict", content=encode(Image.fromarray(ink, "RGBA")),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 200 and response.json()["number"] == "7"


def test_no_ink_is_422(client):
    blank = encode(Image.new("L", (280, 280), 255))
    assert_error(client.post("/api/predict", content=blank,
                             headers={"Content-Type": "image/png"}), 422, "no digit")


@pytest.mark.parametrize("body,words", [
    (b"", "no image"),
    (b"this is not an image", "not an image"),
    (b'{"image": "/etc/passwd"}', "not an image"),
    (encode(page())[:300], "corrupt"),
    (encode(Image.new("RGB", (40, 40)), "PPM"), "not an image"),  # a format not offered
])
def test_bad_bodies_are_400(client, body, words):
    assert_error(client.post("/api/predict", content=body,
                             headers={"Content-Type": "image/png"}), 400, words)


def test_multipart_without_an_image_field_is_400(client):
    response = client.post("/api/predict", files={"photo": ("a.png", encode(page()))})
    assert_error(response, 400, "'image'")
    response = client.post("/api/predict", data={"image": "not a file"},
                           files={"other": ("a.png", b"x")})
    assert_error(response, 400, "'image'")


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_refused_before_decoding(client, monkeypatch):
    from PIL import ImageFile

    loads = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: loads.append(self.size) or original(self))
    response = client.post("/api/predict", content=bomb_png(9000, 7000),  # under Pillow's own limit
                           headers={"Content-Type": "image/png"})
    assert_error(response, 400, "9000x7000 pixels")
    assert loads == []  # nothing was decoded
    ok = client.post("/api/predict", content=encode(page()), headers={"Content-Type": "image/png"})
    assert ok.status_code == 200 and loads  # the same check lets normal images through


def test_a_body_over_10_mb_is_413(client):
    big = b"\x89PNG" + b"\x00" * MAX_BODY
    assert_error(client.post("/api/predict", content=big,
                             headers={"Content-Type": "image/png"}), 413, "10 mb")


def test_the_size_limit_stops_reading_a_streamed_body():
    app = create_app(fake_model([]), INFO)
    chunk = b"\x00" * (1 << 20)
    received, sent = [], []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": chunk, "more_body": len(received) < 100}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/predict", "raw_path": b"",
             "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
             "headers": [(b"content-type", b"image/png")],  # no length: chunked
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert len(received) == 11  # 100 MB were on offer; it stopped just past 10 MB


def test_wrong_methods_and_paths(client):
    assert_error(client.get("/api/predict"), 405, "method not allowed")
    assert_error(client.post("/api/health"), 405, "method not allowed")
    assert_error(client.delete("/"), 405, "method not allowed")
    assert_error(client.get("/api/nothing"), 404, "not found")
    assert client.get("/static/../serve.py").status_code == 404


def test_the_server_keeps_serving_after_errors_and_failures():
    def broken(images):
        raise RuntimeError("the model fell over")

    with TestClient(create_app(broken, INFO), raise_server_exceptions=False) as client:
        for _ in range(3):
            assert_error(client.post("/api/predict", content=encode(page()),
                                     headers={"Content-Type": "image/png"}), 500, "internal")
            assert_error(client.post("/api/predict", content=b"junk"), 400, "not an image")
            assert client.get("/api/health").status_code == 200


def test_serve_prints_the_url_and_binds_where_asked(monkeypatch, capsys):
    import uvicorn

    ran = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(kw, app=app))

    model = TrainedModel("cnn", build_model(CNN).init(np.random.default_rng(0)), CNN,
                         {"dataset": "mnist", "test_accuracy": 0.99, "image_shape": [28, 28],
                          "class_names": [str(i) for i in range(10)],
                          "normalisation": {"mean": 0.0, "std": 1.0}}, build_model(CNN))
    serve.serve(model, "127.0.0.1", 8123, processes=0)
    assert "http://127.0.0.1:8123/" in capsys.readouterr().out
    assert ran["host"] == "127.0.0.1" and ran["port"] == 8123
    info = TestClient(ran["app"]).get("/api/model").json()
    assert info["kind"] == "cnn" and info["test_accuracy"] == 0.99
    assert info["layers"] == [f"conv 3x3 {c}, pool" for c in CNN.channels] + ["dense 128",
                                                                             "dense 10"]
    assert info["cost"] == "cross-entropy" and info["parameters"] == model.num_params
    with pytest.raises(ConfigError, match="--port must be between 1 and 65535"):
        serve.serve(model, "127.0.0.1", 0)


@pytest.mark.parametrize("content_type,body,words", [
    ("multipart/form-data", b"garbage", "malformed multipart"),
    ("multipart/form-data; boundary=xyz", b"garbage", "malformed multipart"),
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
     b"not a png\r\n--xyz--\r\n", "not an image"),
])
def test_malformed_multipart_is_400(client, content_type, body, words):
    assert_error(client.post("/api/predict", content=body,
                             headers={"Content-Type": content_type}), 400, words)


ROOT = Path(__file__).resolve().parents[1]


def children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


@pytest.fixture
def served(tmp_path):
    """`train.py --serve` of a small random MLP in a session of its own (so that a signal
    can go to its whole process group, as Ctrl-C in a terminal does): (process, port)."""
    settings = dataclasses.replace(MLP, layers=(784, 16, 10))
    model = tmp_path / "mlp.npz"
    save_model(model, build_model(settings).init(np.random.default_rng(0)), settings,
               {"dataset": "mnist", "class_names": [str(i) for i in range(10)],
                "image_shape": [28, 28]})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--load", str(model),
                               "--serve", "--port", str(port)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, server.communicate()
        assert time.monotonic() < deadline, "the server did not start"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/api/health")
            if connection.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.2)
    yield server, port
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes: Linux")
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_the_server_reads_in_worker_processes_and_stops_cleanly(served, stop):
    server, port = served
    workers = children(server.pid)
    assert len(workers) == serve.default_processes() >= 1
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for body, status, key in ((encode(page(3)), 200, "number"), (b"junk", 400, "error"),
                              (encode(page(0)), 422, "error"), (encode(page(1)), 200, "number")):
        connection.request("POST", "/api/predict", body=body,
                           headers={"Content-Type": "image/png"})
        response = connection.getresponse()
        answer = response.read()
        assert response.status == status and response.getheader("content-type") == \
            "application/json" and key.encode() in answer[:20], answer[:200]
        assert b"Traceback" not in answer
    if stop == signal.SIGINT:  # Ctrl-C: the whole group, workers too
        os.killpg(server.pid, signal.SIGINT)
    else:  # a service manager stopping the server alone
        server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=30)
    assert server.returncode == (0 if stop == signal.SIGINT else -signal.SIGTERM), err
    assert "Traceback" not in err and err.strip() == "", err
    for worker in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)
