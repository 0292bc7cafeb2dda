"""A fake OpenAI-compatible upstream (and a plain-JSON ``http`` runtime) on loopback.

* ``POST …/chat/completions``: ``chat.completion`` or, with ``"stream": true``, SSE
  ``chat.completion.chunk`` events word by word, a usage chunk when
  ``stream_options.include_usage`` is set, then ``data: [DONE]``. The reply is
  ``"echo: " + <last user message>``; usage counts words. ``Authorization: Bearer`` is
  checked when ``api_key`` is set (401 with OpenAI's error body otherwise).
* ``POST …/run``: the plain JSON runtime, ``{"input", "session_id", "variables"}`` →
  ``{"output", "usage": {"tokens_input", "tokens_output"}}``.

``report_usage = False`` leaves usage out. ``fault`` switches a failure on (same names as
the fake Langflow): ``slow``, ``500``, ``garbage``, ``error_event``, ``close_mid_stream``,
``no_done`` (stream ends cleanly without finish_reason or ``[DONE]``),
``stall_mid_stream``, ``redirect``, and ``bad_shape`` (a well-formed JSON answer of the
wrong shape).
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fakes.http_server import Exchange, FakeHTTPServer

API_KEY = "sk-fake-openai-key"
FAULTS = {
    None,
    "slow",
    "500",
    "garbage",
    "error_event",
    "close_mid_stream",
    "no_done",
    "stall_mid_stream",
    "redirect",
    "bad_shape",
}


class FakeOpenAIUpstream(FakeHTTPServer):
    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.fault: str | None = None
        # What the "500" fault answers.
        self.error_body: dict[str, Any] = {
            "error": {"message": "upstream exploded", "type": "server"}
        }
        self.report_usage = True
        self.slow_seconds = 3.0

    @property
    def v1(self) -> str:
        return f"{self.base_url}/v1"

    def set_fault(self, fault: str | None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        self.fault = fault

    @staticmethod
    def reply_to(body: dict[str, Any]) -> tuple[str, int]:
        messages = body.get("messages") or []
        last_user = next(
            (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in messages)
        return f"echo: {last_user}", prompt_words

    def handle(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.method != "POST":
            exchange.send_json(404, {"error": {"message": "Not found", "type": "invalid_request"}})
            return
        if self.api_key is not None and request.headers.get("authorization") != (
            f"Bearer {self.api_key}"
        ):
            exchange.send_json(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
            return
        fault = self.fault
        if fault == "slow":
            self.pause(self.slow_seconds)
        if fault == "redirect":
            exchange.send(302, b"", headers={"location": f"{self.base_url}/elsewhere"})
            return
        if fault == "500":
            exchange.send_json(500, self.error_body)
            return
        body = request.json or {}
        if request.path.endswith("/chat/completions"):
            if body.get("stream"):
                self._stream(exchange, body, fault)
            else:
                self._complete(exchange, body, fault)
        elif request.path.endswith("/run"):
            self._plain(exchange, body, fault)
        else:
            exchange.send_json(404, {"error": {"message": "Not found", "type": "invalid_request"}})

    # --- plain JSON runtime --------------------------------------------------------------

    def _plain(self, exchange: Exchange, body: dict[str, Any], fault: str | None) -> None:
        if fault == "garbage":
            exchange.send(200, b"not json at all")
            return
        if fault == "bad_shape":
            exchange.send_json(200, {"output": 42})
            return
        text = str(body.get("input", ""))
        answer: dict[str, Any] = {"output": f"echo: {text}"}
        if self.report_usage:
            answer["usage"] = {
                "tokens_input": len(text.split()),
                "tokens_output": len(answer["output"].split()),
            }
        exchange.send_json(200, answer)

    # --- chat completions ----------------------------------------------------------------

    def _usage(self, prompt_words: int, reply: str) -> dict[str, int]:
        completion = len(reply.split())
        return {
            "prompt_tokens": prompt_words,
            "completion_tokens": completion,
            "total_tokens": prompt_words + completion,
        }

    def _complete(self, exchange: Exchange, body: dict[str, Any], fault: str | None) -> None:
        if fault == "garbage":
            exchange.send(200, b"<html>oops</html>")
            return
        if fault == "bad_shape":
            exchange.send_json(200, {"id": "chatcmpl-fake", "choices": []})
            return
        if fault == "error_event":
            exchange.send_json(200, {"error": {"message": "model overloaded", "type": "server"}})
            return
        reply, prompt_words = self.reply_to(body)
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                }
            ],
        }
        if self.report_usage:
            answer["usage"] = self._usage(prompt_words, reply)
        exchange.send_json(200, answer)

    def _stream(self, exchange: Exchange, body: dict[str, Any], fault: str | None) -> None:
        reply, prompt_words = self.reply_to(body)
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.get("model"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        words = reply.split(" ")
        pieces = [words[0]] + [f" {word}" for word in words[1:]]
        exchange.start_stream()
        exchange.write(chunk({"role": "assistant", "content": ""}))
        if fault == "garbage":
            exchange.write(b"data: {not json\n\n")
            exchange.end_stream()
            return
        exchange.write(chunk({"content": pieces[0]}))
        if fault == "error_event":
            error = {"error": {"message": "model overloaded", "type": "server_error"}}
            exchange.write(b"data: " + json.dumps(error).encode() + b"\n\n")
            exchange.end_stream()
            return
        if fault == "close_mid_stream":
            exchange.drop()
            return
        if fault == "stall_mid_stream":
            self.pause(self.slow_seconds)
        for piece in pieces[1:]:
            exchange.write(chunk({"content": piece}))
        if fault == "no_done":
            exchange.end_stream()
            return
        exchange.write(chunk({}, "stop"))
        options = body.get("stream_options") or {}
        if self.report_usage and options.get("include_usage"):
            usage = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.get("model"),
                "choices": [],
                "usage": self._usage(prompt_words, reply),
            }
            exchange.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        exchange.write(b"data: [DONE]\n\n")
        exchange.end_stream()
