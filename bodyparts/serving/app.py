"""The HTTP server of a bodyparts model (FastAPI): routes, limits, authentication, the web page.

Routes (``create_app``):

* ``POST /predict``: an image -> the JSON record of ``tools/demo.py --json``
  (:mod:`bodyparts.utils.predictions`).
* ``POST /render``: an image -> the PNG drawn as ``tools/demo.py`` draws it; headers
  ``X-Person-Count`` (absent for the image-level segmenter), ``X-Inference-Ms``, ``X-Queue-Ms``.
* ``GET /health``, ``GET /info`` (taxonomy legend, limits), ``GET /`` (the web page),
  ``/docs``, ``/redoc`` and ``/openapi.json`` (served without any CDN).

The image is the raw body (``image/*`` or ``application/octet-stream``) or a multipart form with
a ``file`` field. Errors are JSON ``{"error": code, "detail": message}``.
"""

import asyncio
import hmac
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
from fastapi import Depends, FastAPI, Query, Request
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
    """

    max_pixels: int = 12_000_000
    max_bytes: int = 20 * 1024 * 1024
    max_queue: int = 8
    max_batch: int = 1

    def __post_init__(self):
        for key in ("max_pixels", "max_bytes", "max_queue", "max_batch"):
            if getattr(self, key) < 1:
                raise ValueError(f"ServerLimits.{key} must be >= 1, got {getattr(self, key)}")


class _ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, headers: Optional[Dict] = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}


def _error(status: int, code: str, detail: str, headers: Optional[Dict] = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


@dataclass
class _Job:
    image: np.ndarray  # uint8 (H, W, 3) BGR
    file_name: Optional[str]
    render: bool  # True: PNG drawing; False: JSON record
    legend: bool


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
        400: "empty body, not an image, truncated or corrupt image, malformed multipart form",
        401: "missing or wrong `Authorization: Bearer <token>` (only with --token)",
        413: "body over the byte limit or image over the pixel limit",
        415: "a Content-Type other than an image, application/octet-stream or multipart",
        500: "the model failed on this image",
        503: "the model queue is full (`Retry-After` header) or the worker is not running",
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
    Returns:
        The app; its worker thread runs while the app's lifespan does (uvicorn, or
        ``with TestClient(app)``). ``app.state.worker`` is the :class:`InferenceWorker`.
    """
    batch_fn = getattr(predictor, "predict_batch", None)

    def run_batch(jobs: List[_Job]) -> List[Any]:
        start = time.perf_counter()
        if batch_fn is not None and len(jobs) > 1:
            outputs = batch_fn([job.image for job in jobs])
        else:
            outputs = [predictor(job.image) for job in jobs]
        model_ms = 1000.0 * (time.perf_counter() - start) / len(jobs)
        results = []
        for job, out in zip(jobs, outputs):
            try:
                results.append((_format(job, out), model_ms))
            except Exception as e:  # noqa: BLE001  (one image's failure is that request's error)
                logger.exception("formatting the outputs of %s failed", job.file_name)
                results.append(e)
        return results

    def _format(job: _Job, outputs: Dict[str, Any]):
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
        worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)

    app = FastAPIOffline(
        title="bodyparts server",
        description="Multi-person body-part parsing: per person a box, a score, keypoints, a "
        "silhouette and part masks (COCO RLE), or the drawing as PNG. The web page is at `/`.",
        version="1",
        lifespan=lifespan,
    )
    app.state.worker = worker
    app.state.limits = limits
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
                f"{why} token: send the header 'Authorization: Bearer <token>' (the server's --token)",
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
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_bytes:
                raise _ApiError(
                    413,
                    "body_too_large",
                    f"the request body is over the limit of {limits.max_bytes} bytes "
                    "(the server's --max-bytes)",
                )
            chunks.append(chunk)
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

    async def run_job(request: Request, render: bool, legend: bool):
        data, name = await image_bytes(request)
        if worker.full:  # answer at once, before spending time on decoding
            raise QueueFull(worker.max_queue, worker.retry_after())
        what = f"the uploaded file {name!r}" if name else "the image"
        try:
            image = await run_in_threadpool(decode_image, data, limits.max_pixels, what)
        except ImageInputError as e:
            raise _ApiError(e.status, e.code, e.message) from None
        del data
        queued = time.perf_counter()
        future = worker.submit(_Job(image, name, render, legend))
        try:
            (payload, persons), model_ms = await asyncio.wrap_future(future)
        except (QueueFull, WorkerStopped):
            raise
        except Exception as e:  # noqa: BLE001  (the model failed on this image: 500, server lives)
            raise _ApiError(
                500, "model_error", f"the model failed on {what}: {type(e).__name__}: {e}"
            )
        total_ms = 1000.0 * (time.perf_counter() - queued)
        headers = {
            "X-Inference-Ms": f"{model_ms:.1f}",
            "X-Queue-Ms": f"{max(0.0, total_ms - model_ms):.1f}",
        }
        if persons is not None:
            headers["X-Person-Count"] = str(persons)
        return payload, headers

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, exc: QueueFull):
        return _error(503, "queue_full", str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(WorkerStopped)
    async def _stopped(request: Request, exc: WorkerStopped):
        return _error(503, "worker_stopped", str(exc), {"Retry-After": "5"})

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

    @app.get("/health", summary="Is the model worker running; queue state")
    async def health():
        body = {
            "status": "ok" if worker.alive else "worker_stopped",
            "model": model_name,
            "queued": worker.queued,
            "max_queue": worker.max_queue,
            "processed": worker.processed,
            "failed": worker.failed,
        }
        return JSONResponse(body, status_code=200 if worker.alive else 503)

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
            "limits": {
                "max_pixels": limits.max_pixels,
                "max_bytes": limits.max_bytes,
                "max_queue": limits.max_queue,
                "max_batch": limits.max_batch,
            },
        }

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    return app
