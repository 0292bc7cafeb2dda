"""A Langflow flow export (``GET /api/v1/flows/{id}``, or the UI's "Export"), read into
what an agent's ``langflow`` runtime needs: the flow's id, name and description.

Refused, with a message a person can act on: a file that is not JSON, a list of flows,
a flow without a Chat Input or a Chat Output component (the gateway sends the caller's
text to the first and reads the answer from the second), a flow without an id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent_registry.core.errors import ValidationFailed

MAX_EXPORT_BYTES = 5 * 1024 * 1024
FIELD = "flow_file"


@dataclass(frozen=True)
class FlowExport:
    flow_id: str
    name: str
    description: str


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed("The file is not a usable Langflow flow.", details={FIELD: [message]})


def _node_types(data: dict[str, Any]) -> set[str]:
    types = set()
    for node in data.get("nodes") or []:
        if isinstance(node, dict) and isinstance(node.get("data"), dict):
            node_type = node["data"].get("type")
            if isinstance(node_type, str):
                types.add(node_type)
    return types


def parse_flow_export(raw: bytes) -> FlowExport:
    if len(raw) > MAX_EXPORT_BYTES:
        raise _refuse(f"The file is larger than {MAX_EXPORT_BYTES // (1024 * 1024)} MB.")
    try:
        flow = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse(
            "The file is not JSON: export the flow from Langflow and upload that file."
        ) from None
    if isinstance(flow, dict) and isinstance(flow.get("flows"), list):
        raise _refuse("The file holds several flows: export the one flow this agent runs.")
    if not isinstance(flow, dict) or not isinstance(flow.get("data"), dict):
        raise _refuse("The file is JSON but not a Langflow flow (it has no 'data' with nodes).")
    types = _node_types(flow["data"])
    missing = [
        label
        for kind, label in (("ChatInput", "a Chat Input"), ("ChatOutput", "a Chat Output"))
        if kind not in types
    ]
    if missing:
        raise _refuse(
            f"The flow has no {' and no '.join(m.removeprefix('a ') for m in missing)} component: "
            "the registry sends the caller's message to a Chat Input and reads the answer "
            "from a Chat Output."
        )
    flow_id = flow.get("id") or flow.get("endpoint_name")
    if not isinstance(flow_id, str) or not flow_id.strip():
        raise _refuse("The flow has no id: export it from a Langflow server, where it is saved.")
    name, description = flow.get("name"), flow.get("description")
    name = name if isinstance(name, str) else ""
    description = description if isinstance(description, str) else ""
    return FlowExport(flow_id=flow_id.strip(), name=name[:200], description=description[:5000])
