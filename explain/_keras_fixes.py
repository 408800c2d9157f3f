"""Work-arounds for Keras backend gaps that stop real models from running here.

Channels-first convolutions on the CPU: TensorFlow's ``Conv2D`` kernel only supports NHWC on
the CPU ("The Conv2D op currently only supports the NHWC tensor format on the CPU"), and
Keras 3's TensorFlow backend passes ``channels_first`` through for ``conv`` and
``conv_transpose``, although it already transposes around the CPU gap for pooling,
depthwise and separable convolutions (``keras/src/backend/tensorflow/nn.py``). A
channels-first model, trained on a GPU or with ``image_data_format: channels_first``, then
cannot run a single image on a CPU-only machine. :func:`apply` wraps those two backend
functions to do what Keras does for pooling: transpose to channels-last, convolve, transpose
back. The kernel layout is the same for both data formats, so the results are the same
(tests/test_layouts.py compares every channels-first layer with its channels-last twin).
Only a call that would otherwise raise is changed: channels-first, 1-D or 2-D, on a machine
whose TensorFlow sees no GPU.
"""

from __future__ import annotations

_PATCHED = "_explain_channels_first_on_cpu"


def apply() -> None:
    """Install the work-arounds once (idempotent); a no-op on a backend other than TensorFlow."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    from keras.src import backend
    from keras.src.backend.tensorflow import nn

    if getattr(nn.conv, _PATCHED, False):
        return
    conv, conv_transpose = nn.conv, nn.conv_transpose

    def needs_transpose(inputs, data_format) -> bool:
        return (
            backend.standardize_data_format(data_format) == "channels_first"
            and len(inputs.shape) in (3, 4)
            and nn._cpu_only()
        )

    def conv_on_cpu(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        if not needs_transpose(inputs, data_format):
            return conv(inputs, kernel, strides, padding, data_format, dilation_rate)
        out = conv(nn._transpose_spatial_inputs(inputs), kernel, strides, padding, "channels_last", dilation_rate)
        return nn._transpose_spatial_outputs(out)

    def conv_transpose_on_cpu(
        inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None, dilation_rate=1
    ):
        if not needs_transpose(inputs, data_format):
            return conv_transpose(inputs, kernel, strides, padding, output_padding, data_format, dilation_rate)
        x = nn._transpose_spatial_inputs(inputs)
        out = conv_transpose(x, kernel, strides, padding, output_padding, "channels_last", dilation_rate)
        return nn._transpose_spatial_outputs(out)

    for fn in (conv_on_cpu, conv_transpose_on_cpu):
        setattr(fn, _PATCHED, True)
    nn.conv, nn.conv_transpose = conv_on_cpu, conv_transpose_on_cpu
