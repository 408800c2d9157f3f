"""Two dashboard sessions at once: each keeps its own model, image and layer while the other moves."""

import pytest
from conftest import DEMO_MODEL, ROOT
from dashboard_helpers import layer_options, layer_value, set_layer
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")


def _ok(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _state(at: AppTest) -> tuple:
    slider = [s.value for s in at.slider if s.key == "max_maps"]
    return at.selectbox(key="image_choice").value, layer_value(at), slider


def test_two_sessions_changing_layer_and_image_alternately():
    a = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    b = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    a.run()
    b.run()
    _ok(a)
    _ok(b)
    layers = layer_options(a)
    images = [n for n in a.selectbox(key="image_choice").options if n != "Upload…"]
    assert len(layers) >= 4 and len(images) >= 3

    steps = [
        (a, "layer", layers[3]),
        (b, "image_choice", images[-1]),
        (a, "image_choice", images[1]),
        (b, "layer", layers[-1]),
        (a, "layer", layers[1]),
        (b, "image_choice", images[0]),
    ]
    expected = {id(a): _state(a), id(b): _state(b)}
    for session, key, value in steps:
        if key == "layer":
            set_layer(session, value)
        else:
            session.selectbox(key=key).set_value(value).run()
        _ok(session)
        expected[id(session)] = _state(session)
        assert (layer_value(session) if key == "layer" else session.selectbox(key=key).value) == value
        other = b if session is a else a
        other.run()  # the other session reruns (e.g. a widget refresh) and keeps its own choices
        _ok(other)
        assert _state(other) == expected[id(other)]
    # the final states differ, and each is what its own user picked
    assert _state(a)[:2] == (images[1], layers[1])
    assert _state(b)[:2] == (images[0], layers[-1])
    assert _state(a)[2] == [32] and _state(b)[2] == []  # conv2d's 32 maps vs the softmax bars
