"""Gradient x Input: Shrikumar, Greenside, Shcherbina & Kundaje 2016, "Not Just a Black Box: Learning
Important Features Through Propagating Activation Differences", https://arxiv.org/abs/1605.01713.

The input-gradient of the class score times the input: on a linear model, each pixel's exact
contribution to the score.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.saliency import Saliency


class GradientInput(Saliency):
    """Gradient x Input (Shrikumar et al. 2016, https://arxiv.org/abs/1605.01713).

    The raw map is ``|sum_c x_ijc * dS/dx_ijc|``: the gradient of the class score ``S`` (the logit where
    the model has one) with respect to the raw input pixels, times those pixels, summed over the colour
    channels, in absolute value (as xplique's ``GradientInput`` summed over channels, and tf-explain's
    ``GradientsInputs`` in absolute value). On a linear model ``S = x . w + b`` it is ``|x * w|`` summed
    over channels, each pixel's contribution. Parameters and errors: as :class:`Saliency`.
    """

    name = "gradient_input"
    reference = "Shrikumar et al. 2016, https://arxiv.org/abs/1605.01713"

    def _raw_maps(self, x, class_index):
        grads, cls, score = self._input_gradients(x, class_index)
        return tf.abs(tf.reduce_sum(grads * x, axis=-1)), cls, score
