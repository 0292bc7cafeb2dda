"""A fake Langflow 1.13 server speaking the real run API's wire format.

Every answer is built from bytes captured from a real Langflow 1.13.0
(tests/fakes/samples/langflow/, copied from shared/samples/langflow/): only the text,
session and usage are swapped in. It serves the two captured flows:

* ``echo-agent`` (Chat Input → Chat Output): the reply is the input, usage is null, and a
  streamed run sends no ``token`` events (add_message, add_message, end);
* ``fake-llm-agent`` (… → Fake Streaming LLM → …): the reply is ``"echo: " + input``,
  streamed word by word as ``token`` events, usage = word counts.

``POST /api/v1/run/{flow id or endpoint name}?stream=false|true`` with ``x-api-key``,
answering 403 / 404 with Langflow's bodies. Like Langflow it accepts an invalid body and
runs with an empty default request. ``fault`` switches a failure on:

``slow``              sleep ``slow_seconds`` before answering
``500``               HTTP 500 ``{"detail": ...}``
``garbage``           a body (or stream event) that is not JSON
``error_event``       stream: a token, then ``{"event": "error", ...}`` (non-stream: 500)
``close_mid_stream``  stream: some events, then the connection drops (non-stream: half a body)
``no_end``            stream: events but no ``end``; the body finishes cleanly
``stall_mid_stream``  stream: a token, then silence for ``slow_seconds``
``redirect``          302 to ``/elsewhere``
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.fakes.http_server import Exchange, FakeHTTPServer

SAMPLES = Path(__file__).resolve().parent / "samples" / "langflow"

API_KEY = "sk-fake-langflow-key"
ECHO_FLOW_ID = "3ad2c9fb-092a-4347-b7cc-5bdda16daf39"
ECHO_ENDPOINT = "echo-agent"
FAKE_LLM_FLOW_ID = "8d15240d-45a1-4f49-b509-93b57863de1f"
FAKE_LLM_ENDPOINT = "fake-llm-agent"

NO_KEY_DETAIL = (
    "Since v1.5, LANGFLOW_AUTO_LOGIN requires a valid API key. Set "
    "LANGFLOW_SKIP_AUTH_AUTO_LOGIN=true to skip this check. Please update your "
    "authentication method."
)
BAD_KEY_DETAIL = "Invalid or missing API key"
FAULTS = {
    None,
    "slow",
    "500",
    "garbage",
    "error_event",
    "close_mid_stream",
    "no_end",
    "stall_mid_stream",
    "redirect",
}


def _load_events(name: str) -> list[dict[str, Any]]:
    raw = (SAMPLES / name).read_bytes()
    return [json.loads(part) for part in raw.split(b"\n\n") if part.strip()]


class _Flow:
    def __init__(self, flow_id: str, endpoint: str, response: str, stream: str, llm: bool):
        self.flow_id = flow_id
        self.endpoint = endpoint
        self.response = json.loads((SAMPLES / response).read_text())
        self.events = _load_events(stream)
        self.llm = llm

    def reply(self, text: str) -> str:
        return f"echo: {text}" if self.llm else text

    def usage(self, text: str, reply: str) -> dict[str, int] | None:
        if not self.llm:
            return None
        tokens_in, tokens_out = len(text.split()), len(reply.split())
        return {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }


def _set_message(message: dict[str, Any], text: str, session_id: str, usage: Any) -> None:
    """Swap text, session and usage into a captured Message (and its nested ``data``)."""
    for target in (message, message.get("data")):
        if isinstance(target, dict):
            target["text"] = text
            target["session_id"] = session_id
            if isinstance(target.get("properties"), dict):
                target["properties"]["usage"] = usage


class FakeLangflow(FakeHTTPServer):
    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.fault: str | None = None
        self.slow_seconds = 3.0
        self.flows = [
            _Flow(ECHO_FLOW_ID, ECHO_ENDPOINT, "run-response.json", "run-stream.txt", llm=False),
            _Flow(
                FAKE_LLM_FLOW_ID,
                FAKE_LLM_ENDPOINT,
                "run-response-fake-llm.json",
                "run-stream-fake-llm.txt",
                llm=True,
            ),
        ]

    def set_fault(self, fault: str | None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        self.fault = fault

    @property
    def runs(self) -> list:
        return [r for r in self.requests if r.path.startswith("/api/v1/run/")]

    # --- answers built from the captures -------------------------------------------------

    def result(self, flow: _Flow, text: str | None, session_id: str) -> dict[str, Any]:
        """The ``stream=false`` body (also ``end.data.result``) for ``text``."""
        result = copy.deepcopy(flow.response)
        reply = flow.reply(text) if text is not None else ""
        usage = flow.usage(text or "", reply) if text is not None else None
        result["session_id"] = session_id
        run = result["outputs"][0]
        run["inputs"] = {"input_value": text} if text is not None else {}
        output = run["outputs"][0]
        _set_message(output["results"]["message"], reply, session_id, usage)
        output["artifacts"]["message"] = reply
        output["outputs"]["message"]["message"] = reply
        for message in output["messages"]:
            message["message"] = reply
            message["session_id"] = session_id
        return result

    def stream_events(self, flow: _Flow, text: str, session_id: str) -> list[dict[str, Any]]:
        """The ``stream=true`` events, in the captured order."""
        events = copy.deepcopy(flow.events)
        reply = flow.reply(text)
        usage = flow.usage(text, reply)
        user, ai_first = events[0], events[1]
        _set_message(user["data"], text, session_id, None)
        end = events[-1]
        end["data"]["result"] = self.result(flow, text, session_id)
        if not flow.llm:
            _set_message(ai_first["data"], reply, session_id, None)
            return [user, ai_first, end]
        words = reply.split(" ")
        chunks = [words[0]] + [f" {word}" for word in words[1:]]
        token_template = events[2]
        tokens = []
        for chunk in chunks:
            token = copy.deepcopy(token_template)
            token["data"]["chunk"] = chunk
            tokens.append(token)
        _set_message(ai_first["data"], chunks[0], session_id, None)
        completes = [e for e in events[2:-1] if e["event"] == "add_message"]
        for complete in completes:
            _set_message(complete["data"], reply, session_id, usage)
        return [user, ai_first, *tokens, *completes, end]

    # --- the server ------------------------------------------------------------------------

    def _flow(self, identifier: str) -> _Flow | None:
        for flow in self.flows:
            if identifier in (flow.flow_id, flow.endpoint):
                return flow
        return None

    @staticmethod
    def _parse_body(body: bytes, flow: _Flow) -> tuple[str | None, str]:
        """Langflow's quirk: a body that fails validation becomes the empty default."""
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = None
        valid = (
            isinstance(data, dict)
            and data.get("input_type", "chat") in {"chat", "text", "any"}
            and data.get("output_type", "chat") in {"chat", "text", "any", "debug"}
            and isinstance(data.get("input_value", ""), str | None)
            and isinstance(data.get("session_id", ""), str | None)
            and isinstance(data.get("tweaks", {}), dict | None)
        )
        if not valid:
            return None, flow.flow_id
        return data.get("input_value"), data.get("session_id") or flow.flow_id

    def handle(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.method != "POST" or not request.path.startswith("/api/v1/run/"):
            exchange.send_json(404, {"detail": "Not Found"})
            return
        key = request.headers.get("x-api-key") or (request.query.get("x-api-key") or [None])[0]
        if not key:
            exchange.send_json(403, {"detail": NO_KEY_DETAIL})
            return
        if key != self.api_key:
            exchange.send_json(403, {"detail": BAD_KEY_DETAIL})
            return
        identifier = request.path.removeprefix("/api/v1/run/")
        flow = self._flow(identifier)
        if flow is None:
            exchange.send_json(404, {"detail": f"Flow identifier {identifier} not found"})
            return
        text, session_id = self._parse_body(request.body, flow)
        streaming = (request.query.get("stream") or ["false"])[0].lower() == "true"

        fault = self.fault
        if fault == "slow":
            self.pause(self.slow_seconds)
        if fault == "redirect":
            exchange.send(302, b"", headers={"location": f"{self.base_url}/elsewhere"})
            return
        if fault == "500" or (fault == "error_event" and not streaming):
            exchange.send_json(500, {"detail": "Error running graph: the flow raised"})
            return
        if not streaming:
            if fault == "garbage":
                exchange.send(200, b"<html><body>502 Bad Gateway</body></html>")
                return
            body = json.dumps(self.result(flow, text, session_id), separators=(",", ":"))
            if fault == "close_mid_stream":
                encoded = body.encode()
                exchange.handler.send_response(200)
                exchange.handler.send_header("content-type", "application/json")
                exchange.handler.send_header("content-length", str(len(encoded)))
                exchange.handler.end_headers()
                exchange.handler.wfile.write(encoded[: len(encoded) // 2])
                exchange.drop()
                return
            exchange.send(200, body.encode())
            return
        self._stream(exchange, flow, text or "", session_id, fault)

    def _stream(
        self, exchange: Exchange, flow: _Flow, text: str, session_id: str, fault: str | None
    ) -> None:
        events = self.stream_events(flow, text, session_id)
        exchange.start_stream()

        def write(event: dict[str, Any]) -> None:
            exchange.write(json.dumps(event).encode() + b"\n\n")

        if fault == "garbage":
            write(events[0])
            exchange.write(b"this is not json\n\n")
            exchange.end_stream()
            return
        first_token = next((i for i, e in enumerate(events) if e["event"] == "token"), 2)
        if fault in {"error_event", "close_mid_stream", "stall_mid_stream"}:
            for event in events[: first_token + 1]:
                write(event)
            if fault == "error_event":
                write({"event": "error", "data": {"error": "Error building Component: boom"}})
                exchange.end_stream()
                return
            if fault == "close_mid_stream":
                exchange.drop()
                return
            self.pause(self.slow_seconds)
            events = events[first_token + 1 :]
        if fault == "no_end":
            events = events[:-1]
        for event in events:
            write(event)
        exchange.end_stream()
