"""The local web app: draw a digit (or upload a photo of a number) and watch the model read it.

    GET  /              the page (digits/static: plain HTML, CSS and JavaScript, no CDN)
    POST /api/predict   an image as the body (image/png, image/jpeg, ...) or as the
                        multipart field `image` -> the number, one entry per digit, and
                        the 28x28 images the network saw
    GET  /api/model     the model's metadata
    GET  /api/health    {"status": "ok"}

`create_app` depends only on a probability function and a metadata dict, so any model
(MLP or CNN) or a stand-in for tests can be served. Reading an image is CPU work in many
small NumPy steps that hold the GIL, so `serve` has it done in worker processes, one per
CPU (`digits.workers`), while the event loop only parses requests and writes answers.
The client's bytes are only ever decoded as one of a few image formats: nothing it sends
is a path or code. Bodies are capped while they stream in (413), the pixel count is
checked from the header before anything is decoded (400), and every error is JSON
`{"error": "..."}`.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from digits.modelfile import TrainedModel
from nets.errors import ConfigError, ImageError

try:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from digits.segment import read_number
    from digits.workers import Workers
except ImportError as error:  # one line for the user, not a traceback
    raise ConfigError(f"the web app needs {error.name}: pip install '.[serve,image]'") \
        from None

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 10 * 1024 * 1024  # bytes
MAX_PIXELS = 50_000_000  # a 48-megapixel phone photo fits; more is a decompression bomb here
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

PredictProba = Callable[[np.ndarray], np.ndarray]


class BadRequest(Exception):
    """A request the client can fix: answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------
# Bodies and images


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes (checked on
    the declared length first, then while the chunks arrive)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body is larger than {limit // 2**20} MB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"the body is larger than {limit // 2**20} MB")
        chunks.append(chunk)
    return b"".join(chunks)


async def image_bytes(request: Request) -> bytes:
    """The uploaded image: the multipart field `image`, or else the whole body."""
    body = await read_body(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        body = await _multipart_image(request.scope, body)
    if not body:
        raise BadRequest(400, "the request holds no image: send it as the body "
                              "(Content-Type: image/png or image/jpeg) or as the "
                              "multipart field 'image'")
    return body


async def _multipart_image(scope: dict, body: bytes) -> bytes:
    sent = False

    async def replay() -> dict:  # the body already read (and capped), once more
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(scope, replay).form(max_files=4, max_fields=16) as form:
            field = form.get("image")
            if field is None or isinstance(field, str):
                raise BadRequest(400, "the multipart form has no file field named 'image'")
            return await field.read()
    except HTTPException as error:  # malformed multipart, as python-multipart saw it
        raise BadRequest(400, f"malformed multipart body: {error.detail}") from None


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Image bytes -> grayscale float32 (height, width) in [0, 1].

    Only PNG, JPEG, GIF, BMP, TIFF and WEBP are opened; the size in the header is checked
    against `max_pixels` before any pixel is decoded. Transparent pixels are composited
    onto white paper; EXIF orientation is applied; only the first frame is read.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise BadRequest(400, f"the image is {width}x{height} pixels; at most "
                                      f"{max_pixels:,} pixels are accepted")
            if width == 0 or height == 0:
                raise BadRequest(400, "the image is empty (0 pixels)")
            img.load()
            img = ImageOps.exif_transpose(img) or img
            if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit gray: scale by range
                wide = np.asarray(img, dtype=np.float64)
                return (wide / max(float(np.nanmax(wide)), 1.0)).clip(0, 1).astype(np.float32)
            return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except BadRequest:
        raise
    except UnidentifiedImageError:
        raise BadRequest(400, "not an image: send a PNG, JPEG, GIF, BMP, TIFF or WEBP file") \
            from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise BadRequest(400, f"the image is corrupt or truncated ({error})") from None


# ---------------------------------------------------------------------------------------
# The app


def predict_image(data: bytes, predict_proba: PredictProba) -> dict:
    """Image bytes -> the JSON answer of /api/predict."""
    gray = decode_image(data)
    try:
        readings = read_number(gray, predict_proba)
    except ImageError as error:
        raise BadRequest(422, str(error)) from None
    return {
        "number": "".join(str(r.digit) for r in readings),
        "digits": [{"digit": r.digit, "confidence": r.confidence,
                    "probabilities": [float(p) for p in r.probabilities],
                    "box": [int(v) for v in r.box], "unsure": r.unsure} for r in readings],
        # Rounded in float64: float32's 0.143 would be written 0.14300000667572021.
        "seen": [np.round(r.image.astype(np.float64), 3).tolist() for r in readings],
    }


def answer(data: bytes, predict_proba: PredictProba) -> tuple[int, bytes]:
    """/api/predict's status and JSON body for image bytes (rendered where they are read,
    so that a worker process hands the server bytes)."""
    try:
        return 200, _render(predict_image(data, predict_proba))
    except BadRequest as error:
        return error.status, _render({"error": str(error)})


def create_app(predict_proba: PredictProba, model_info: dict, processes: int = 0) -> Starlette:
    """The ASGI app around `predict_proba` ((N, 28, 28) float32 in [0, 1] -> (N, 10)
    probabilities) and `model_info` (JSON-able metadata shown at /api/model).

    Images are read in `processes` worker processes forked now (`digits.workers`; Linux
    only), or with 0 in a thread of this process; should every worker die, in a thread."""
    info = dict(model_info)
    work = partial(answer, predict_proba=predict_proba)
    workers = Workers(work, processes) if processes > 0 else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if workers is not None:
                workers.close()

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def predict(request: Request) -> Response:
        data = await image_bytes(request)
        if workers is not None and workers.alive:
            status, body = await workers.run(data)
        else:
            status, body = await run_in_threadpool(work, data)
        return Response(body, status, SECURITY_HEADERS, "application/json")

    async def model(request: Request) -> Response:
        return _json(info)

    async def health(request: Request) -> Response:
        return _json({"status": "ok"})

    async def bad_request(request: Request, error: BadRequest) -> Response:
        return _json({"error": str(error)}, error.status)

    async def http_error(request: Request, error: HTTPException) -> Response:
        return _json({"error": error.detail}, error.status_code, error.headers)

    async def server_error(request: Request, error: Exception) -> Response:
        return _json({"error": "internal error: the server could not answer this "
                                "request"}, 500)

    return Starlette(
        routes=[Route("/", page, methods=["GET"]),
                Route("/api/predict", predict, methods=["POST"]),
                Route("/api/model", model, methods=["GET"]),
                Route("/api/health", health, methods=["GET"]),
                Mount("/static", StaticFiles(directory=STATIC), name="static")],
        exception_handlers={BadRequest: bad_request, HTTPException: http_error,
                            Exception: server_error},
        lifespan=lifespan,
    )


def default_processes() -> int:
    """Worker processes for `serve`: one per CPU this process may use, at most 4; 0 (read
    in a thread) where processes are not forked, anywhere but Linux."""
    if not sys.platform.startswith("linux"):
        return 0
    return min(len(os.sched_getaffinity(0)), 4)


def _render(content: Any) -> bytes:  # as Starlette's JSONResponse renders
    return json.dumps(content, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def _json(content: Any, status: int = 200, headers: dict | None = None) -> Response:
    return JSONResponse(content, status_code=status, headers={**SECURITY_HEADERS,
                                                               **(headers or {})})


def model_info(model: TrainedModel) -> dict:
    """What /api/model shows of a loaded model."""
    if model.kind == "mlp":
        layers: list = list(model.settings.layers)
    else:  # the CNN: its layers in words
        layers = [f"conv {w.shape[-1]}x{w.shape[-1]} {w.shape[0]}, pool"
                  for w in (layer["w"] for layer in model.params["conv"])]
        layers += [f"dense {layer['w'].shape[1]}" for layer in model.params["dense"]]
    return {"kind": model.kind, "layers": layers, "dataset": model.meta["dataset"],
            "cost": model.settings.cost, "test_accuracy": model.meta.get("test_accuracy"),
            "parameters": model.num_params, "classes": model.class_names}


def serve(model: TrainedModel, host: str = "127.0.0.1", port: int = 8000,
          processes: int | None = None) -> None:
    """Serve `model` (see `digits.modelfile.load_model`) until Ctrl-C, reading images in
    `processes` worker processes (default: `default_processes()`). ConfigError for a model
    that does not read 28x28 images or a port outside 1-65535."""
    import uvicorn

    model.check_fits("28x28 digit images", 784, model.network.num_classes)
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    processes = default_processes() if processes is None else processes
    app = create_app(model.predict_proba, model_info(model), processes)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving the {model.kind} model on http://{shown}:{port}/  (Ctrl-C to stop)",
          flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: {host} is reachable from other machines", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
