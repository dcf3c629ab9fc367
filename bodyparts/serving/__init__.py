"""Serving a bodyparts model over HTTP (``tools/serve.py``): the FastAPI app with its web page, the
model worker with its bounded queue, image decoding, the Host allow-list, and uvicorn helpers.

Not imported by ``import bodyparts`` (it needs FastAPI and uvicorn)::

    from bodyparts.serving import BatchPredictor, ServerLimits, create_app, serve
    from bodyparts.utils.predictions import PredictionFormatter, load_inference_cfg

    cfg = load_inference_cfg("configs/....yaml", ["MODEL.WEIGHTS", "model_final.pth"])
    app = create_app(BatchPredictor(cfg), PredictionFormatter.from_config(cfg),
                     allowed_hosts=default_allowed_hosts("127.0.0.1"))
    serve(app, "127.0.0.1", 8000)
"""

from .app import STATIC_DIR, ServerLimits, create_app  # noqa: F401
from .browser import BrowserModel, BrowserModelError  # noqa: F401
from .hosts import HostAllowList, default_allowed_hosts  # noqa: F401
from .images import ImageInputError, decode_image  # noqa: F401
from .model import BatchPredictor  # noqa: F401
from .server import ServerThread, free_port, serve  # noqa: F401
from .worker import InferenceWorker, QueueFull, WorkerStopped  # noqa: F401
