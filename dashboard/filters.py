"""The Filters tab: filter patterns (activation maximisation) of a chosen layer, or class patterns,
behind a button with a time estimate and a progress bar, kept per session; a convolution's kernel
weights in an expander."""

from __future__ import annotations

import time

import streamlit as st

from dashboard import cache, jobs
from dashboard.context import Ctx
from dashboard.state import session_store
from dashboard.widgets import download, guarded, png, safe, show_png
from explain import ExplainError, feature_map_grid, layer_table
from explain.features.kernels import conv_filters, conv_layers
from explain.features.patterns import class_patterns, estimate_seconds, filter_patterns
from explain.render.figures import pattern_grid

#: The tab's entry for class patterns (the output logits), after the spatial layers.
CLASS_PATTERNS = "Output: class patterns"
PATTERN_STEPS = {32: "32 (quick sketch)", 128: "128 (default)", 256: "256 (finer)"}
FIRST_CHANNELS = 16
#: This session's pattern grids (session state), and how many (and bytes) it keeps.
PATTERN_RESULTS, PATTERNS_KEPT, PATTERNS_BYTES = "pattern_results", 16, 64 * 1024**2
# The tab's widget keys, and those it keeps while closed.
FILTER_LAYER, PATTERN_STEPS_KEY, PATTERN_CHANNELS, PATTERN_SEED = (
    "filter_layer", "pattern_steps", "pattern_channels", "pattern_seed"
)  # fmt: skip
RUN_PATTERNS, DL_PATTERNS, DL_FILTERS = "run_patterns", "dl_patterns", "dl_filters"
KEPT_WIDGETS = (FILTER_LAYER, PATTERN_STEPS_KEY, PATTERN_CHANNELS, PATTERN_SEED)


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def _pattern_layers(model) -> list:
    """The layers patterns can be drawn for: spatial ones (nested included), input and scaling excluded."""
    return [r for r in layer_table(model) if r.is_spatial and r.type not in ("InputLayer", "Rescaling")]


def _pattern_controls(ctx: Ctx, rows) -> tuple[str | None, list[int], int, int]:
    """The tab's controls: ``(layer name or None for classes, channels, steps, seed)``."""
    labels = [r.label for r in rows] + [CLASS_PATTERNS]
    default = next((i for i, r in enumerate(rows) if r.type.startswith("Conv")), 0)
    label = st.selectbox("Layer (or the output, for class patterns)", labels, index=default, key=FILTER_LAYER)
    layer = None if label == CLASS_PATTERNS else rows[labels.index(label)].name
    available = len(ctx.class_names) if layer is None else int(rows[labels.index(label)].channels)
    c1, c2, c3 = st.columns(3)
    steps = c1.selectbox("Steps", list(PATTERN_STEPS), index=1, format_func=PATTERN_STEPS.get, key=PATTERN_STEPS_KEY)
    which = c2.selectbox(
        "Channels (classes, for the output)",
        [f"first {FIRST_CHANNELS}", "all"],
        key=PATTERN_CHANNELS,
        help=f"This one has {available}.",
    )
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key=PATTERN_SEED)
    count = available if which == "all" else min(FIRST_CHANNELS, available)
    return layer, list(range(count)), int(steps), int(seed)


def _patterns_png(patterns, class_names) -> bytes:
    """The grid of patterns, each tile labelled "channel: activation" (class name for classes)."""
    labels = [
        f"{class_names[k] if patterns.kind == 'class' and k < len(class_names) else k}: {a:.3g}"
        for k, a in zip(patterns.channels.tolist(), patterns.activation.tolist(), strict=True)
    ]
    if patterns.kind == "class":
        title = f"Class patterns ({patterns.steps} steps, seed {patterns.seed}): class: score"
    else:
        title = f"Patterns of {patterns.layer} ({patterns.steps} steps, seed {patterns.seed}): channel: mean activation"
    return png(pattern_grid(patterns.images, labels, title=title))


def _pattern_job(ctx: Ctx, layer: str | None, channels: list[int], steps: int, seed: int, estimate: float):
    """The job finding the patterns (run in the background, :mod:`dashboard.jobs`): its result is
    what the tab keeps, ``{"png", "seconds", "estimate"}``."""
    model, preprocess, names = ctx.model, ctx.preprocess, ctx.class_names

    def run(progress) -> dict:
        start = time.perf_counter()

        def step(done: int, total: int) -> None:
            progress(done / total, f"Step {done} of {total}, {time.perf_counter() - start:.0f} s")

        kwargs = {"steps": steps, "seed": seed, "preprocess": preprocess, "progress": step}
        if layer is None:
            patterns = class_patterns(model, channels, **kwargs)
        else:
            patterns = filter_patterns(model, layer, channels, **kwargs)
        return {"png": _patterns_png(patterns, names), "seconds": time.perf_counter() - start, "estimate": estimate}

    return run


def _kernel_block(ctx: Ctx, layer: str) -> None:
    """A convolution layer's kernel weights, in an expander."""
    with st.expander("Kernel weights"):
        kernels = conv_filters(ctx.model, layer)
        st.caption(
            f"{kernels.shape[-1]} filters of {kernels.shape[0]}x{kernels.shape[1]} weights, averaged over the "
            "input channels; each scaled to its own min-max (blue: most negative, red: most positive)."
        )
        st.image(cache.filters_png(ctx.model_key, layer, kernels))
        download(
            lambda: feature_map_grid(kernels, title=f"Filters of {layer}", max_maps=64, cmap="RdBu_r"),
            f"{safe(layer)}_filters.png",
            DL_FILTERS,
        )


def _found(kept: dict, layer: str | None, what: str) -> None:
    label = "class: its score (logit, if any)" if layer is None else "channel: its mean activation"
    st.caption(
        f"Found in {_seconds(kept['seconds'])} (estimated {_seconds(kept['estimate'])}). Each tile is the image "
        f"that excites one {what[:-2] if layer is None else what[:-1]} most (gradient ascent from noise), "
        f"labelled {label} on it."
    )
    name = "class_patterns.png" if layer is None else f"{safe(layer)}_patterns.png"
    show_png(kept["png"], name, DL_PATTERNS)


@st.fragment
@guarded
def render(ctx: Ctx) -> None:
    """The Filters tab (a fragment: its controls rerun it alone)."""
    rows = _pattern_layers(ctx.model)
    layer, channels, steps, seed = _pattern_controls(ctx, rows)
    key = (ctx.model_key, layer, tuple(channels), steps, seed, ctx.preprocess)
    what = "classes" if layer is None else "channels"
    store = session_store(PATTERN_RESULTS, PATTERNS_KEPT, PATTERNS_BYTES)
    try:
        run = st.button("Find patterns", key=RUN_PATTERNS, type="primary")
        kept = store.get(key)
        if kept is None or run:
            estimate = estimate_seconds(cache.pattern_step_cost(ctx, layer), len(channels), steps)
            st.caption(
                f"About {_seconds(estimate)} for {len(channels)} {what} x {steps} steps (from a few timed "
                "steps of this layer on this machine)."
            )
        if run:
            job = _pattern_job(ctx, layer, channels, steps, seed, estimate)
            jobs.start("The pattern search (Filters tab)", key, store, job, text="Finding patterns…")
        jobs.follow(key)
        kept = store.get(key)
    except (ExplainError, ValueError) as e:  # LayerError too: bad layer, channel, size, no gradient
        st.error(str(e))
        kept = None
    if kept is not None:
        _found(kept, layer, what)
    if layer is not None and layer in conv_layers(ctx.model):
        _kernel_block(ctx, layer)
