"""Questions about a whole data set: evaluation (:mod:`~explain.dataset.evaluation`), the feature-space
map (:mod:`~explain.dataset.embedding`) and the report (:mod:`~explain.dataset.report`)."""
