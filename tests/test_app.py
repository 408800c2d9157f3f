"""The dashboard under streamlit.testing.v1.AppTest: no exception, real figures, controls work."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import DEMO_MODEL, ROOT

pytestmark = pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")


def _ok(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # the input image, the top-5 chart and the layer figure
    assert len(at.get("image")) == 3


@pytest.fixture
def app():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    _ok(at)
    return at


def test_opens_on_demo_model_and_a_fashion_sample(app):
    assert app.selectbox(key="model_choice").value == DEMO_MODEL.name
    assert app.selectbox(key="image_choice").value.startswith("fashion_mnist_")
    assert app.selectbox(key="layer").value.startswith("1 · conv2d (Conv2D)")
    assert "fashion_mnist, test accuracy" in app.sidebar.caption[0].value
    assert app.slider(key="max_maps").value == 32  # conv2d has 32 channels


def test_changing_layer_image_and_scale(app):
    labels = app.selectbox(key="layer").options
    app.selectbox(key="layer").set_value(labels[3]).run()  # conv2d_1, 64 channels
    _ok(app)
    assert app.slider(key="max_maps").value == 64
    app.selectbox(key="image_choice").set_value("photo_chelsea.jpg").run()  # RGB photo into a grayscale model
    _ok(app)
    app.radio(key="normalize").set_value("layer").run()
    _ok(app)
    app.selectbox(key="layer").set_value(labels[-1]).run()  # the softmax output: a bar chart, no slider
    _ok(app)
    assert not app.slider


def test_upload_choice_without_a_file_asks_for_one(app):
    app.selectbox(key="image_choice").set_value("Upload…").run()
    assert not app.exception
    assert any("Upload an image" in i.value for i in app.info)
