"""The Audit tab: every image of a data set explained, each class's heatmaps clustered (SpRAy,
:mod:`explain.dataset.spray`), the clusters shown as rows (mean heatmap, then the images nearest its centre);
an image's "Explain it" button explains it in the Explain tab. The data is the Report tab's choice (the same
widgets); the audit runs in the background (:mod:`dashboard.jobs`) once per (model, data, method) and is
kept per session."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from dashboard import cache, jobs, served
from dashboard.context import Ctx
from dashboard.report import REPORT_DATA, REPORT_FOLDER, REPORT_FOLDER_PICK, _confirmed, _data_ui
from dashboard.served import Chosen
from dashboard.state import IMAGE_PENDING, MAP_PICK, TAB, session_store
from dashboard.widgets import guarded
from explain import ExplainError

#: This session's audits (session state), how many and how many bytes it keeps.
AUDIT_RESULTS, AUDITS_KEPT, AUDITS_BYTES = "audit_results", 4, 96 * 1024**2
#: The data and method the last "Audit" press asked for (session state).
AUDIT_SPEC = "audit_spec"
AUDIT_METHOD, AUDIT_CLASS, RUN_AUDIT = "audit_method", "audit_class", "run_audit"
#: Set by an "Explain it" button: the next run is the whole app's (session state).
OPEN_PENDING = "audit_open_pending"
METHODS = ("saliency", "gradcam", "integrated_gradients", "smoothgrad")
KEPT_WIDGETS = (REPORT_DATA, REPORT_FOLDER, REPORT_FOLDER_PICK, AUDIT_METHOD, AUDIT_CLASS)


@dataclass(frozen=True)
class AuditView:
    """An audit as the tab shows it.

    Attributes:
        spray: the :class:`~explain.dataset.spray.SprayResult`.
        pictures: ``{id: PNG bytes}``: each prototype with its heatmap over it.
        means: ``{(class index, cluster): PNG bytes}``: each cluster's mean heatmap, coloured.
        names: ``{id: file name or #index}``.
    """

    spray: object
    pictures: dict
    means: dict
    names: dict


def _audit_job(ctx: Ctx, source, method: str):
    """The job: explain every image for its true class, cluster, draw the prototypes."""
    model, card = ctx.model, ctx.card

    def run(progress):
        from explain.dataset.audit import prototype_pictures
        from explain.dataset.evaluation import model_input_size
        from explain.dataset.explanations import attribute_dataset
        from explain.dataset.spray import spray
        from explain.render.pictures import encode_png, heatmap_colors, overlay

        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "rows.parquet"
            attribute_dataset(
                model, source, method, out=table, preprocess=card.preprocessing, target="true",
                class_names=card.known_class_names,
                progress=lambda done, total: progress(0.9 * done / max(total, 1), "Explaining every image…"),
            )  # fmt: skip
            progress(0.9, "Clustering the heatmaps of each class…")
            result = spray(table, projection=None)
            images, maps, captions = prototype_pictures(result, table, source, model_input_size(model, source))
        pictures = {i: encode_png(overlay(images[i], maps[i], min_size=112)) for i in images if i in maps}
        means = {
            (c.index, k.index): encode_png(heatmap_colors(np.clip(k.mean_heatmap, 0, 1), min_size=112))
            for c in result.classes
            for k in c.clusters
        }
        return AuditView(result, pictures, means, captions)

    return run


def _audit(ctx: Ctx, chosen: Chosen, method: str):
    key = (ctx.model_key, chosen.spec, method)
    store = session_store(AUDIT_RESULTS, AUDITS_KEPT, AUDITS_BYTES)
    if key not in store:
        source = served.shown_as(cache.data_source(chosen.spec), chosen)
        jobs.start("The audit (Audit tab)", key, store, _audit_job(ctx, source, method), text="")
    jobs.follow(key)
    return store.get(key)


def _open(spec: str, index: int, label: str) -> None:
    """An "Explain it" button's callback (run before any widget, so the tab can change): explain image ``index`` of
    the data in the Explain tab, as the sidebar's image (as a map point does); the fragment's rerun becomes the
    whole app's (:func:`render`)."""
    st.session_state[MAP_PICK] = {"spec": spec, "index": int(index), "label": label}
    st.session_state[IMAGE_PENDING] = label
    st.session_state[TAB] = "Explain"
    st.session_state[OPEN_PENDING] = True


def _cluster_row(view: AuditView, c, k, spec: str) -> None:
    cols = st.columns(1 + len(k.prototypes), gap="small")
    acc = "" if k.accuracy is None else f" · {k.accuracy:.0%} right"
    with cols[0]:
        st.image(view.means[(c.index, k.index)], caption=f"cluster {k.index}: {k.size} images{acc}")
        st.caption(f"share {k.share:.0%}")
    for col, i in zip(cols[1:], k.prototypes, strict=False):
        with col:
            if i in view.pictures:
                st.image(view.pictures[i], caption=view.names.get(i, f"#{i}"))
            label = f"{view.names.get(i, f'#{i}')} (from the audit)"
            st.button("Explain it", key=f"audit_open_{c.index}_{k.index}_{i}", help="open it in the Explain tab",
                      on_click=_open, args=(spec, i, label))  # fmt: skip


def _audit_ui(view: AuditView, chosen: Chosen) -> None:
    s = view.spray
    ranked = s.most_distinct() + [c for c in s.classes if c.eigengap is None]
    labels = [
        f"{c.name}: {len(c.clusters)} clusters" + ("" if c.eigengap is None else f", eigengap {c.eigengap:.3f}")
        for c in ranked
    ]
    st.caption(
        f"{s.method} heatmaps of every image, for its true class. Classes are listed by eigengap, most distinct "
        f"strategies first. Share: the relevance in the {s.region}."
    )
    looks = s.looks_at_region()
    st.markdown("Looking most at the border: " + ", ".join(f"**{c.name}** {c.share:.0%}" for c in looks[:3]))
    pick = st.selectbox("Class", labels, key=AUDIT_CLASS)
    c = ranked[labels.index(pick)] if pick in labels else ranked[0]
    for note in c.notes:
        st.caption(note)
    for k in c.clusters:
        _cluster_row(view, c, k, chosen.spec)


@st.fragment
@guarded
def render(ctx: Ctx) -> None:
    """The Audit tab (a fragment: its controls rerun it alone, but "Explain it" reruns the app)."""
    if st.session_state.pop(OPEN_PENDING, False):
        st.rerun(scope="app")
    chosen = _data_ui(ctx)
    method = st.selectbox("Heatmaps", METHODS, key=AUDIT_METHOD)
    if st.button("Audit every image", key=RUN_AUDIT, disabled=chosen is None):
        chosen = _confirmed(chosen)
        if chosen.refused is None:
            st.session_state[AUDIT_SPEC] = (chosen, method)
    if chosen is not None and chosen.refused is not None:
        st.error(chosen.refused)
    asked = st.session_state.get(AUDIT_SPEC)
    if not asked:
        st.caption(
            "Explains every image of the data set and clusters each class's heatmaps (Spectral Relevance Analysis, "
            "Lapuschkin et al. 2019): a class the model decides in two ways (the object, or a watermark that goes "
            "with the label) shows two clusters."
        )
        return
    chosen, method = asked
    try:
        view = _audit(ctx, chosen, method)
    except ExplainError as e:
        st.error(served.in_visitor_words(e))
        return
    if view is not None:
        _audit_ui(view, chosen)
