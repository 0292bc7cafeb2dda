"""The gateway's endpoints in the OpenAPI document.

They are served by plain ASGI (gateway/app.py), outside DRF, so drf-spectacular
cannot discover them; this post-processing hook adds them to /api/schema/.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/ErrorEnvelope"}
USAGE = {
    "type": "object",
    "properties": {
        "tokens_input": {"type": "integer"},
        "tokens_output": {"type": "integer"},
        "tokens_total": {"type": "integer"},
    },
}
SCHEMAS: dict[str, Any] = {
    "InvokeRequest": {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {
            "input": {"type": "string", "maxLength": 200_000},
            "session_id": {"type": "string", "maxLength": 200},
            "stream": {"type": "boolean", "default": False},
            "variables": {
                "type": "object",
                "maxProperties": 50,
                "additionalProperties": {
                    "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
                },
            },
        },
    },
    "InvokeResponse": {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "agent_id": {"type": "string"},
            "session_id": {"type": "string"},
            "output": {"type": "string"},
            "usage": USAGE,
            "latency_ms": {"type": "integer"},
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "description": "OpenAI's chat.completions request; `model` is the agent_id.",
        "properties": {
            "model": {"type": "string"},
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
                        "content": {
                            "oneOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "object"}},
                            ]
                        },
                    },
                },
            },
            "stream": {"type": "boolean"},
            "stream_options": {"type": "object"},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {"type": "integer", "minimum": 1},
        },
    },
    "ChatCompletion": {
        "type": "object",
        "description": "OpenAI's chat.completion object (or chat.completion.chunk events).",
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object"}},
            "usage": {"type": "object"},
        },
    },
    "Model": {
        "type": "object",
        "description": "OpenAI's model object: an agent the key may call.",
        "properties": {
            "id": {"type": "string", "description": "The agent_id"},
            "object": {"type": "string", "enum": ["model"]},
            "created": {"type": "integer", "description": "When the agent was registered"},
            "owned_by": {"type": "string", "description": "The provider tenant's slug"},
            "name": {"type": "string"},
        },
    },
    "ModelList": {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
        },
    },
}

GATEWAY_ERRORS = {
    str(status): {"description": text, "content": {"application/json": {"schema": ERROR}}}
    for status, text in {
        400: "validation_error",
        401: "invalid_api_key",
        402: "payment_required (a card subscription waiting for its first payment, or past "
        "due beyond the grace period)",
        403: "forbidden (key not for this agent, subscription not active, tenant suspended)",
        404: "agent_not_found",
        409: "agent_unavailable",
        413: "payload_too_large",
        429: "rate_limited, quota_exceeded or tenant_quota_exceeded (Retry-After and the "
        "X-RateLimit-* / X-Quota-* headers set)",
        502: "runtime_error",
        503: "concurrency_limited, limiter_unavailable or usage_unavailable",
        504: "runtime_timeout",
    }.items()
}
SECURITY: list[dict[str, list[str]]] = [{"apiKeyHeader": []}, {"apiKeyBearer": []}]


def _json(schema_name: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


PATHS: dict[str, Any] = {
    "/api/v1/agents/{agent_id}/invoke": {
        "post": {
            "operationId": "gateway_invoke",
            "tags": ["gateway"],
            "summary": "Call an agent (JSON, or Server-Sent Events with stream=true)",
            # The embeddable widget's calls (issue 14; gateway/widget.py).
            "description": "Also takes a widget session token (`POST /api/v1/widget/sessions`) "
            "as `Authorization: Bearer agwt.…`, from the token's `Origin` only: 401 "
            "`invalid_widget_token` or `widget_token_expired`, 403 `origin_not_allowed`, 429 "
            "`rate_limited` with `details.scope` = `visitor` (docs/widget.md).",
            "security": SECURITY,
            "parameters": [
                {
                    "name": "agent_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
                }
            ],
            "requestBody": {"required": True, "content": _json("InvokeRequest")},
            "responses": {
                "200": {
                    "description": "The agent's answer (or an event stream: token … end).",
                    "content": {
                        **_json("InvokeResponse"),
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **GATEWAY_ERRORS,
            },
        }
    },
    "/v1/chat/completions": {
        "post": {
            "operationId": "gateway_chat_completions",
            "tags": ["gateway"],
            "summary": "OpenAI-compatible chat completions (model = agent_id)",
            "security": SECURITY,
            "requestBody": {"required": True, "content": _json("ChatCompletionRequest")},
            "responses": {
                "200": {"description": "chat.completion", "content": _json("ChatCompletion")},
                **GATEWAY_ERRORS,
            },
        }
    },
    "/v1/models": {
        "get": {
            "operationId": "gateway_models",
            "tags": ["gateway"],
            "summary": "The agents this key may call, as OpenAI models",
            "description": "Only an agent callable right now (agent active, subscription "
            "active, tenant not suspended); an empty list otherwise.",
            "security": SECURITY,
            "responses": {
                "200": {"description": "model list", "content": _json("ModelList")},
                "401": GATEWAY_ERRORS["401"],
            },
        }
    },
    "/v1/models/{model}": {
        "get": {
            "operationId": "gateway_model",
            "tags": ["gateway"],
            "summary": "One model (agent) this key may call",
            "description": "Any other id, unknown or another agent's, is 404 agent_not_found.",
            "security": SECURITY,
            "parameters": [
                {
                    "name": "model",
                    "in": "path",
                    "required": True,
                    "description": "An agent_id (a slug).",
                    "schema": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "maxLength": 100},
                }
            ],
            "responses": {
                "200": {"description": "model", "content": _json("Model")},
                "401": GATEWAY_ERRORS["401"],
                "404": GATEWAY_ERRORS["404"],
            },
        }
    },
}


def add_gateway_paths(result: dict, generator, request, public) -> dict:
    result.setdefault("paths", {}).update(PATHS)
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components.setdefault("securitySchemes", {}).update(
        {
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "apiKeyBearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The API key as a bearer token",
            },
        }
    )
    return result
