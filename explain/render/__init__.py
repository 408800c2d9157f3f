"""Pictures: composed in NumPy for the screen (:mod:`~explain.render.pictures`), and matplotlib figures
for downloads, the report and the CLIs (:mod:`~explain.render.figures`)."""
