"""Pictures, one layout each: composed in NumPy for the screen (:mod:`~explain.render.pictures`); their
downloads are matplotlib figures around the same pixels, with a title (:mod:`~explain.render.figures`,
which also draws the figures with no screen picture: the report's charts, galleries and maps)."""
