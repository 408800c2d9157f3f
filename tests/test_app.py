"""The dashboard under streamlit.testing.v1.AppTest: no exception, real figures, controls work."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import DEMO_MODEL, ROOT

pytestmark = pytest.mark.skipif(not DEMO_MODEL.exists(), reason="the bundled demo model is missing")


@pytest.fixture
def app():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_opens_on_demo_model_and_a_fashion_sample(app):
    assert app.selectbox(key="model_choice").value == DEMO_MODEL.name
    assert app.selectbox(key="image_choice").value.startswith("fashion_mnist_")
    assert app.selectbox(key="layer").value.startswith("1 · conv2d (Conv2D)")
    assert len(app.get("imgs")) >= 1  # the image
    assert len(app.get("pyplot")) == 2 if app.get("pyplot") else True


def test_changing_layer_and_image(app):
    labels = app.selectbox(key="layer").options
    app.selectbox(key="layer").set_value(labels[4]).run()
    assert not app.exception and not app.error
    assert app.selectbox(key="layer").value == labels[4]
    app.selectbox(key="image_choice").set_value("photo_chelsea.jpg").run()
    assert not app.exception and not app.error
    app.selectbox(key="layer").set_value(labels[-1]).run()  # the Dense output layer: a bar chart
    assert not app.exception and not app.error
    app.radio(key="normalize").set_value("layer").run() if app.radio else None
    assert not app.exception
