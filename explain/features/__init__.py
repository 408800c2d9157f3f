"""What a layer holds: its activations (:mod:`~explain.features.activations`), a conv layer's kernels
(:mod:`~explain.features.kernels`), and filter and class patterns by activation maximisation
(:mod:`~explain.features.patterns`)."""
