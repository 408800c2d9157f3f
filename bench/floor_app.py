"""The smallest Streamlit page that does what a dashboard step does: a selectbox in a fragment, and
an image (cached PNG bytes) that changes with it. ``bench/bench_browser.py`` times it beside the
dashboard as "Streamlit floor": no step answered by a Streamlit rerun can be faster on this machine.

    streamlit run bench/floor_app.py
"""

import io

import numpy as np
import streamlit as st
from PIL import Image

OPTIONS = [f"picture {i}" for i in range(40)]


@st.cache_data
def picture(i: int) -> bytes:
    """A 900x600 PNG of 20x20 px blocks (about 16 KB), different for each ``i``."""
    blocks = np.random.default_rng(i).integers(0, 255, (30, 45, 3))
    buf = io.BytesIO()
    Image.fromarray(np.kron(blocks, np.ones((20, 20, 1))).astype(np.uint8)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@st.fragment
def body() -> None:
    choice = st.selectbox("Picture", OPTIONS, key="picture")
    st.image(picture(OPTIONS.index(choice)))


st.set_page_config(layout="wide")
(tab,) = st.tabs(["Floor"])
with tab:
    body()
