"""Import TensorFlow and Keras without their start-up noise on stderr.

TensorFlow's C++ runtime writes lines such as "Could not find cuda drivers" to file
descriptor 2 before any logging setting can take effect, so ``TF_CPP_MIN_LOG_LEVEL``
alone does not silence them. :func:`quiet_import` sets that variable and points file
descriptor 2 at ``/dev/null`` for the duration of the import only; Python exceptions
raised by the import still propagate (and are printed) after stderr is restored.
"""

from __future__ import annotations

import contextlib
import os
import sys

from explain import _keras_fixes


@contextlib.contextmanager
def _stderr_silenced():
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (pytest capture, Streamlit)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)


def quiet_import() -> None:
    """Import ``tensorflow`` and ``keras`` once, with TensorFlow's log noise suppressed, and install
    :mod:`explain._keras_fixes` (channels-first convolutions on the CPU)."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        _keras_fixes.apply()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_silenced():
        import keras  # noqa: F401
        import tensorflow

        tensorflow.config.list_physical_devices()  # probes for CUDA now, while stderr is muted
        # One compiled function per explainer is by design; TF's "retracing" advice is noise here.
        tensorflow.get_logger().setLevel("ERROR")
    _keras_fixes.apply()
