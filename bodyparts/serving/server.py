"""Running the app with uvicorn: in the foreground (``tools/serve.py``) or in a background thread
(tests, ``tools/benchmark_server.py``)."""

import socket
import threading
import time
from typing import Optional

import uvicorn
from fastapi import FastAPI

__all__ = ["ServerThread", "free_port", "serve"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    # one process, one event loop: the model worker is a thread of this process
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, workers=1)


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``app`` until interrupted (Ctrl-C or SIGTERM: the worker finishes its batch)."""
    uvicorn.Server(_config(app, host, port, log_level)).run()


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
    ):
        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(_config(app, host, self.port, log_level))
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
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
