"""The Report tab: per-class accuracy and the confusion matrix on a data set, the most frequent
confusions explained, and the feature-space map, whose points open their image in the other tabs.
The report runs in the background (:mod:`dashboard.jobs`) and is kept per session. On a served dashboard,
folders are read only as :mod:`dashboard.served` allows (under ``--data-root``), and a visitor can upload
a ``.zip`` of class folders instead."""

from __future__ import annotations

import streamlit as st

from dashboard import cache, jobs, served
from dashboard.context import Ctx
from dashboard.served import Chosen
from dashboard.state import IMAGE_PENDING, MAP_PICK, TAB, session_store
from dashboard.widgets import guarded, show_png
from explain import ExplainError
from explain.dataset.report import report_view

FOLDER, ZIP = "A folder of class subfolders…", "A .zip of class folders (upload)…"
BUILTIN_SETS = ("fashion_mnist", "mnist", "cifar10")
#: This session's reports (session state), and how many (and bytes: pictures, the page, the map's thumbnails) it keeps.
REPORT_RESULTS, REPORTS_KEPT, REPORTS_BYTES = "report_results", 8, 128 * 1024**2
#: The data the last "Evaluate" press asked for (a :class:`~dashboard.served.Chosen`), and the map's last
#: clicked row (session state).
REPORT_SPEC, MAP_ROW = "report_spec", "map_row"
# The tab's widget keys, and those it keeps while closed (a file uploader cannot be kept).
REPORT_DATA, REPORT_FOLDER, CONFUSION_PICK = "report_data", "report_folder", "confusion_pick"
REPORT_FOLDER_PICK, REPORT_ZIP = "report_folder_pick", "report_zip"
EMBEDDING_MAP, RUN_REPORT, DL_REPORT = "embedding_map", "run_report", "dl_report"
#: The download keys of the report's pictures, by file name.
DOWNLOADS = {
    "per_class_accuracy.png": "dl_per_class",
    "confusion_matrix.png": "dl_confusion",
    "embedding.png": "dl_embedding",
    "look_alikes.png": "dl_look_alikes",
}
DL_GALLERY = "dl_gallery"
KEPT_WIDGETS = (REPORT_DATA, REPORT_FOLDER, REPORT_FOLDER_PICK, CONFUSION_PICK)


def _data_ui(ctx: Ctx) -> Chosen | None:
    """The data to evaluate on: the model's own built-in test split, a folder, or an uploaded zip of
    class folders. Returns it, or None while none is given (or it was refused: said in the tab)."""
    card = ctx.card
    builtin = [f"{card.dataset}:test"] if card.dataset in BUILTIN_SETS else []
    choice = st.selectbox("Data", [*builtin, FOLDER, ZIP], key=REPORT_DATA)
    if builtin and choice == builtin[0]:
        return Chosen(choice, choice)
    return _zip_ui() if choice == ZIP else _folder_ui()


def _fill_folder() -> None:
    """A folder picked from the list fills the folder box."""
    st.session_state[REPORT_FOLDER] = st.session_state[REPORT_FOLDER_PICK] or ""


def _typed_over_pick() -> None:
    """A folder typed over a picked one: the list shows no pick."""
    if st.session_state.get(REPORT_FOLDER_PICK) not in (None, st.session_state[REPORT_FOLDER].strip()):
        st.session_state[REPORT_FOLDER_PICK] = None


def _folder_ui() -> Chosen | None:
    """A folder typed (or picked under the data root; refused ones come back with ``refused`` set),
    or why folders are off on this server."""
    if not served.folders_open():
        st.info(served.FOLDERS_OFF)
        return None
    label = "Folder (one subfolder per class)"
    try:
        if served.data_root() is not None:
            label = "Folder (one subfolder per class), relative to the data root"
            folders = served.listed_folders()
            if st.session_state.get(REPORT_FOLDER_PICK) not in folders:  # the root's folders changed
                st.session_state[REPORT_FOLDER_PICK] = None
            st.selectbox(
                f"Data folders under the data root ({len(folders)})",
                folders,
                index=None,
                key=REPORT_FOLDER_PICK,
                on_change=_fill_folder,
                placeholder="Pick one, or type a folder below",
            )
        text = st.text_input(label, key=REPORT_FOLDER, on_change=_typed_over_pick).strip()
        if not text:
            return None
        return served.typed_folder(text) if served.data_root() is not None else Chosen(text, text)
    except ExplainError as e:
        st.error(str(e))
        return None


def _zip_ui() -> Chosen | None:
    """An uploaded zip of class folders, unpacked for this session."""
    up = st.file_uploader(
        "A .zip of class folders, one subfolder per class (`zip -r birds.zip birds` with `birds/cats/*.jpg`...)",
        type=["zip"],
        key=REPORT_ZIP,
    )
    if up is None:
        return None
    try:
        return served.uploaded_zip(up.name, up.getvalue())
    except ExplainError as e:
        st.error(str(e))
        return None


def _confirmed(chosen: Chosen) -> Chosen:
    """``chosen`` checked again as the report starts: a folder typed under the data root is resolved afresh."""
    return served.typed_folder(chosen.typed, fresh=True) if chosen.typed is not None else chosen


def _report_job(ctx: Ctx, source, label: str):
    """The job computing the report (in the background); its result is a :class:`~explain.dataset.report.ReportView`."""
    model, card = ctx.model, ctx.card

    def run(progress):
        def stage(name: str, fraction: float) -> None:
            progress(fraction, f"{name}…")

        return report_view(model, source, card=card, progress=stage, examples=6, command=f"dashboard report on {label}")

    return run


def _report(ctx: Ctx, chosen: Chosen):
    """The report on ``chosen``, once per model and data in this session; None while it waits for
    another job. Raises ExplainError for bad data."""
    key = (ctx.model_key, chosen.spec)
    store = session_store(REPORT_RESULTS, REPORTS_KEPT, REPORTS_BYTES)
    if key not in store:
        source = served.shown_as(cache.data_source(chosen.spec), chosen)  # a map point is read from its spec again
        jobs.start("The report (Report tab)", key, store, _report_job(ctx, source, chosen.label), text="")
    jobs.follow(key)
    return store.get(key)


def _map_chart(points: dict):
    import altair as alt
    import pandas as pd

    from explain.render.figures import class_hex_colors

    names = points["names"]
    table = pd.DataFrame({k: v for k, v in points.items() if k not in ("names", "caption")})
    pick = alt.selection_point(name="pick", fields=["row"], on="click")
    colours = alt.Scale(domain=names, range=class_hex_colors(len(names)))
    return (
        alt.Chart(table, height=560)
        .mark_point(filled=True, size=36, opacity=0.8)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color("colour:N", scale=colours, title="class"),
            shape=alt.Shape("mark:N", scale=alt.Scale(domain=["correct", "misclassified"], range=["circle", "cross"])),
            tooltip=["image", "id", "true", "predicted"],
        )
        .add_params(pick)
        .properties(usermeta={"embedOptions": {"renderer": "svg"}})  # marks are elements: clickable in tests
    )


def _embedding_ui(points: dict, spec: str) -> None:
    """The interactive map: hover a point for its image, click it to explain that image."""
    st.subheader("Feature-space map")
    st.caption(points["caption"] + " Click a point to open that image in the Layers and Explain tabs.")
    event = st.altair_chart(
        _map_chart(points), on_select="rerun", selection_mode="pick", key=EMBEDDING_MAP, width="stretch"
    )
    chosen = (event.selection.get("pick") or [{}])[0].get("row") if event else None
    if chosen is None or chosen == st.session_state.get(MAP_ROW):
        return
    i = points["row"].index(chosen)
    label = f"{points['id'][i]} (from the map)"
    st.session_state[MAP_ROW] = chosen
    st.session_state[MAP_PICK] = {"spec": spec, "index": int(points["index"][i]), "label": label}
    st.session_state[IMAGE_PENDING] = label
    st.session_state[TAB] = "Explain"
    st.rerun(scope="app")


def _show_file(files: dict, name: str) -> None:
    show_png(files[name], name, DOWNLOADS[name])


def _report_ui(rep, chosen: Chosen) -> None:
    """What the report shows: accuracy, per-class accuracy, the confusions, the map, the page."""
    st.markdown(f"**{chosen.label}**: {rep.num_images:,} images, accuracy **{rep.accuracy:.2%}**")
    for note in rep.notes:
        st.caption(note)
    files = rep.files
    c1, c2 = st.columns(2)
    with c1:
        _show_file(files, "per_class_accuracy.png")
    with c2:
        _show_file(files, "confusion_matrix.png")
    if rep.confusions:
        pick = st.selectbox("Most frequent confusions", [label for label, _ in rep.confusions], key=CONFUSION_PICK)
        gallery = dict(rep.confusions)[pick]
        show_png(files[gallery], gallery, DL_GALLERY)
    if rep.map is not None:
        _embedding_ui(rep.map, chosen.spec)
        _show_file(files, "embedding.png")
        if "look_alikes.png" in files:
            st.caption("The images that look most like another class to the model, explained:")
            _show_file(files, "look_alikes.png")
    st.download_button(
        "Download the report (one HTML file, images embedded)",
        files["report.html"],
        file_name="report.html",
        mime="text/html",
        key=DL_REPORT,
        on_click="ignore",
    )


@st.fragment
@guarded
def render(ctx: Ctx) -> None:
    """The Report tab (a fragment: its controls rerun it alone)."""
    served.sweep()  # other sessions' unpacked zips, once they are gone
    chosen = _data_ui(ctx)
    if st.button("Evaluate and write the report", key=RUN_REPORT, disabled=chosen is None):
        chosen = _confirmed(chosen)
        if chosen.refused is None:
            st.session_state[REPORT_SPEC] = chosen
    if chosen is not None and chosen.refused is not None:
        st.error(chosen.refused)
    chosen = st.session_state.get(REPORT_SPEC)
    if isinstance(chosen, Chosen) and chosen.zip_digest and chosen.zip_digest != served.current_zip():
        chosen = st.session_state[REPORT_SPEC] = None  # its zip was replaced by another: its folder is gone
    if not isinstance(chosen, Chosen):
        st.caption(
            "Predicts every image of the data set (in batches, never shuffled) and explains the most frequent "
            "confusions with Grad-CAM for the true and the predicted class."
        )
        return
    try:
        rep = _report(ctx, chosen)
    except ExplainError as e:
        st.error(served.in_visitor_words(e))
        return
    if rep is not None:
        _report_ui(rep, chosen)
