"""Running the app with uvicorn: in the foreground (``tools/serve.py``) or in a background thread
(tests, ``tools/benchmark_server.py``).

Shutdown (SIGTERM, Ctrl-C, :meth:`ServerThread.stop`) is bounded: the app's model worker starts
draining at once (:meth:`bodyparts.serving.InferenceWorker.drain`): requests still uploading and
new ones get 503, queued requests run until ``shutdown_timeout`` seconds have passed and the rest
get 503; uvicorn waits for the open requests a few seconds longer at most, then stops.
"""

import socket
import threading
import time
from types import FrameType
from typing import Optional

import uvicorn
from fastapi import FastAPI

__all__ = ["ServerThread", "free_port", "serve", "SHUTDOWN_GRACE_S"]

# Seconds uvicorn waits for open requests beyond the shutdown timeout: for the batch running at
# the deadline and the answers to be sent. A model call still running after it is not waited for.
SHUTDOWN_GRACE_S = 3.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _shutdown_timeout(app: FastAPI, shutdown_timeout: Optional[float]) -> float:
    if shutdown_timeout is not None:
        return float(shutdown_timeout)
    limits = getattr(app.state, "limits", None)
    return float(getattr(limits, "shutdown_timeout", 10.0))


class _DrainingServer(uvicorn.Server):
    """uvicorn's server that starts the app's drain when it is asked to exit."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, shutdown_timeout: float):
        super().__init__(config)
        self._app, self._shutdown_timeout = app, shutdown_timeout

    def begin_drain(self) -> None:
        """Signal-safe: only assigns attributes (no lock, no logging)."""
        worker = getattr(self._app.state, "worker", None)
        if worker is not None:
            worker.drain(self._shutdown_timeout)

    def handle_exit(self, sig: int, frame: Optional[FrameType]) -> None:
        self.begin_drain()
        super().handle_exit(sig, frame)


def _server(
    app: FastAPI, host: str, port: int, log_level: str, shutdown_timeout: Optional[float]
) -> _DrainingServer:
    timeout = _shutdown_timeout(app, shutdown_timeout)
    # one process, one event loop: the model worker is a thread of this process
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        workers=1,
        timeout_graceful_shutdown=max(1, round(timeout + SHUTDOWN_GRACE_S)),
    )
    return _DrainingServer(config, app, timeout)


def serve(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    shutdown_timeout: Optional[float] = None,
) -> None:
    """Serve ``app`` until interrupted (Ctrl-C or SIGTERM: a bounded drain, module docstring).

    ``shutdown_timeout`` (s): default ``app.state.limits.shutdown_timeout``."""
    _server(app, host, port, log_level, shutdown_timeout).run()


class ServerThread:
    """``app`` served by uvicorn in a daemon thread on ``host:port`` (a free port by default)::

    with ServerThread(app) as server:
        requests.get(server.url + "/health")
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: Optional[int] = None,
        log_level: str = "warning",
        shutdown_timeout: Optional[float] = None,
    ):
        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._server = _server(app, host, self.port, log_level, shutdown_timeout)
        self._thread: Optional[threading.Thread] = None

    def start(self, timeout: float = 60.0) -> "ServerThread":
        """Start and wait until the server accepts connections (its lifespan has started)."""
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(
                    f"the server on {self.url} stopped during start-up (port in use?)"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server on {self.url} did not start in {timeout:.0f} s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down as on SIGTERM (a bounded drain) and wait up to ``timeout`` s."""
        self._server.begin_drain()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
