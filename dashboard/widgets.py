"""Small pieces every tab uses: downloads of figures and PNGs, the tab guard, names for files."""

from __future__ import annotations

import functools
import hashlib
import io

import streamlit as st


def digest(data: bytes) -> str:
    """The SHA-256 of ``data``, hex."""
    return hashlib.sha256(data).hexdigest()


def safe(name: str) -> str:
    """A layer name as part of a file name (a nested layer's ``/`` becomes ``_``)."""
    return name.replace("/", "_")


def in_dashboard_words(text: str) -> str:
    """A CLI hint (``--preprocess``) as the dashboard says it (the Input scaling menu)."""
    return text.replace("pass --preprocess unit", "choose 'unit' under Input scaling").replace(
        "with --preprocess", "under Input scaling"
    )


def png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (120 dpi)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def download(make_figure, name: str, key: str, label: str = "Download PNG") -> None:
    """A download button for a titled matplotlib figure, drawn only when it is pressed."""
    st.download_button(label, lambda: png(make_figure()), file_name=name, mime="image/png", key=key, on_click="ignore")


def show_png(data: bytes, name: str, key: str) -> None:
    """A PNG on screen with its download button."""
    st.image(data, output_format="PNG")  # "auto" re-encodes an RGB PNG as JPEG
    st.download_button("Download PNG", data, file_name=name, mime="image/png", key=key, on_click="ignore")


def guarded(ui):
    """A tab's body, run so that an error it did not expect is shown in that tab, in one line
    without a traceback, and the other tabs still draw (a full rerun would otherwise stop at it)."""

    @functools.wraps(ui)
    def run(*args, **kwargs):
        try:
            ui(*args, **kwargs)
        except Exception as e:  # st.rerun() / st.stop() are BaseExceptions and pass through
            st.error(f"This tab hit an unexpected error ({type(e).__name__}: {e}); the other tabs still work.")

    return run
