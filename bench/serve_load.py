"""How fast does the web app answer? Concurrent clients against `train.py --serve`.

Starts `python train.py --load MODEL --serve` on a free port of 127.0.0.1, then runs
CLIENTS threads that each send REQUESTS drawings (a 280x280 PNG of a hand-drawn 7, as the
page sends them) to POST /api/predict over one keep-alive connection, and prints the
throughput, the latency percentiles and the number of errors (anything but a 200 with the
right answer). Bounded: at most CLIENTS x REQUESTS requests and --max-seconds of sending.
On Linux it also prints the CPU time per request that the server (with its worker
processes) and this load generator spent: figures that a busy machine does not change
much, unlike the latencies.

    python bench/serve_load.py --model models/mnist-mlp.npz        # 8 clients x 200
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # never anything else: this only loads a server of our own


def drawing() -> bytes:
    """A 280x280 PNG of a 7 in black strokes on white, like the page's pad."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(image)
    pen.line([(80, 60), (200, 60), (120, 230)], fill=0, width=20, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_until_up(port: int, server: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: the server exited with code {server.returncode}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/api/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("error: the server did not answer within a minute")


def client(port: int, body: bytes, requests: int, deadline: float, latencies: list,
           errors: list) -> None:
    """Send `requests` drawings over one keep-alive connection (opened again after an
    error), recording each latency and every wrong answer. A minimal HTTP/1.1 client:
    http.client's header parsing costs more CPU than this benchmark should take from the
    server it shares the machine with."""
    request = (f"POST /api/predict HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
               f"Content-Type: image/png\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    request += body
    connection = reader = None
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        try:
            if connection is None:
                connection = socket.create_connection((HOST, port), timeout=30)
                reader = connection.makefile("rb")
            connection.sendall(request)
            status, answer = read_response(reader)
            latencies.append(time.perf_counter() - start)
            if status != 200 or b'"number":"7"' not in answer[:40]:  # no JSON parsing either
                errors.append(f"{status} {answer[:100]!r}")
        except (OSError, ValueError) as error:
            errors.append(repr(error))
            if connection is not None:
                connection.close()
            connection = None
    if connection is not None:
        connection.close()


def read_response(reader: io.BufferedReader) -> tuple[int, bytes]:
    """One response: (status, body). ValueError for anything but a body of known length."""
    status_line = reader.readline()
    if not status_line.startswith(b"HTTP/1.1 "):
        raise ValueError(f"not an HTTP/1.1 response: {status_line[:60]!r}")
    length = None
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("a response without Content-Length")
    answer = reader.read(length)
    if len(answer) != length:
        raise ValueError("the connection closed in the middle of a response")
    return int(status_line.split()[1]), answer


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of process `pid` and its descendants so far; None where
    /proc cannot tell (anything but Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                    for child in (task / "children").read_text().split()]
    except (OSError, ValueError):
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) or 0.0 for child in children)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model file saved by train.py")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 64 and 1 <= args.requests <= 10_000):
        parser.error("use 1-64 clients and 1-10000 requests each")

    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--load", args.model,
                               "--serve", "--host", HOST, "--port", str(port)],
                              stdout=subprocess.DEVNULL)
    try:
        wait_until_up(port, server)
        body = drawing()
        client(port, body, 10, time.monotonic() + 60, [], [])  # warm up
        latencies: list[float] = []
        errors: list[str] = []
        deadline = time.monotonic() + args.max_seconds
        threads = [threading.Thread(target=client, args=(port, body, args.requests, deadline,
                                                         latencies, errors))
                   for _ in range(args.clients)]
        start, server_cpu, own_cpu = time.perf_counter(), cpu_seconds(server.pid), \
            time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        own_cpu = time.process_time() - own_cpu
        server_end = cpu_seconds(server.pid)
        server_cpu = None if server_cpu is None or server_end is None else \
            server_end - server_cpu
    finally:
        server.terminate()
        server.wait(timeout=30)

    ms = 1e3 * np.array(latencies)
    print(f"{args.clients} clients x {args.requests} requests of a 280x280 PNG "
          f"({len(body):,} bytes) to {args.model}")
    print(f"answered      {len(latencies)} in {wall:.1f} s: {len(latencies) / wall:.0f} requests/s")
    if len(ms):
        print(f"latency       p50 {np.percentile(ms, 50):.1f} ms   p90 {np.percentile(ms, 90):.1f} "
              f"ms   p99 {np.percentile(ms, 99):.1f} ms   max {ms.max():.1f} ms")
    if len(ms) and server_cpu is not None:
        print(f"CPU time      {1e3 * server_cpu / len(ms):.2f} ms per request in the server, "
              f"{1e3 * own_cpu / len(ms):.2f} ms in this load generator")
    print(f"errors        {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    return 1 if errors or len(latencies) < args.clients * args.requests else 0


if __name__ == "__main__":
    sys.exit(main())
