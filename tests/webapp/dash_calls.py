"""Calling one Dash callback in-process, with chosen input and state values, as the browser would."""
from __future__ import annotations

from typing import Any

from tests.webapp.conftest import parse_outputs


def callback_spec(dash_app, output_prefix: str) -> tuple[str, dict]:
    dash_app.server.test_client().get("/healthz")  # Dash builds its callback map on the first request
    for key, spec in dash_app.callback_map.items():
        if output_prefix in key:
            return key, spec
    raise KeyError(output_prefix)


def call(client, dash_app, output_prefix: str, values: dict[str, Any] | None = None,
         triggered: str | None = None):
    """POST the callback whose output key contains `output_prefix`; `values` maps "id.prop" to a value
    (inputs and states alike; the rest are None). Returns the Flask response."""
    values = values or {}
    key, spec = callback_spec(dash_app, output_prefix)

    def item(i: dict) -> dict:
        return {"id": i["id"], "property": i["property"], "value": values.get(f"{i['id']}.{i['property']}")}

    first = spec["inputs"][0]
    body = {"output": key, "outputs": parse_outputs(key), "inputs": [item(i) for i in spec["inputs"]],
            "state": [item(s) for s in spec["state"]],
            "changedPropIds": [triggered or f"{first['id']}.{first['property']}"]}
    return client.post("/_dash-update-component", json=body)


def outputs(response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_json()["response"]


def text_of(node: Any) -> str:
    """All text inside a serialised Dash component tree."""
    if isinstance(node, (str, int, float)):
        return str(node)
    if isinstance(node, list):
        return " ".join(text_of(n) for n in node)
    if isinstance(node, dict):
        return text_of(node.get("props", {}).get("children", ""))
    return ""


def find_by_id(node: Any, element_id: str) -> dict | None:
    if isinstance(node, list):
        for n in node:
            found = find_by_id(n, element_id)
            if found:
                return found
    elif isinstance(node, dict):
        props = node.get("props", {})
        if props.get("id") == element_id:
            return node
        for value in props.values():
            found = find_by_id(value, element_id)
            if found:
                return found
    return None
