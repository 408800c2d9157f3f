"""The Concepts tab: TCAV tests concepts a person names, as folders of example images (``stripes/*.png``), against
classes (:func:`explain.concepts.tcav`); CRAFT finds a class's concepts by itself and ranks them
(:func:`explain.concepts.craft`), each shown by the crops that express it most, whose "Explain it" buttons open
their image in the Explain tab (as the Audit tab's do).

Concept folders and the random folder are folders under ``--data-root`` (:mod:`dashboard.served`'s rules:
picked or typed, resolved by :func:`explain.data.resolve_data_folder`), or uploaded zips unpacked safely
(:func:`explain.archives.unpack_zip`) into temporary folders of the session: a zip of one folder of images is one
concept named after the zip (``random.zip`` the random images), a zip of several folders one concept per folder
(its ``random`` folder the random images). The class images come from the Report tab's data (the same widgets).
Both run in the background (:mod:`dashboard.jobs`) and are kept per session.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard import cache, jobs, served
from dashboard.audit import OPEN_PENDING, _open
from dashboard.context import Ctx
from dashboard.report import (
    REPORT_DATA,
    REPORT_FOLDER,
    REPORT_FOLDER_PICK,
    REPORT_RESULTS,
    _confirmed,
    _data_ui,
)
from dashboard.served import Chosen
from dashboard.state import reset_on_change, session_store
from dashboard.widgets import digest, download, guarded, show_png
from explain import ExplainError, layer_table
from explain.errors import DataError

#: This session's results (session state), how many and how many bytes each store keeps.
TCAV_RESULTS, CRAFT_RESULTS, KEPT, KEPT_BYTES = "tcav_results", "craft_results", 6, 64 * 1024**2
#: What the last "Run TCAV" / "Run CRAFT" press asked for, and the runs that failed (session state).
TCAV_SPEC, CRAFT_SPEC, FAILED = "tcav_spec", "craft_spec", "_concepts_failed"
# The tab's widget keys.
CONCEPT_FOLDERS, CONCEPT_ZIPS, RANDOM_FOLDER = "concept_folders", "concept_zips", "concept_random"
TCAV_LAYERS, TCAV_CLASSES, TCAV_RUNS, TCAV_IMAGES, RUN_TCAV = (
    "tcav_layers", "tcav_classes", "tcav_runs", "tcav_images", "run_tcav"
)  # fmt: skip
CRAFT_CLASS, CRAFT_LAYER, CRAFT_K, CRAFT_CROPS, CRAFT_IMAGES, CRAFT_IMPORTANCE, RUN_CRAFT = (
    "craft_class", "craft_layer", "craft_k", "craft_crops", "craft_images", "craft_importance", "run_craft"
)  # fmt: skip
DL_TCAV_JSON, DL_TCAV_PNG, DL_CRAFT_PNG, DL_CRAFT_JSON = "dl_tcav_json", "dl_tcav_png", "dl_craft_png", "dl_craft_json"
#: The session's unpacked concept zips: {digest: ConceptZip} (session state).
_ZIPS = "_concept_zips"
AUTOMATIC = "automatic (the last spatial layer)"
KEPT_WIDGETS = (
    REPORT_DATA, REPORT_FOLDER, REPORT_FOLDER_PICK, CONCEPT_FOLDERS, RANDOM_FOLDER, TCAV_LAYERS, TCAV_CLASSES,
    TCAV_RUNS, TCAV_IMAGES, CRAFT_CLASS, CRAFT_LAYER, CRAFT_K, CRAFT_CROPS, CRAFT_IMAGES, CRAFT_IMPORTANCE,
)  # fmt: skip
ZIP_HOWTO = (
    "Zip one folder of example images per concept (zip -r stripes.zip stripes), or one folder holding a folder "
    "per concept and a 'random' folder (zip -r concepts.zip concepts)."
)


# --------------------------------------------------------------------------- where concept images come from
class ConceptZip(served.SessionZip):
    """An uploaded concept zip unpacked for this session: ``concepts`` ``{name: folder}`` and its random
    folder, if any; removed with the session (or when the upload is taken away)."""

    def __init__(self, key: str, name: str, tmp: str):
        super().__init__(key, name, tmp)
        self.concepts: dict[str, Path] = {}
        self.random: Path | None = None


def _holds_images(folder: Path) -> bool:
    from explain.images import is_image_file

    try:
        with os.scandir(folder) as it:
            return any(e.is_file() and is_image_file(e.name) for e in it)
    except OSError:
        return False


def _image_folders(top: Path) -> list[Path]:
    return sorted(p for p in top.iterdir() if p.is_dir() and not p.name.startswith(".") and _holds_images(p))


def _read_zip(held: ConceptZip, data: bytes) -> None:
    """Unpack an upload safely and find its concepts (see the module's docstring)."""
    from explain.archives import unpack_zip
    from explain.data.served import MAX_DATA_UNPACKED_BYTES, MAX_DATA_ZIP_BYTES

    name, stem = held.name, Path(held.name).stem
    if len(data) > MAX_DATA_ZIP_BYTES:
        raise DataError(
            f"{name} is {len(data) / 1024**2:.0f} MB; concept zips up to "
            f"{MAX_DATA_ZIP_BYTES // 1024**2} MB are accepted."
        )
    top = Path(held.tmp)
    unpack_zip(data, top, name, DataError, hint=ZIP_HOWTO, max_bytes=MAX_DATA_UNPACKED_BYTES)
    shutil.rmtree(top / "__MACOSX", ignore_errors=True)
    entries = [e for e in top.iterdir() if not e.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not _holds_images(top):
        top = entries[0]  # one wrapping folder
    if _holds_images(top):
        found = {stem: top}
    else:
        found = {p.name: p for p in _image_folders(top)}
    if not found:
        raise DataError(f"{name} holds no images. {ZIP_HOWTO}")
    random = next((found.pop(k) for k in list(found) if k.lower() == "random"), None)
    held.concepts, held.random = found, random


def _uploaded_zips() -> list[ConceptZip]:
    """The concept zips uploaded, each unpacked once per upload; those taken away are removed."""
    ups = st.file_uploader(
        "…or upload concept zips (one folder of images per concept, named after the zip; `random.zip` for the "
        "random images; or one zip of concept folders and a `random` folder)",
        type=["zip"],
        accept_multiple_files=True,
        key=CONCEPT_ZIPS,
    )
    held: dict = st.session_state.setdefault(_ZIPS, {})
    now = {digest(up.getvalue()): up for up in ups or []}
    for key in set(held) - set(now):
        held.pop(key).remove()
    for key, up in now.items():
        if key in held:
            continue
        z = held[key] = ConceptZip(key, up.name, tempfile.mkdtemp(prefix="explain-concept-zip-"))
        served._register(z.tmp)  # removed by served.sweep() once the session is gone
        try:
            _read_zip(z, up.getvalue())
        except DataError as e:
            z.remove()  # nothing is kept of a refused zip but its message
            z.error = _visitor_words(str(e))
        except BaseException:
            held.pop(key).remove()
            raise
    out = []
    for z in held.values():
        if z.error:
            st.error(z.error)
        else:
            out.append(z)
    return out


def _concept_folder_choices() -> list[str]:
    """Folders under the data root that hold images (concept and random folders: ``concepts/stripes``):
    the subfolders of the data folders :func:`explain.data.data_folders` lists."""
    root = served.data_root()
    if root is None:
        return []
    real = Path(root).resolve()
    found = set()
    for parent in served.listed_folders():
        for p in _image_folders(real / parent):
            if p.resolve().is_relative_to(real):
                found.add(p.relative_to(real).as_posix())
    return sorted(found)


def _resolved(text: str, fresh: bool = False) -> Path:
    """A folder chosen or typed: under the data root (refused outside it), or as typed on a dashboard for
    this machine alone. Kept per text for this session's reruns unless ``fresh``.

    Raises:
        DataError: refused (one line).
    """
    root = served.data_root()
    memo = st.session_state.setdefault("_concept_folders_resolved", {})
    key = (str(root), text)
    if fresh or key not in memo:
        from explain.data import resolve_data_folder

        try:
            memo[key] = resolve_data_folder(text, root) if root is not None else Path(text).expanduser().resolve()
        except DataError as e:
            memo[key] = str(e)
    if isinstance(memo[key], str):
        raise DataError(memo[key])
    return memo[key]


def _visitor_words(text: str) -> str:
    """A message without the server's temporary folders or data root."""
    for z in st.session_state.get(_ZIPS, {}).values():
        text = text.replace(z.tmp + os.sep, "")
    return served.in_visitor_words(ExplainError(text))


@dataclass(frozen=True)
class Concepts:
    """What TCAV is asked to test: ``{name: folder}`` and the random folder (as tuples and strings, to key
    results), the folders typed or picked (resolved again when TCAV starts), and what was refused."""

    concepts: tuple[tuple[str, str], ...]
    random: str | None
    typed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def confirmed(self) -> str | None:
        """Why a folder is refused now (resolved afresh as TCAV starts), or None."""
        for text in self.typed:
            try:
                _resolved(text, fresh=True)
            except DataError as e:
                return str(e)
        return None


def _folders_ui(errors: list) -> tuple[dict[str, str], list[str]]:
    """The concept folders picked or typed: ``({text: folder}, the folders listed under the data root)``."""
    if not served.folders_open():
        st.info(served.FOLDERS_OFF)
        return {}, []
    choices: list[str] = []
    try:
        choices = _concept_folder_choices()
    except ExplainError as e:
        errors.append(str(e))
    where = "under the data root" if served.data_root() is not None else "on this machine"
    picked = st.multiselect(
        f"Concept folders {where} (one folder of example images per concept, named after it; pick or type)",
        choices,
        key=CONCEPT_FOLDERS,
        accept_new_options=True,
        placeholder="concepts/stripes, concepts/dots…",
    )
    folders = {}
    for text in picked:
        try:
            folders[text] = str(_resolved(text))
        except DataError as e:
            errors.append(str(e))
    return folders, choices


def _concepts_ui() -> Concepts:
    """The concept folders (under the data root, or uploaded zips) and the random folder."""
    errors: list[str] = []
    folders, choices = _folders_ui(errors)
    zips = _uploaded_zips()
    named: dict[str, str] = {}
    sources = [(Path(folder).name, folder, text) for text, folder in folders.items()]
    sources += [(name, str(folder), z.name) for z in zips for name, folder in z.concepts.items()]
    for name, folder, where in sources:
        if name in named:
            errors.append(f"Two concepts are named {name!r} ({where} and another); rename one.")
        named[name] = folder
    zipped = {f"random images from {z.name}": str(z.random) for z in zips if z.random is not None}
    options = [*zipped, *choices]
    # a default, again whenever the choices change: a zip's random images, or a folder named "random"
    default = next((o for o in options if o in zipped or Path(o).name.lower() == "random"), None)
    reset_on_change(RANDOM_FOLDER, (tuple(zipped), tuple(choices)), default)
    random = st.selectbox(
        "Random images (a folder of varied images, at least (runs + 1) x 10: the baseline each concept is "
        "tested against)",
        options,
        index=None,
        key=RANDOM_FOLDER,
        accept_new_options=served.folders_open(),
        placeholder="Pick or type a folder of random images",
    )
    random_folder, typed = None, list(folders)
    if random in zipped:
        random_folder = zipped[random]
    elif random:
        typed.append(random)
        try:
            random_folder = str(_resolved(random))
        except DataError as e:
            errors.append(str(e))
    return Concepts(tuple(sorted(named.items())), random_folder, tuple(typed), tuple(errors))


# --------------------------------------------------------------------------- TCAV
@dataclass(frozen=True)
class TcavSpec:
    concepts: Concepts
    data: Chosen
    layers: tuple[str, ...]
    classes: tuple[str, ...]
    runs: int
    max_images: int


@dataclass(frozen=True)
class TcavView:
    """A TCAV result as the tab shows it: the result, its table rows, ``tcav.json`` and the bars' PNG."""

    result: object
    rows: list
    document: bytes
    figure: bytes


def _tcav_job(ctx: Ctx, spec: TcavSpec, source):
    model, card = ctx.model, ctx.card

    def run(progress):
        from dashboard.widgets import png
        from explain.concepts import tcav
        from explain.concepts.outputs import tcav_json
        from explain.render.figures import tcav_bars

        result = tcav(
            model,
            dict(spec.concepts.concepts),
            spec.concepts.random,
            layers=list(spec.layers),
            classes=list(spec.classes),
            data=source,
            runs=spec.runs,
            max_images=spec.max_images,
            preprocess=card.preprocessing,
            class_names=card.known_class_names,
            progress=lambda stage, f: progress(f, f"TCAV: {stage}…"),
        )
        rows = [
            {
                "class": cls.class_name,
                "layer": layer.layer,
                "concept": c.name,
                "TCAV score": f"{c.score_mean:.2f} ± {c.score_std:.2f}",
                "random baseline": f"{layer.random_scores.mean():.2f}",
                "p-value": f"{c.p_value:.3g}",
                "significant": f"yes: {c.direction}" if c.significant else "no",
                "CAV accuracy": f"{c.cav_accuracy:.0%}",
            }
            for cls in result.classes
            for layer in cls.layers
            for c in layer.concepts
        ]
        document = json.dumps(tcav_json(result), indent=2).encode()
        return TcavView(result, rows, document, png(tcav_bars(result)))

    return run


def _tcav_layers(ctx: Ctx) -> tuple[list[str], str | None]:
    """Layers TCAV can test at (a fixed output size), and the default: the last spatial one."""
    from explain.attribution import default_target_layer

    names = [
        r.name
        for r in layer_table(ctx.model)
        if r.type not in ("InputLayer", "Rescaling") and None not in tuple(r.output_shape)[1:]
    ]
    try:
        default = default_target_layer(ctx.model).name
    except ExplainError:
        default = names[-2] if len(names) > 1 else (names[0] if names else None)
    return names, default if default in names else None


def _number(col, label: str, key: str, default: int, low: int, high: int, help: str | None = None) -> int:
    """A whole-number input starting at ``default`` (set through the session, as the kept widgets are)."""
    st.session_state.setdefault(key, default)
    return int(col.number_input(label, min_value=low, max_value=high, step=1, key=key, help=help))


def _failed() -> dict:
    return st.session_state.setdefault(FAILED, {})


def _result(label: str, key: tuple, store_name: str, job) -> object | None:
    """A job's result once per key in this session (started in the background, its progress followed); a run
    that failed says why (one line) until its button is pressed again."""
    failed = _failed()
    if key in failed:
        st.error(failed[key])
        return None
    store = session_store(store_name, KEPT, KEPT_BYTES)
    if key not in store:
        jobs.start(label, key, store, job(), text="")
    try:
        jobs.follow(key)
    except ExplainError as e:
        failed[key] = _visitor_words(str(e))
        st.error(failed[key])
        return None
    return store.get(key)


def _tcav_section(ctx: Ctx, chosen: Chosen | None) -> None:
    st.subheader("TCAV: does a concept you name drive a class?")
    concepts = _concepts_ui()
    layers, default_layer = _tcav_layers(ctx)
    names = list(ctx.class_names)
    reset_on_change(TCAV_LAYERS, ctx.model_key, [default_layer] if default_layer else [])
    reset_on_change(TCAV_CLASSES, ctx.model_key, [names[ctx.top_class]])
    c1, c2, c3, c4 = st.columns([3, 3, 1, 1])
    picked_layers = c1.multiselect("Layers", layers, key=TCAV_LAYERS)
    classes = c2.multiselect("Classes", names, key=TCAV_CLASSES)
    runs = _number(c3, "Runs", TCAV_RUNS, 10, 10, 100, help="random sets per concept (at least 10: the t-test)")
    images = _number(c4, "Images per class", TCAV_IMAGES, 200, 10, 5000, help="at most (a seeded sample)")
    for error in concepts.errors:
        st.error(_visitor_words(error))
    ready = chosen is not None and concepts.concepts and concepts.random and picked_layers and classes
    if st.button("Run TCAV", key=RUN_TCAV, disabled=not ready):
        data, refused = _confirmed(chosen), concepts.confirmed()
        if refused is not None:
            st.error(_visitor_words(refused))
        elif data.refused is None and not concepts.errors:
            spec = TcavSpec(concepts, data, tuple(picked_layers), tuple(classes), int(runs), int(images))
            _failed().pop(_tcav_key(ctx, spec), None)
            st.session_state[TCAV_SPEC] = spec
    spec = st.session_state.get(TCAV_SPEC)
    if isinstance(spec, TcavSpec) and _tcav_key(ctx, spec) not in session_store(TCAV_RESULTS, KEPT, KEPT_BYTES):
        folders = [f for _, f in spec.concepts.concepts] + [spec.concepts.random]
        if not all(os.path.isdir(f) for f in folders):  # an uploaded zip taken away: its folder is gone
            spec = st.session_state[TCAV_SPEC] = None
    if not isinstance(spec, TcavSpec):
        st.caption(
            "Concept activation vectors (Kim et al. 2018): each concept's examples are told apart from random images "
            "at a layer, and the class's images tested for how often their score rises along that direction, "
            f"against random-vs-random baselines (a t-test over the runs, Bonferroni-corrected). {_need_data(chosen)}"
        )
        return

    def job():
        source = served.shown_as(cache.data_source(spec.data.spec), spec.data)
        return _tcav_job(ctx, spec, source)

    view = _result("TCAV (Concepts tab)", _tcav_key(ctx, spec), TCAV_RESULTS, job)
    if view is not None:
        _tcav_ui(view, spec)


def _need_data(chosen: Chosen | None) -> str:
    return "" if chosen is not None else "The class images come from the data chosen above."


def _tcav_key(ctx: Ctx, spec: TcavSpec) -> tuple:
    return (
        "tcav",
        ctx.model_key,
        spec.concepts.concepts,
        spec.concepts.random,
        spec.data.spec,
        spec.layers,
        spec.classes,
        spec.runs,
        spec.max_images,
    )


def _tcav_ui(view: TcavView, spec: TcavSpec) -> None:
    r = view.result
    found = [
        f"**{c.name}** {c.direction} **{cls.class_name}** at {layer.layer} (p = {c.p_value:.2g})"
        for cls in r.classes
        for layer in cls.layers
        for c in layer.concepts
        if c.significant
    ]
    st.markdown("Significant: " + ("; ".join(found) if found else "no concept, at any layer tested."))
    st.dataframe(view.rows, hide_index=True)
    scored = ", ".join(f"{c.class_name} {c.images} images" for c in r.classes)
    st.caption(
        f"On {spec.data.label}: {scored}; {r.runs} runs against random sets of {r.random_set_size} images; "
        f"significant: p < {r.alpha:g} / {len(spec.concepts.concepts)} concepts. "
        "A score above the random baseline: the concept raises the class's score (drives); below: lowers it."
    )
    show_png(view.figure, "tcav.png", DL_TCAV_PNG)
    st.download_button(
        "Download tcav.json",
        view.document,
        file_name="tcav.json",
        mime="application/json",
        key=DL_TCAV_JSON,
        on_click="ignore",
    )


# --------------------------------------------------------------------------- CRAFT
@dataclass(frozen=True)
class CraftSpec:
    data: Chosen
    class_name: str
    layer: str | None
    k: int
    crops_per_image: int
    max_images: int
    importance: str


@dataclass(frozen=True)
class CraftView:
    """A CRAFT result as the tab shows it: the result, each concept's crops as PNGs ``{(rank, j): bytes}``,
    and each crop's image's index in the data ``{image_id: index}``."""

    result: object
    crops: dict
    index: dict


def _craft_job(ctx: Ctx, spec: CraftSpec, source):
    model, card = ctx.model, ctx.card
    stages = {"crops": "cropping the class's images", "importance": "ranking the concepts", "done": "done"}

    def run(progress):
        from explain.concepts import craft
        from explain.render.pictures import encode_png, enlarge

        result = craft(
            model,
            source,
            spec.class_name,
            spec.layer,
            concepts=spec.k,
            crops_per_image=spec.crops_per_image,
            max_images=spec.max_images,
            importance=spec.importance,
            top=6,
            preprocess=card.preprocessing,
            class_names=card.known_class_names,
            progress=lambda stage, f: progress(f, f"CRAFT: {stages.get(stage, stage)}…"),
        )
        crops = {
            (r, j): encode_png(enlarge(crop, min_size=96))
            for r, c in enumerate(result.concepts)
            for j, crop in enumerate(c.crops)
        }
        wanted = {box[0] for c in result.concepts for box in c.top_crops}
        index = {}
        for i in range(len(source)):
            image_id = source.image_id(i)
            if image_id in wanted:
                index[image_id] = i
        return CraftView(result, crops, index)

    return run


def _most_wrong(ctx: Ctx, chosen: Chosen | None, names: list[str]) -> str:
    """The class the model gets most wrong on the data, from the Report tab's result on it when there is one
    (the map's points); else the first class."""
    rep = session_store(REPORT_RESULTS, 1).get((ctx.model_key, chosen.spec)) if chosen is not None else None
    points = getattr(rep, "map", None)
    if not points:
        return names[0]
    wrong: dict[str, list[int]] = {}
    for true, mark in zip(points["true"], points["mark"], strict=True):
        wrong.setdefault(true, []).append(mark != "correct")
    rates = {name: sum(w) / len(w) for name, w in wrong.items() if name in names}
    return max(rates, key=rates.get) if rates else names[0]


def _craft_section(ctx: Ctx, chosen: Chosen | None) -> None:
    st.subheader("CRAFT: which concepts does the model use for a class?")
    names = list(ctx.class_names)
    model = ctx.model
    spatial = [
        r.name
        for r in layer_table(model)
        if r.layout in ("channels_last", "channels_first") and r.type not in ("InputLayer", "Rescaling")
    ]
    reset_on_change(CRAFT_CLASS, (ctx.model_key, chosen.spec if chosen else None), _most_wrong(ctx, chosen, names))
    c1, c2, c3, c4, c5, c6 = st.columns([3, 3, 1, 1, 1, 2])
    class_name = c1.selectbox(
        "Class",
        names,
        key=CRAFT_CLASS,
        help="default: the class the model gets most wrong on the data, once the Report tab has evaluated it",
    )
    layer = c2.selectbox("Layer", [AUTOMATIC, *spatial], key=CRAFT_LAYER, help="a spatial layer after a ReLU")
    k = _number(c3, "Concepts to find", CRAFT_K, 6, 1, 20)
    crops = _number(c4, "Crops per image", CRAFT_CROPS, 8, 1, 32)
    images = _number(c5, "Images at most", CRAFT_IMAGES, 200, 1, 5000, help="of the class (a seeded sample)")
    importance = c6.selectbox(
        "Importance",
        ("sobol", "gradient"),
        key=CRAFT_IMPORTANCE,
        format_func=lambda m: {"sobol": "total Sobol indices", "gradient": "gradient x concept (faster)"}[m],
    )
    if st.button("Run CRAFT", key=RUN_CRAFT, disabled=chosen is None):
        data = _confirmed(chosen)
        if data.refused is None:
            spec = CraftSpec(
                data, class_name, None if layer == AUTOMATIC else layer, int(k), int(crops), int(images), importance
            )
            _failed().pop(_craft_key(ctx, spec), None)
            st.session_state[CRAFT_SPEC] = spec
    spec = st.session_state.get(CRAFT_SPEC)
    if not isinstance(spec, CraftSpec):
        st.caption(
            "Concept Recursive Activation FacTorization (Fel et al. 2023): random crops of the class's images are "
            "factorised at a layer into concepts, each ranked by how much the class's score depends on it. "
            + _need_data(chosen)
        )
        return

    def job():
        source = served.shown_as(cache.data_source(spec.data.spec), spec.data)
        return _craft_job(ctx, spec, source)

    view = _result("CRAFT (Concepts tab)", _craft_key(ctx, spec), CRAFT_RESULTS, job)
    if view is not None:
        _craft_ui(view, spec)


def _craft_key(ctx: Ctx, spec: CraftSpec) -> tuple:
    return (
        "craft",
        ctx.model_key,
        spec.data.spec,
        spec.class_name,
        spec.layer,
        spec.k,
        spec.crops_per_image,
        spec.max_images,
        spec.importance,
    )


def _craft_ui(view: CraftView, spec: CraftSpec) -> None:
    r = view.result
    unit = "total Sobol index" if r.importance_method == "sobol" else "gradient x concept"
    capped = f" (of {r.crops_requested:,})" if r.crops_requested > r.crops else ""
    st.markdown(
        f"**{r.class_name}** at **{r.layer}**: {len(r.concepts)} concepts from {r.crops:,} crops{capped} of "
        f"{r.images} images of {spec.data.label}, most important first ({unit}, over {r.importance_images} "
        "images). Each concept's crops express it most; open one's image in the Explain tab."
    )
    for rank, c in enumerate(r.concepts):
        cols = st.columns([1.2] + [1] * max(len(c.crops), 1), gap="small")
        cols[0].markdown(f"**#{rank + 1}** · concept {c.id}  \nimportance **{c.importance:.3g}**")
        for j, (col, box) in enumerate(zip(cols[1:], c.top_crops, strict=False)):
            image_id = box[0]
            with col:
                st.image(view.crops[(rank, j)], caption=image_id)
                if image_id in view.index:
                    st.button(
                        "Explain it",
                        key=f"craft_open_{rank}_{j}",
                        help=f"open {image_id} in the Explain tab",
                        on_click=_open,
                        args=(spec.data.spec, view.index[image_id], f"{image_id} (from CRAFT)"),
                    )

    def gallery():
        from explain.render.figures import craft_gallery

        return craft_gallery(r)

    c1, c2 = st.columns(2)
    with c1:
        download(gallery, "craft.png", DL_CRAFT_PNG, "Download the gallery (craft.png)")
    c2.download_button(
        "Download craft.json",
        json.dumps(r.as_dict(), indent=2).encode(),
        file_name="craft.json",
        mime="application/json",
        key=DL_CRAFT_JSON,
        on_click="ignore",
    )


# --------------------------------------------------------------------------- the tab
@st.fragment
@guarded
def render(ctx: Ctx) -> None:
    """The Concepts tab (a fragment: its controls rerun it alone, but "Explain it" reruns the app)."""
    if st.session_state.pop(OPEN_PENDING, False):
        st.rerun(scope="app")
    served.sweep()  # other sessions' unpacked zips, once they are gone
    st.caption("The class images for both come from this data (the Report tab's):")
    chosen = _data_ui(ctx)
    if chosen is not None and chosen.refused is not None:
        st.error(chosen.refused)
        chosen = None
    _tcav_section(ctx, chosen)
    st.divider()
    _craft_section(ctx, chosen)
