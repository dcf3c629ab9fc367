#!/usr/bin/env python
"""A bounded loopback load on a bodyparts server: latency percentiles, throughput, error counts.

    python tools/benchmark_server.py --url http://127.0.0.1:8000 [--requests 200]
                                     [--concurrency 1 8] [--route predict]
                                     [--image IMG | --size 192]
    python tools/benchmark_server.py --config-file CFG [--max-queue 8] [--server-arg=--max-batch=4]
                                     [...] [KEY VALUE ...]

With --config-file it starts ``tools/serve.py`` itself on 127.0.0.1 and a free port (the trailing
KEY VALUE pairs go to it, e.g. ``MODEL.WEIGHTS model_final.pth``) and stops it at the end.
For each --concurrency C, C clients (threads, one keep-alive connection each) send --requests
requests in all, each as soon as its previous answer came back. Only loopback addresses are
accepted as targets.

Reported per level: answers by HTTP status, 503s for a full queue (``"error": "queue_full"``, the
only error allowed), unexpected errors (any other status, 503s for another reason, connection
errors), p50 / p95 / p99 / max latency of the successful requests, throughput (successful
requests per second of wall time), and the p50 of the server's own timing headers of the
successful answers (``X-Queue-Ms``, ``X-Inference-Ms``, ``X-Postprocess-Ms``; null when the server
does not send one). Exit code 1 when any unexpected error occurred; 2 on a usage
error. --json FILE saves the report.
"""

import argparse
import http.client
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlparse

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UsageError(Exception):
    """Exit code 2."""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--url", help="a running server, e.g. http://127.0.0.1:8000 (loopback only)"
    )
    target.add_argument(
        "--config-file", metavar="FILE", help="start tools/serve.py with this config"
    )
    add("--requests", type=int, default=200, metavar="N", help="requests per concurrency level")
    add("--concurrency", type=int, nargs="+", default=[1, 8], metavar="C", help="client counts")
    add("--route", choices=["predict", "render"], default="predict", help="the route to load")
    add("--image", metavar="IMG", help="the image to send (default: a synthetic scene)")
    add("--size", type=int, default=192, help="synthetic scene size in pixels (default 192)")
    add("--warmup", type=int, default=2, metavar="N", help="requests sent first, not counted")
    add("--token", default=None, help="send 'Authorization: Bearer TOKEN'")
    add("--timeout", type=float, default=120.0, help="seconds to wait for one answer")
    add("--max-queue", type=int, default=None, help="--config-file: the server's --max-queue")
    add(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="--config-file: one more argument for tools/serve.py (repeatable)",
    )
    add("--json", metavar="FILE", help="save the report as JSON")
    add("opts", nargs="*", default=[], help="--config-file: config overrides KEY VALUE ...")
    return parser


# ----------------------------------------------------------------------------------------------
# the image and the target


def image_bytes(args) -> Tuple[bytes, str]:
    """(encoded image, content type): --image as it is on disk, or a synthetic scene as PNG."""
    if args.image:
        if not os.path.isfile(args.image):
            raise UsageError(f"--image {args.image} does not exist")
        ext = os.path.splitext(args.image)[1].lower().lstrip(".")
        kind = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "bmp": "bmp", "webp": "webp"}.get(ext)
        with open(args.image, "rb") as f:
            return f.read(), f"image/{kind}" if kind else "application/octet-stream"
    from bodyparts.data.synthetic.render import render_scene

    scene = render_scene(1, args.size, args.size, min_persons=2, max_persons=3)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(scene.image[:, :, ::-1]))
    assert ok
    return png.tobytes(), "image/png"


def loopback_target(url: str) -> Tuple[str, int]:
    """(host, port) of ``url``; UsageError unless it is http:// on a loopback address."""
    parsed = urlparse(url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise UsageError(f"--url {url}: give http://HOST:PORT")
    host, port = parsed.hostname, parsed.port or 80
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except socket.gaierror as e:
        raise UsageError(f"--url {url}: cannot resolve {host} ({e})") from None
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise UsageError(f"--url {url}: only loopback servers (127.0.0.0/8, ::1) are loaded")
    return host, port


def _get(host: str, port: int, path: str, timeout: float = 5.0) -> Tuple[int, Dict]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


class ServerProcess:
    """tools/serve.py in a child process on 127.0.0.1 and a free port."""

    def __init__(self, args):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        cmd = [
            sys.executable,
            os.path.join(REPO, "tools", "serve.py"),
            "--config-file",
            args.config_file,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        if args.max_queue is not None:
            cmd += ["--max-queue", str(args.max_queue)]
        if args.token:
            cmd += ["--token", args.token]
        cmd += list(args.server_arg) + list(args.opts)
        self.proc = subprocess.Popen(cmd, cwd=REPO)
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise UsageError(f"tools/serve.py exited with code {self.proc.returncode}")
            try:
                if _get("127.0.0.1", self.port, "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise UsageError("tools/serve.py did not answer /health within 300 s")
            time.sleep(0.25)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ----------------------------------------------------------------------------------------------
# the load


_TIMING_HEADERS = {
    "queue": "X-Queue-Ms",
    "inference": "X-Inference-Ms",
    "postprocess": "X-Postprocess-Ms",
}


def _one_request(conn, path: str, body: bytes, headers: Dict) -> Tuple[str, float, Dict]:
    """(outcome, latency s, {timing name: ms} of the server's headers): outcome is the HTTP
    status as text, "503 queue_full", or "connection_error: ..."."""
    start = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    latency = time.perf_counter() - start
    timings = {}
    for key, name in _TIMING_HEADERS.items():
        value = resp.getheader(name)
        if value is not None:
            try:
                timings[key] = float(value)
            except ValueError:
                pass
    outcome = str(resp.status)
    if resp.status == 503:
        try:
            code = json.loads(data).get("error")
        except ValueError:
            code = None
        outcome = (
            "503 queue_full" if code == "queue_full" and resp.getheader("Retry-After") else "503"
        )
    return outcome, latency, timings


def run_level(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: Dict,
    requests: int,
    clients: int,
    timeout: float,
) -> Dict:
    """``requests`` POSTs from ``clients`` threads; the report of the level."""
    lock = threading.Lock()
    issued = [0]
    outcomes: List[Tuple[str, float, Dict]] = []

    def client():
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            while True:
                with lock:
                    if issued[0] >= requests:
                        return
                    issued[0] += 1
                try:
                    result = _one_request(conn, path, body, headers)
                except (OSError, http.client.HTTPException) as e:
                    result = (f"connection_error: {type(e).__name__}", 0.0, {})
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                with lock:
                    outcomes.append(result)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    counts: Dict[str, int] = {}
    for outcome, _, _ in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    ok = [lat for outcome, lat, _ in outcomes if outcome == "200"]
    server_ms = {}
    for key in _TIMING_HEADERS:
        values = [t[key] for outcome, _, t in outcomes if outcome == "200" and key in t]
        server_ms[f"{key}_p50"] = round(float(np.percentile(values, 50)), 1) if values else None
    lat_ms = np.array(ok) * 1000.0
    pct = (lambda q: round(float(np.percentile(lat_ms, q)), 1)) if len(ok) else (lambda q: None)
    return {
        "concurrency": clients,
        "requests": len(outcomes),
        "ok": len(ok),
        "rejected_queue_full": counts.get("503 queue_full", 0),
        "unexpected_errors": len(outcomes) - len(ok) - counts.get("503 queue_full", 0),
        "outcomes": dict(sorted(counts.items())),
        "latency_ms": {
            "p50": pct(50),
            "p95": pct(95),
            "p99": pct(99),
            "max": round(float(lat_ms.max()), 1) if len(ok) else None,
        },
        "throughput_rps": round(len(ok) / wall, 2) if wall > 0 else None,
        "server_ms": server_ms,
        "wall_s": round(wall, 2),
    }


def print_report(report: Dict) -> None:
    info = report["server"]
    print(f"server {report['url']}  model {info.get('model')}  limits {info.get('limits')}")
    print(
        f"route /{report['route']}, image {report['image']}, client machine: "
        f"{report['cpu_count']} CPUs, load average (1, 5, 15 min) at start "
        f"{report['load_average']['start']}, at end {report['load_average']['end']}"
    )
    head = (
        f"{'clients':>7} {'requests':>8} {'ok':>5} {'503 full':>8} {'unexpected':>10} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7} "
        f"{'queue':>7} {'model':>7} {'post':>7}  (server p50 ms)"
    )
    print(head)
    for level in report["levels"]:
        lat = level["latency_ms"]
        cell = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        print(
            f"{level['concurrency']:>7} {level['requests']:>8} {level['ok']:>5} "
            f"{level['rejected_queue_full']:>8} {level['unexpected_errors']:>10} "
            f"{cell(lat['p50']):>8} {cell(lat['p95']):>8} {cell(lat['p99']):>8} "
            f"{cell(level['throughput_rps']):>7} "
            + " ".join(f"{cell(level['server_ms'][f'{key}_p50']):>7}" for key in _TIMING_HEADERS)
        )
        extra = {k: v for k, v in level["outcomes"].items() if k not in ("200", "503 queue_full")}
        if extra:
            print(f"        unexpected answers: {extra}")


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    server = None
    try:
        if args.requests < 1 or any(c < 1 for c in args.concurrency):
            raise UsageError("--requests and --concurrency must be >= 1")
        if args.opts and not args.config_file:
            raise UsageError(f"config overrides {args.opts} need --config-file")
        body, content_type = image_bytes(args)
        if args.config_file:
            if not os.path.isfile(args.config_file):
                raise UsageError(f"config file {args.config_file} does not exist")
            server = ServerProcess(args)
            url = server.url
        else:
            url = args.url.rstrip("/")
        host, port = loopback_target(url)
        try:
            status, info = _get(host, port, "/info")
        except OSError as e:
            raise UsageError(f"no server answers at {url} ({e})") from None
        if status != 200:
            raise UsageError(f"{url}/info answered HTTP {status}: is it a bodyparts server?")
        headers = {"Content-Type": content_type}
        if args.token:
            headers["Authorization"] = f"Bearer {args.token}"
        path = f"/{args.route}" + ("?legend=false" if args.route == "render" else "")
        load_start = [round(v, 2) for v in os.getloadavg()]
        if args.warmup:
            run_level(host, port, path, body, headers, args.warmup, 1, args.timeout)
        levels = [
            run_level(host, port, path, body, headers, args.requests, c, args.timeout)
            for c in args.concurrency
        ]
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
    report = {
        "url": url,
        "route": args.route,
        "image": args.image or f"synthetic scene {args.size} x {args.size} PNG ({len(body)} bytes)",
        "server": info,
        "cpu_count": os.cpu_count(),
        "load_average": {"start": load_start, "end": [round(v, 2) for v in os.getloadavg()]},
        "levels": levels,
    }
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 1 if any(level["unexpected_errors"] for level in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
