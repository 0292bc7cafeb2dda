"""A minimal, fast upstream on loopback, so the benchmark measures the gateway, not it.

Raw asyncio ``Protocol`` on uvloop with httptools' parser: HTTP/1.1, keep-alive,
no framework. It speaks two runtime contracts:

* ``POST /run`` — the registry's ``http`` runtime: a fixed
  ``{"output": ..., "usage": {"tokens_input", "tokens_output"}}`` answer (the request
  body is not parsed: it would only cost the baseline time).
* ``POST /v1/chat/completions`` — OpenAI-compatible. With ``"stream": true`` it is the
  soak's *slow* upstream: one ``data: {chunk}`` every ``interval`` seconds, ``pieces``
  times (each piece carries its send time, ``piece<n>@<unix time>``), then a usage
  chunk and ``data: [DONE]``. Defaults come from the command line
  and can be overridden per call by a user message such as ``pieces=3 interval=0.1``.

    python -m bench.gateway.upstream --port 18001 [--cpu 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import time

import httptools
import uvloop

RUN_BODY = json.dumps(
    {"output": "Hello from the bench upstream.", "usage": {"tokens_input": 5, "tokens_output": 7}},
    separators=(",", ":"),
).encode()


def _response(status: bytes, content_type: bytes, body: bytes, keep_alive: bool) -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 ",
            status,
            b"\r\nContent-Type: ",
            content_type,
            b"\r\nContent-Length: ",
            str(len(body)).encode(),
            b"\r\nConnection: keep-alive\r\n\r\n"
            if keep_alive
            else b"\r\nConnection: close\r\n\r\n",
            body,
        )
    )


RUN_KEEP_ALIVE = _response(b"200 OK", b"application/json", RUN_BODY, True)
RUN_CLOSE = _response(b"200 OK", b"application/json", RUN_BODY, False)
NOT_FOUND = _response(b"404 Not Found", b"application/json", b'{"error":"not found"}', False)
BAD_REQUEST = _response(b"400 Bad Request", b"application/json", b'{"error":"bad request"}', False)
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
)
OVERRIDE = re.compile(r"(pieces|interval)=([0-9.]+)")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(payload: dict | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return _chunk(f"data: {text}\n\n".encode())


class Config:
    pieces = 30
    interval = 1.0


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("body", "parser", "streams", "transport", "url")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.streams: set[asyncio.Task] = set()

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        for task in self.streams:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        path = self.url.split(b"?", 1)[0]
        if path == b"/run":
            self.transport.write(RUN_KEEP_ALIVE if keep_alive else RUN_CLOSE)
            if not keep_alive:
                self.transport.close()
        elif path == b"/v1/chat/completions":
            self._chat(b"".join(self.body), keep_alive)
        else:
            self.transport.write(NOT_FOUND)
            self.transport.close()

    def _chat(self, raw: bytes, keep_alive: bool) -> None:
        try:
            request = json.loads(raw)
            model = request.get("model", "bench")
            text = " ".join(str(m.get("content", "")) for m in request.get("messages", []))
        except (ValueError, AttributeError, TypeError):
            self.transport.write(BAD_REQUEST)
            self.transport.close()
            return
        if not request.get("stream"):
            body = {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            }
            payload = json.dumps(body, separators=(",", ":")).encode()
            self.transport.write(_response(b"200 OK", b"application/json", payload, keep_alive))
            return
        pieces, interval = Config.pieces, Config.interval
        for name, value in OVERRIDE.findall(text):
            if name == "pieces":
                pieces = max(1, min(int(float(value)), 1000))
            else:
                interval = max(0.0, min(float(value), 10.0))
        task = asyncio.get_running_loop().create_task(self._stream(model, pieces, interval))
        self.streams.add(task)
        task.add_done_callback(self.streams.discard)

    async def _stream(self, model: str, pieces: int, interval: float) -> None:
        transport = self.transport
        transport.write(SSE_HEAD)
        created = int(time.time())

        def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
            return {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }

        transport.write(_sse(chunk({"role": "assistant", "content": ""})))
        for n in range(pieces):
            await asyncio.sleep(interval)
            if transport.is_closing():
                return
            # The send time rides along, so the soak can measure the gateway's added delay.
            transport.write(_sse(chunk({"content": f"piece{n}@{time.time():.6f} "})))
        transport.write(_sse(chunk({}, "stop")))
        usage = {"prompt_tokens": 5, "completion_tokens": pieces, "total_tokens": 5 + pieces}
        transport.write(
            _sse(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        )
        transport.write(_sse("[DONE]"))
        transport.write(b"0\r\n\r\n")


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HttpProtocol, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"upstream ready on 127.0.0.1:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--pieces", type=int, default=Config.pieces)
    parser.add_argument("--interval", type=float, default=Config.interval)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    Config.pieces, Config.interval = args.pieces, args.interval
    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
