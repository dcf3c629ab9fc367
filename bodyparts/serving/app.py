"""The HTTP server of a bodyparts model (FastAPI): routes, limits, authentication, the web page.

Routes (``create_app``):

* ``POST /predict``: an image -> the JSON record of ``tools/demo.py --json``
  (:mod:`bodyparts.utils.predictions`).
* ``POST /render``: an image -> the PNG drawn as ``tools/demo.py`` draws it.
* Both answer with ``X-Queue-Ms`` (waiting for the model), ``X-Inference-Ms`` (the model alone),
  ``X-Postprocess-Ms`` (JSON / drawing and PNG encoding, in a thread pool beside the model thread)
  and ``X-Person-Count`` (absent for the image-level segmenter).
* ``WebSocket /stream``: a stream of frames (a camera): each binary message an encoded image,
  answered by a text message ``{"frame", "persons": [{"id", "box_xyxy", "score"}],
  "person_count", "queue_ms", "inference_ms", "postprocess_ms"}`` and then a binary message, the
  PNG drawing (no legend). The persons keep their ids across the connection's frames
  (:class:`bodyparts_runtime.tracking.PersonTracker`, one per connection; ``id`` null until the
  tracker confirms a person) and are drawn in their id's colour. A frame that cannot be used is
  answered ``{"error", "detail"}`` (and ``retry_after`` for ``queue_full``) and the stream goes
  on. With a token: ``/stream?token=T`` (browsers cannot send headers on a WebSocket); a wrong
  one is answered ``{"error": "unauthorized"}`` and the connection closed (1008).
* ``GET /health``, ``GET /info`` (taxonomy legend, limits, the in-browser model), ``GET /`` (the
  web page), ``/docs``, ``/redoc`` and ``/openapi.json`` (served without any CDN).
* With ``browser_model`` (an ONNX export folder), the page may run the model itself with ONNX
  Runtime Web: ``GET /browser-model/model.onnx`` and ``/browser-model/export_info.json`` (those two
  files only), ``GET /ort/{file}`` (ONNX Runtime Web's files, :mod:`bodyparts.serving.browser`).

The image is the raw body (``image/*`` or ``application/octet-stream``) or a multipart form with
a ``file`` field. Errors are JSON ``{"error": code, "detail": message}``.

Shedding work: a body not received within ``body_timeout`` is answered 408 and the connection
closed; a request whose client disconnects while it waits for the model is dropped before the
model sees it (``/health`` ``dropped``); :meth:`InferenceWorker.drain` (SIGTERM, see
:mod:`bodyparts.serving.server`) answers 503 to the requests not started within
``shutdown_timeout``. With ``allowed_hosts``, other ``Host`` headers are answered 400
(:mod:`bodyparts.serving.hosts`).
"""

import asyncio
import hmac
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import anyio
import cv2
import numpy as np
from bodyparts_runtime.tracking import PersonTracker
from fastapi import Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from ..utils.predictions import PredictionFormatter
from .browser import ORT_DIST_DIR, ORT_FILES, BrowserModel, BrowserModelError, ort_files
from .hosts import HostAllowList
from .images import ImageInputError, check_raw_content_type, decode_image
from .worker import InferenceWorker, QueueFull, WorkerStopped

__all__ = ["ServerLimits", "create_app", "STATIC_DIR"]

logger = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


@dataclass(frozen=True)
class ServerLimits:
    """What one request may send and how many may wait.

    Attributes:
        max_pixels: largest width x height of an image (413 above).
        max_bytes: largest request body in bytes (413 above).
        max_queue: requests waiting for the model (503 with Retry-After beyond).
        max_batch: images the model takes in one call when several are waiting.
        body_timeout: seconds a request body may take to arrive in full (408 and the connection
            closed after).
        shutdown_timeout: seconds the queued requests may still run after SIGTERM; those not
            started by then get 503 (``tools/serve.py`` exits within about this bound).
        postprocess_threads: threads that format the answers (JSON, drawing, PNG) beside the
            model thread.
    """

    max_pixels: int = 12_000_000
    max_bytes: int = 20 * 1024 * 1024
    max_queue: int = 8
    max_batch: int = 1
    body_timeout: float = 30.0
    shutdown_timeout: float = 10.0
    postprocess_threads: int = 2

    def __post_init__(self):
        for key in ("max_pixels", "max_bytes", "max_queue", "max_batch", "postprocess_threads"):
            if getattr(self, key) < 1:
                raise ValueError(f"ServerLimits.{key} must be >= 1, got {getattr(self, key)}")
        if not self.body_timeout > 0:
            raise ValueError(f"ServerLimits.body_timeout must be > 0, got {self.body_timeout}")
        if not self.shutdown_timeout >= 0:
            raise ValueError(
                f"ServerLimits.shutdown_timeout must be >= 0, got {self.shutdown_timeout}"
            )


class _ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: Optional[Dict] = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}


class _ClientGone(Exception):
    """The client disconnected before its answer: nothing is sent."""


def _client(request: Request) -> str:
    """``host:port`` of the client, for log lines."""
    client = request.client
    return f"{client.host}:{client.port}" if client else "a client"


def _error(status: int, code: str, detail: str, headers: Optional[Dict] = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


# The page's headers with the in-browser model: cross-origin isolation lets ONNX Runtime Web run
# WebAssembly threads (SharedArrayBuffer); every file the page loads is same-origin.
_ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}

# How often a request that waits for the model or for its body checks its client and the shutdown.
_POLL_S = 0.1


@dataclass
class _Job:
    image: np.ndarray  # uint8 (H, W, 3) BGR
    file_name: Optional[str]
    render: bool  # True: PNG drawing; False: JSON record
    legend: bool
    queued_at: float  # time.perf_counter() when submitted
    stream: bool = False  # True: a /stream frame (drawing and the persons' ids)
    tracker: Optional[PersonTracker] = None  # the stream's tracker (frames in order)
    timestamp: Optional[float] = None  # the frame's arrival, seconds (time.monotonic())


@dataclass
class _Answer:
    """What a request gets back from the model thread: the model's time and the future of its
    post-processing (``(payload, persons, post-processing seconds)``)."""

    queue_ms: float
    model_ms: float
    post: Future


_IMAGE_BODY = {
    "required": True,
    "description": "The image: the raw body (image/jpeg, image/png, ... or "
    "application/octet-stream), or a multipart form with a `file` field.",
    "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}
_ERRORS = {
    status: {"description": text, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for status, text in {
        400: "empty body, not an image, truncated or corrupt image, malformed multipart form, "
        "a Host header not allowed (--allowed-hosts)",
        401: "missing or wrong `Authorization: Bearer <token>` (only with --token)",
        408: "the body did not arrive within the server's --body-timeout (connection closed)",
        413: "body over the byte limit or image over the pixel limit",
        415: "a Content-Type other than an image, application/octet-stream or multipart",
        500: "the model failed on this image",
        503: "the model queue is full (`Retry-After` header), the worker is not running, or the "
        "server is shutting down",
    }.items()
}

_RLE = {
    "type": "object",
    "description": "COCO compressed RLE",
    "properties": {
        "size": {"type": "array", "items": {"type": "integer"}},
        "counts": {"type": "string"},
    },
}
_PREDICTION_SCHEMA = {
    "type": "object",
    "description": "The record of `tools/demo.py --json` (bodyparts.utils.predictions). The "
    "image-level part segmenter answers file_name, height, width, part_taxonomy, part_labels and "
    "part_pixels {part: pixels} instead of persons; panoptic models add segments_info.",
    "properties": {
        "file_name": {"type": "string", "nullable": True},
        "height": {"type": "integer"},
        "width": {"type": "integer"},
        "score_threshold": {"type": "number"},
        "part_taxonomy": {"type": "string"},
        "part_labels": {"type": "object", "additionalProperties": {"type": "integer"}},
        "keypoint_names": {"type": "array", "items": {"type": "string"}},
        "persons": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "box_xyxy": {"type": "array", "items": {"type": "number"}},
                    "score": {"type": "number"},
                    "category": {"type": "integer"},
                    "keypoints": {
                        "type": "array",
                        "nullable": True,
                        "items": {"type": "array", "items": {"type": "number"}},
                    },
                    "silhouette": {**_RLE, "nullable": True},
                    "parts": {"type": "object", "nullable": True, "additionalProperties": _RLE},
                },
            },
        },
    },
}


def create_app(
    predictor: Callable[[np.ndarray], Dict[str, Any]],
    formatter: PredictionFormatter,
    *,
    limits: ServerLimits = ServerLimits(),
    token: Optional[str] = None,
    model_name: str = "bodyparts",
    allowed_hosts: Optional[Sequence[str]] = None,
    browser_model: Optional[str] = None,
    ort_dir: str = ORT_DIST_DIR,
) -> FastAPI:
    """The ASGI app serving ``predictor``.

    Args:
        predictor: ``predictor(image_bgr (H, W, 3) uint8) -> outputs`` as ``DefaultPredictor``;
            with a ``predict_batch(list of images) -> list of outputs`` method it is given several
            waiting images at once (``limits.max_batch > 1``). Only the worker thread calls it.
        formatter: turns the outputs into the JSON record and the drawing.
        limits: request and queue limits.
        token: when set, /predict and /render need ``Authorization: Bearer <token>`` (401).
        model_name: shown by /health and /info (e.g. the config file).
        allowed_hosts: accepted ``Host`` names (any port; ``*`` any host, ``*.example.com`` its
            subdomains), others get 400 (:func:`bodyparts.serving.hosts.default_allowed_hosts`
            gives ``tools/serve.py``'s). None: no check (in-process tests).
        browser_model: an ONNX export folder (``tools/export_model.py --format onnx``) of the
            same model, offered to the page to run in the browser; the server stays its fallback.
        ort_dir: where ONNX Runtime Web's files are (``scripts/setup_browser.sh`` installs them).
    Raises:
        BrowserModelError: ``browser_model`` is not an export folder the page can run, or ONNX
            Runtime Web is not installed.
    Returns:
        The app; its worker thread and post-processing threads run while the app's lifespan does
        (uvicorn, or ``with TestClient(app)``). ``app.state.worker`` is the
        :class:`InferenceWorker`.
    """
    ort = ort_files(ort_dir)
    in_browser = None
    if browser_model is not None:
        in_browser = BrowserModel.load(browser_model)
        if ort is None:
            raise BrowserModelError(
                f"{ort_dir}: ONNX Runtime Web is not installed (no {', '.join(ORT_FILES)}); "
                "scripts/setup_browser.sh installs it (npm ci in bodyparts/serving/web)"
            )
    batch_fn = getattr(predictor, "predict_batch", None)
    # post-processing: a pool beside the model thread; the model thread waits for a free slot
    # before it hands over an image's outputs, so at most 2 x threads outputs wait for formatting
    post: Dict[str, Any] = {"pool": None}
    post_slots = threading.BoundedSemaphore(2 * limits.postprocess_threads)

    def run_batch(jobs: List[_Job]) -> List[Any]:
        """The model thread: the model only; formatting goes to the post-processing pool."""
        start = time.perf_counter()
        if batch_fn is not None and len(jobs) > 1:
            outputs = batch_fn([job.image for job in jobs])
        else:
            outputs = [predictor(job.image) for job in jobs]
        model_ms = 1000.0 * (time.perf_counter() - start) / len(jobs)
        answers = []
        for job, out in zip(jobs, outputs):
            queue_ms = 1000.0 * (start - job.queued_at)
            post_slots.acquire()
            try:
                future = post["pool"].submit(_postprocess, job, out)
            except RuntimeError as e:  # the pool is shut down (the app is stopping)
                post_slots.release()
                answers.append(WorkerStopped(f"the server is shutting down ({e})"))
                continue
            answers.append(_Answer(queue_ms, model_ms, future))
        return answers

    def _postprocess(job: _Job, outputs: Dict[str, Any]) -> Tuple[Any, Optional[int], float]:
        start = time.perf_counter()
        try:
            payload, persons = _format(job, outputs)
        except Exception:
            logger.exception("formatting the outputs of %s failed", job.file_name or "an image")
            raise
        finally:
            post_slots.release()
        return payload, persons, 1000.0 * (time.perf_counter() - start)

    def _format(job: _Job, outputs: Dict[str, Any]) -> Tuple[Any, Optional[int]]:
        if job.stream:
            result = formatter(
                outputs,
                job.image,
                None,
                label_maps=False,
                legend=False,
                tracker=job.tracker,
                timestamp=job.timestamp,
            )
            ok, png = cv2.imencode(".png", result.vis_bgr)
            if not ok:
                raise RuntimeError("PNG encoding of the drawing failed")
            keys = ("id", "box_xyxy", "score")
            persons = [{k: p.get(k) for k in keys} for p in result.record.get("persons", [])]
            return {"png": png.tobytes(), "persons": persons}, result.num_persons
        result = formatter(
            outputs,
            job.image,
            job.file_name,
            record=not job.render,
            label_maps=False,
            draw=job.render,
            legend=job.legend,
        )
        if job.render:
            ok, png = cv2.imencode(".png", result.vis_bgr)
            if not ok:
                raise RuntimeError("PNG encoding of the drawing failed")
            return png.tobytes(), result.num_persons
        return result.record, result.num_persons

    worker = InferenceWorker(run_batch, max_queue=limits.max_queue, max_batch=limits.max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        post["pool"] = ThreadPoolExecutor(
            limits.postprocess_threads, thread_name_prefix="bodyparts-post"
        )
        worker.start()
        try:
            yield
        finally:
            # after a drain (SIGTERM) the queue is empty; a batch still running (past the bound)
            # is not waited for long: the thread is a daemon
            await run_in_threadpool(worker.stop, 2.0)
            post["pool"].shutdown(wait=False, cancel_futures=True)

    app = FastAPIOffline(
        title="bodyparts server",
        description="Multi-person body-part parsing: per person a box, a score, keypoints, a "
        "silhouette and part masks (COCO RLE), or the drawing as PNG. The web page is at `/`.",
        version="1",
        lifespan=lifespan,
    )
    app.state.worker = worker
    app.state.limits = limits
    app.state.allowed_hosts = None if allowed_hosts is None else list(allowed_hosts)
    if allowed_hosts is not None:
        app.add_middleware(HostAllowList, allowed_hosts=list(allowed_hosts))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    bearer = HTTPBearer(auto_error=False, description="only when the server runs with --token")

    # ------------------------------------------------------------------------------------------
    # errors: always {"error", "detail"} JSON

    @app.exception_handler(_ApiError)
    async def _api_error(request: Request, exc: _ApiError):
        return _error(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return _error(422, "invalid_parameter", problems)

    # ------------------------------------------------------------------------------------------
    # helpers

    def check_token(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if credentials is None or not hmac.compare_digest(given.encode(), token.encode()):
            why = "missing" if credentials is None else "wrong"
            raise _ApiError(
                401,
                "unauthorized",
                f"{why} token: send the header 'Authorization: Bearer <token>' "
                "(the server's --token)",
                {"WWW-Authenticate": "Bearer"},
            )

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_bytes:
            raise _ApiError(
                413,
                "body_too_large",
                f"the request body is {int(length)} bytes, over the limit of {limits.max_bytes} "
                "bytes (the server's --max-bytes)",
            )
        chunks, size = [], 0
        deadline = time.monotonic() + limits.body_timeout
        while True:
            # the raw ASGI receive, polled: a wait cut short loses no data (request.stream()
            # would end), and a shutdown is noticed while a client is still sending
            message = None
            with anyio.move_on_after(max(0.0, min(_POLL_S * 5, deadline - time.monotonic()))):
                message = await request.receive()
            if message is None:
                if worker.draining:
                    raise WorkerStopped("the server is shutting down")
                if time.monotonic() >= deadline:
                    logger.warning(
                        "%s: request body incomplete after --body-timeout %g s (%d bytes "
                        "received): 408, connection closed",
                        _client(request),
                        limits.body_timeout,
                        size,
                    )
                    raise _ApiError(
                        408,
                        "body_timeout",
                        f"the request body did not arrive within {limits.body_timeout:g} s "
                        f"({size} bytes received; the server's --body-timeout)",
                        {"Connection": "close"},
                    )
                continue
            if message["type"] == "http.disconnect":
                logger.info("%s: client disconnected while sending its body", _client(request))
                raise _ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limits.max_bytes:
                raise _ApiError(
                    413,
                    "body_too_large",
                    f"the request body is over the limit of {limits.max_bytes} bytes "
                    "(the server's --max-bytes)",
                    {"Connection": "close"},
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def image_bytes(request: Request) -> Tuple[bytes, Optional[str]]:
        """(the encoded image, its file name or None) of a raw or multipart request."""
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";")[0].strip().lower()
        if media != "multipart/form-data":
            try:
                check_raw_content_type(content_type)
            except ImageInputError as e:
                raise _ApiError(e.status, e.code, e.message) from None
            return await read_body(request), None
        body = await read_body(request)

        async def replay():
            yield body

        try:
            form = await MultiPartParser(
                request.headers,
                replay(),
                max_files=4,
                max_fields=16,
                max_part_size=limits.max_bytes,
            ).parse()
        except Exception as e:  # noqa: BLE001  (python-multipart and starlette raise several types)
            raise _ApiError(
                400, "bad_multipart", f"malformed multipart/form-data body: {e}"
            ) from None
        try:
            files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
            upload = next((v for k, v in files if k == "file"), files[0][1] if files else None)
            if upload is None:
                raise _ApiError(
                    400,
                    "no_file",
                    "the multipart form has no file: send the image in a field named 'file'",
                )
            name = upload.filename or None
            try:
                check_raw_content_type(upload.content_type, f"the uploaded file {name!r}")
            except ImageInputError as e:
                raise _ApiError(e.status, e.code, e.message) from None
            return await upload.read(), name
        finally:
            await form.close()

    async def wait_for_model(request: Request, future: Future, what: str) -> _Answer:
        """The model thread's answer. Drops the request if its client leaves before its turn, or
        when the shutdown deadline passes before its turn (503)."""
        answer = asyncio.wrap_future(future)
        while True:
            done, _ = await asyncio.wait({answer}, timeout=_POLL_S)
            if done:
                return answer.result()
            if worker.past_drain_deadline and worker.abandon(future, shutdown=True):
                raise WorkerStopped(
                    "the server is shutting down: this request did not reach the model within "
                    f"the shutdown timeout ({limits.shutdown_timeout:g} s)"
                )
            if await request.is_disconnected() and worker.abandon(future):
                logger.info(
                    "%s: client disconnected while waiting: %s dropped before the model "
                    "(%d dropped so far)",
                    _client(request),
                    what,
                    worker.dropped,
                )
                raise _ClientGone()

    async def run_job(request: Request, render: bool, legend: bool):
        data, name = await image_bytes(request)
        if worker.draining:
            raise WorkerStopped("the server is shutting down")
        if worker.full:  # answer at once, before spending time on decoding
            raise QueueFull(worker.max_queue, worker.retry_after())
        what = f"the uploaded file {name!r}" if name else "the image"
        try:
            image = await run_in_threadpool(decode_image, data, limits.max_pixels, what)
        except ImageInputError as e:
            raise _ApiError(e.status, e.code, e.message) from None
        del data
        future = worker.submit(_Job(image, name, render, legend, time.perf_counter()))
        del image
        try:
            answer = await wait_for_model(request, future, what)
            payload, persons, post_ms = await asyncio.wrap_future(answer.post)
        except asyncio.CancelledError:
            if not worker.draining:
                raise
            # uvicorn cancels what still runs past the shutdown bound: a 503, not a traceback
            logger.warning("shutdown: %s still in the model at the shutdown bound: 503", what)
            raise WorkerStopped(
                "the server is shutting down: the model did not finish this request within the "
                "shutdown timeout"
            ) from None
        except (QueueFull, WorkerStopped, _ClientGone):
            raise
        except Exception as e:  # noqa: BLE001  (the model failed on this image: 500, server lives)
            raise _ApiError(
                500, "model_error", f"the model failed on {what}: {type(e).__name__}: {e}"
            )
        headers = {
            "X-Queue-Ms": f"{max(0.0, answer.queue_ms):.1f}",
            "X-Inference-Ms": f"{answer.model_ms:.1f}",
            "X-Postprocess-Ms": f"{post_ms:.1f}",
        }
        if persons is not None:
            headers["X-Person-Count"] = str(persons)
        return payload, headers

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, exc: QueueFull):
        return _error(503, "queue_full", str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(WorkerStopped)
    async def _stopped(request: Request, exc: WorkerStopped):
        code = "shutting_down" if worker.draining else "worker_stopped"
        return _error(503, code, str(exc), {"Retry-After": "5", "Connection": "close"})

    @app.exception_handler(_ClientGone)
    async def _client_gone(request: Request, exc: _ClientGone):
        # nobody reads it; 499 ("client closed request", as nginx logs it) shows in access logs
        return Response(status_code=499)

    # ------------------------------------------------------------------------------------------
    # routes

    @app.post(
        "/predict",
        summary="Predict the persons of an image (JSON)",
        openapi_extra={"requestBody": _IMAGE_BODY},
        responses={
            200: {"content": {"application/json": {"schema": _PREDICTION_SCHEMA}}},
            **_ERRORS,
        },
        dependencies=[Depends(check_token)],
    )
    async def predict(request: Request):
        record, headers = await run_job(request, render=False, legend=False)
        return JSONResponse(record, headers=headers)

    @app.post(
        "/render",
        summary="Draw the predictions of an image (PNG)",
        openapi_extra={"requestBody": _IMAGE_BODY},
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "the drawing"}, **_ERRORS},
        dependencies=[Depends(check_token)],
    )
    async def render(
        request: Request,
        legend: bool = Query(
            True, description="append the legend of the parts present on the right"
        ),
    ):
        png, headers = await run_job(request, render=True, legend=legend)
        return Response(png, media_type="image/png", headers=headers)

    async def stream_frame(websocket: WebSocket, data: bytes, index: int, tracker) -> bool:
        """Answer one /stream frame; False when the connection is to be closed."""
        what = f"stream frame {index}"

        async def refuse(code: str, detail: str, **extra) -> bool:
            await websocket.send_json({"frame": index, "error": code, "detail": detail, **extra})
            return True

        if len(data) > limits.max_bytes:
            return await refuse(
                "body_too_large",
                f"the frame is {len(data)} bytes, over the limit of {limits.max_bytes} bytes "
                "(the server's --max-bytes)",
            )
        if worker.full:
            retry = worker.retry_after()
            return await refuse(
                "queue_full", f"the model queue is full; retry in {retry} s", retry_after=retry
            )
        try:
            image = await run_in_threadpool(decode_image, data, limits.max_pixels, what)
        except ImageInputError as e:
            return await refuse(e.code, e.message)
        arrived = time.monotonic()
        try:
            future = worker.submit(
                _Job(image, None, True, False, time.perf_counter(), True, tracker, arrived)
            )
            answer = await asyncio.wrap_future(future)
            payload, persons, post_ms = await asyncio.wrap_future(answer.post)
        except QueueFull as e:
            return await refuse("queue_full", str(e), retry_after=e.retry_after)
        except WorkerStopped as e:
            await refuse("shutting_down" if worker.draining else "worker_stopped", str(e))
            return False
        except Exception as e:  # noqa: BLE001  (the model failed on this frame; the stream goes on)
            return await refuse(
                "model_error", f"the model failed on {what}: {type(e).__name__}: {e}"
            )
        await websocket.send_json(
            {
                "frame": index,
                "persons": payload["persons"],
                "person_count": persons,
                "queue_ms": round(max(0.0, answer.queue_ms), 1),
                "inference_ms": round(answer.model_ms, 1),
                "postprocess_ms": round(post_ms, 1),
            }
        )
        await websocket.send_bytes(payload["png"])
        return True

    @app.websocket("/stream")
    async def stream(websocket: WebSocket):
        await websocket.accept()
        given = websocket.query_params.get("token")
        if token is not None and not (
            given is not None and hmac.compare_digest(given.encode(), token.encode())
        ):
            why = "missing" if given is None else "wrong"
            detail = f"{why} token: connect to /stream?token=<token> (the server's --token)"
            await websocket.send_json({"error": "unauthorized", "detail": detail})
            await websocket.close(code=1008)
            return
        try:
            tracker = PersonTracker(formatter.score_threshold)
        except ImportError as e:  # persons without ids, the stream still works
            logger.warning("/stream without person ids: %s", e)
            tracker = None
        index = 0
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    await websocket.send_json(
                        {
                            "frame": index,
                            "error": "binary_expected",
                            "detail": "send each frame as a binary message: an encoded image "
                            "(JPEG, PNG, ...)",
                        }
                    )
                    continue
                if worker.draining or not await stream_frame(websocket, data, index, tracker):
                    await websocket.close(code=1012)  # service restart
                    return
                index += 1
        except WebSocketDisconnect:
            logger.info("/stream: client left after %d frames", index)

    @app.get("/health", summary="Is the model worker running; queue state")
    async def health():
        if worker.draining:
            status = "shutting_down"
        else:
            status = "ok" if worker.alive else "worker_stopped"
        body = {
            "status": status,
            "model": model_name,
            "queued": worker.queued,
            "max_queue": worker.max_queue,
            "processed": worker.processed,
            "failed": worker.failed,
            "dropped": worker.dropped,
        }
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    @app.get("/info", summary="The model's part taxonomy (names, colours), keypoints and limits")
    async def info():
        meta = formatter.metadata
        return {
            "model": model_name,
            "part_taxonomy": meta.get("part_taxonomy"),
            "parts": formatter.legend(),
            "keypoint_names": list(meta.get("keypoint_names") or []),
            "score_threshold": formatter.score_threshold,
            "auth_required": token is not None,
            "stream": "stream",  # the WebSocket route, relative to the page
            "browser_model": None
            if in_browser is None
            else {
                "model": "browser-model/model.onnx",
                "export_info": "browser-model/export_info.json",
                "runtime": "ort/ort.min.js",
            },
            "limits": {
                "max_pixels": limits.max_pixels,
                "max_bytes": limits.max_bytes,
                "max_queue": limits.max_queue,
                "max_batch": limits.max_batch,
                "body_timeout": limits.body_timeout,
                "shutdown_timeout": limits.shutdown_timeout,
            },
        }

    @app.get("/", include_in_schema=False)
    async def index():
        # with the in-browser model: cross-origin isolated, so ONNX Runtime Web may use threads
        isolation = {} if in_browser is None else _ISOLATION_HEADERS
        return FileResponse(
            os.path.join(STATIC_DIR, "index.html"), media_type="text/html", headers=isolation
        )

    @app.get("/ort/{name}", include_in_schema=False)
    async def ort_file(name: str):
        if ort is None or name not in ort:
            raise StarletteHTTPException(404, f"no ONNX Runtime Web file {name!r} here")
        # its worker threads are created from these files: under the page's isolation too
        return FileResponse(ort[name], media_type=ORT_FILES[name], headers=_ISOLATION_HEADERS)

    @app.get("/browser-model/{name}", include_in_schema=False)
    async def browser_model_file(name: str):
        if in_browser is None:
            raise StarletteHTTPException(
                404, "no in-browser model (tools/serve.py --browser-model EXPORT_DIR)"
            )
        if name == "model.onnx":
            return FileResponse(in_browser.model_path, media_type="application/octet-stream")
        if name == "export_info.json":
            return JSONResponse(in_browser.info)
        raise StarletteHTTPException(404, f"the in-browser model has no file {name!r}")

    return app
