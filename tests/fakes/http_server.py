"""A tiny threaded HTTP/1.1 server on loopback for fake upstreams.

Subclasses implement ``handle(exchange)``; an ``Exchange`` can answer with a whole body,
stream a chunked body piece by piece (flushed as written, as a real upstream does), or
drop the connection mid-body. ``pause()`` sleeps but wakes up when the server stops,
so a "slow" fault never outlives its test by much.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    """One request as the fake saw it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Exchange:
    handler: BaseHTTPRequestHandler
    request: Received
    _chunked: bool = field(default=False, init=False)

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.handler.send_response(status)
        self.handler.send_header("content-type", content_type)
        self.handler.send_header("content-length", str(len(body)))
        for name, value in (headers or {}).items():
            self.handler.send_header(name, value)
        self.handler.end_headers()
        self.handler.wfile.write(body)

    def send_json(self, status: int, payload: Any, *, compact: bool = True) -> None:
        separators = (",", ":") if compact else None
        self.send(status, json.dumps(payload, separators=separators).encode())

    def start_stream(self, content_type: str = "text/event-stream; charset=utf-8") -> None:
        self.handler.send_response(200)
        self.handler.send_header("content-type", content_type)
        self.handler.send_header("transfer-encoding", "chunked")
        self.handler.end_headers()
        self._chunked = True

    def write(self, data: bytes) -> None:
        if data:
            self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.handler.wfile.flush()

    def end_stream(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()

    def drop(self) -> None:
        """Close the connection abruptly (mid-body): no terminating chunk, no more bytes."""
        self.handler.wfile.flush()
        self.handler.close_connection = True
        with contextlib.suppress(OSError):
            self.handler.connection.shutdown(socket.SHUT_RDWR)


class FakeHTTPServer:
    """Start with ``with Fake() as fake:`` or ``fake.start()`` / ``fake.stop()``."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    # --- to implement --------------------------------------------------------------

    def handle(self, exchange: Exchange) -> None:
        raise NotImplementedError

    # --- lifecycle -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHTTPServer:
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pause(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def requests_to(self, path_suffix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix)]

    # --- plumbing ------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, as uvicorn

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                received = Received(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                )
                with fake._lock:
                    fake.requests.append(received)
                try:
                    fake.handle(Exchange(self, received))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (timeout): fine

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
