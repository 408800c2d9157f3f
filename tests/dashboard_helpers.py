"""Driving the dashboard's browser-side pieces (dashboard/components.py) under AppTest: the layer
picker and the opacity slider are components whose state lives in ``session_state[key]["value"]``,
and the viewers' pictures travel in their data (``data:`` URIs of PNGs)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest


def components(at: AppTest, name: str | None = None) -> list:
    """The mounted components (``explain.control`` / ``explain.viewer``) of the last run, in order."""
    out = []
    for node in at:
        if getattr(node, "type", "") == "bidi_component":
            if name is None or node.proto.component_name == name:
                out.append(node)
    return out


def component(at: AppTest, key: str):
    """The component mounted with ``key``, or None."""
    for node in components(at):
        if node.proto.id.endswith(f"-{key}"):
            return node
    return None


def component_data(at: AppTest, key: str) -> dict:
    """The data the component ``key`` was sent in the last run ({} when it is not mounted)."""
    node = component(at, key)
    return json.loads(node.proto.json) if node is not None and node.proto.json else {}


def layer_options(at: AppTest) -> list[str]:
    return component_data(at, "layer")["options"]


def layer_value(at: AppTest) -> str:
    return component_data(at, "layer")["value"]


def set_control(at: AppTest, key: str, value) -> AppTest:
    """Choose ``value`` in the browser-side control ``key`` (as controls.js does) and rerun."""
    at.session_state[key] = {"value": value}
    return at.run()


def set_layer(at: AppTest, label: str) -> AppTest:
    return set_control(at, "layer", label)


def open_tab(at: AppTest, name: str) -> AppTest:
    """Open a tab (only the open tab runs) and rerun."""
    at.session_state["tab"] = name
    return at.run()


def view_tiles(at: AppTest, key: str) -> list[dict]:
    """The tiles of what viewer ``key`` shows now ([] when it is not mounted)."""
    d = component_data(at, key)
    return d.get("views", {}).get(d.get("current"), []) if d else []


def wait_for_warm_up(timeout: float = 120.0) -> None:
    """Wait for the dashboard's background warm-up of the Explain tab (dashboard.cache.warm_explain_tab)."""
    import threading

    for thread in threading.enumerate():
        if thread.name == "explain-warm-up":
            thread.join(timeout)


def picture(uri: str) -> np.ndarray:
    """The RGB pixels of a ``data:image/png;base64,...`` URI (uint8 (H, W, 3); palette PNGs expanded)."""
    head, _, payload = uri.partition(",")
    assert head == "data:image/png;base64", head
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"))
