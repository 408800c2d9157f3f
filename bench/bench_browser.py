"""Benchmark: the dashboard in a real browser, from the user's action to the new pixels on screen.

    python bench/bench_browser.py [--repeats 5] [--quick] [--screenshots DIR] [--models demo,mobilenetv2]
                                  [--app PATH] [--sessions 4] [--seconds 60] [--soak 50]

Starts ``streamlit run app.py`` on a free port and drives Debian's Chromium (headless) with
Playwright, on the demo model (``models/fashion_mnist_cnn.keras``) and on a MobileNetV2 224 with
random weights nested in a Sequential (``--model``, written to a temporary folder; no download).

Timing is taken in the page: the clock starts at the user's input event (``pointerdown``,
``keydown``, ``input`` or ``change``, caught before the page handles it) and stops at the animation
frame after the new picture is complete on screen (a new ``<img>`` source loaded and visible, a new
heatmap over the image, or the heatmaps' opacity set to the new value); no fixed sleep is ever
inside a measurement. Between steps
the page settles (no script running, nothing stale). Each step prints the median and max in
milliseconds over the repeats, the goal of issue 13 and the ratio median / goal.

"Streamlit floor" times ``bench/floor_app.py`` (a selectbox and a cached picture in a fragment) in
the same run: no step answered by a Streamlit rerun can be faster on this machine.

``--sessions 4`` then runs four browser sessions at once on the demo model, three stepping
through layers and one running LIME, and reports their layer switches, a fresh session's first
render meanwhile, and the server's memory (RSS); ``--soak 50`` opens 50 sessions one after
another and prints the RSS every 10. ``--app PATH`` times another checkout's ``app.py`` (the code
before a change), with the same steps.

Raises ``SystemExit`` with a message when Chromium or Playwright is missing, or when streamlit
does not start within 90 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAYER = "Layer (index · name (type) output shape)"
#: Goals on the 2-core machine, in milliseconds (issue 13): demo model, MobileNetV2.
GOALS = {
    "layer, revisit": (50, 80),
    "layer, first visit (next)": (150, 300),
    "layer, first visit (jump)": (150, 300),
    "new image -> top-5 + grid": (400, 800),
    "Explain tab -> first Grad-CAM": (300, 600),
    "opacity": (50, 50),
}
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
BROWSER_ARGS += ["--no-first-run", "--disable-sync"]

#: Installed in every page: remembers when the next user input after ``__xp.arm()`` happened.
INIT = """
window.__xp = {armed: false, act: null, arm() { this.armed = true; this.act = null; }};
for (const t of ["pointerdown", "keydown", "input", "change"]) {
  document.addEventListener(t, () => {
    if (window.__xp.armed) { window.__xp.act = performance.now(); window.__xp.armed = false; }
  }, true);
}
"""
#: The state of the pictures: sources of visible loaded images outside the tabs (``main``) and in
#: the open tab (``tab``, with the caption of a viewer's tile: two layers can have the same
#: picture, e.g. a BatchNormalization after a convolution, scaled per map), and the opacity of the
#: open tab's heatmaps.
_STATE = """() => {
  const vis = (i) => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0;
  const all = [...document.querySelectorAll('[data-testid="stMain"] img')].filter(vis);
  const tab = all.filter((i) => i.closest('[role="tabpanel"]'));
  return {main: all.filter((i) => !i.closest('[role="tabpanel"]')).map((i) => i.src),
          tab: tab.map((i) => i.src + "|" + (i.closest(".xp-tile")?.querySelector("figcaption")?.textContent ?? "")),
          over: tab.filter((i) => i.classList.contains("xp-over")).map((i) => Number(i.style.opacity)),
          heat: tab.filter((i) => i.classList.contains("xp-over")).map((i) => i.src)};
}"""
#: Resolves, at the frame after every condition holds, to ms since the input (or since navigation).
_DONE = (
    """([conds, since]) => new Promise((resolve) => {
  const state = """
    + _STATE
    + """;
  const holds = (c, s) => {
    if (c.kind === "new") { const src = s[c.group][c.index]; return !!src && src !== c.old; }
    if (c.kind === "any") return s[c.group].some((src) => !c.old.includes(src));
    if (c.kind === "opacity") return s.over.length > 0 && s.over.every((o) => Math.abs(o - c.value) < 1e-6);
    if (c.kind === "heatmap") return s.heat.some((src) => !c.old.includes(src));
    return false;
  };
  const deadline = performance.now() + 60000;
  const check = () => {
    const s = state();
    if (performance.now() > deadline) resolve(-2);
    else if (conds.every((c) => holds(c, s))) {
      requestAnimationFrame(() => {
        const start = since === "navigation" ? 0 : window.__xp.act;
        resolve(start === null ? -1 : performance.now() - start);
      });
    } else requestAnimationFrame(check);
  };
  check();
})"""
)


# --------------------------------------------------------------------------- server and browser
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, app: Path | None = None, args: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """``streamlit run APP -- ARGS`` headless on ``port`` (default app: this checkout's ``app.py``);
    returns ``(process, url)`` once healthy.

    Raises SystemExit (with streamlit's stderr) if it is not healthy within 90 s."""
    app = app or ROOT / "app.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    cmd += ["--", *args] if args else []
    proc = subprocess.Popen(cmd, cwd=app.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("streamlit did not start within 90 s: " + proc.stderr.read().decode()[-2000:])


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate the streamlit process started by :func:`start_server` (kill after 10 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def launch(p):
    """Debian's Chromium, headless, through Playwright ``p`` (from ``sync_playwright()``)."""
    return p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)


# --------------------------------------------------------------------------- page helpers
_SETTLED = """() => !document.querySelector('[data-testid="stStatusWidget"]')
                   && document.querySelectorAll('[data-stale="true"]').length === 0"""


def settle(page) -> None:
    """Wait (untimed) until no script runs and nothing on the page is stale."""
    page.wait_for_timeout(150)
    page.wait_for_function(_SETTLED, timeout=180_000)
    page.wait_for_timeout(150)


def state(page) -> dict:
    """The pictures on screen now, as in ``_STATE``."""
    return page.evaluate(_STATE)


def timed(page, action, conds) -> float:
    """Milliseconds from the input event of ``action(page)`` to the frame where every condition of
    ``conds(state before)`` holds: ``{"kind": "new", "group", "index", "old"}`` (that image has a
    new source), ``{"kind": "any", "group", "old"}`` (an image not shown before) or
    ``{"kind": "opacity", "value"}``. The page settles afterwards."""
    before = state(page)
    page.evaluate("window.__xp.arm()")
    action(page)
    wanted = conds(before)
    ms = page.evaluate(_DONE, [wanted, "input"])
    log(f"  {ms:.0f} ms")
    if ms == -2:
        raise RuntimeError(f"nothing new on screen after 60 s: waited for {wanted}, saw {state(page)}")
    settle(page)
    if ms < 0:
        raise RuntimeError("the action caused no input event the page could see")
    return ms


def log(text: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def new_img(group: str, index: int):
    """A condition factory: image ``index`` of ``group`` changed."""

    def conds(before):
        old = before[group]
        return [{"kind": "new", "group": group, "index": index, "old": old[index] if index < len(old) else None}]

    return conds


def open_box(page, label: str) -> list[str]:
    """Open Streamlit's selectbox labelled ``label``; returns its options' texts (untimed)."""
    box = page.get_by_label(label, exact=True)
    box.click()
    if box.get_attribute("aria-expanded") != "true":  # a first click can only focus it
        page.wait_for_timeout(100)
        if box.get_attribute("aria-expanded") != "true":
            box.click()
    options = page.locator('[role="listbox"] [role="option"]')
    options.first.wait_for()
    return options.all_inner_texts()


def pick(option: str):
    """An action choosing ``option`` in the already open Streamlit selectbox."""
    return lambda page: page.get_by_role("option", name=option, exact=True).click()


def choose(page, label: str, option: str) -> None:
    """Choose ``option`` in Streamlit's selectbox labelled ``label`` (untimed) and settle."""
    open_box(page, label)
    pick(option)(page)
    settle(page)


def current(page, label: str) -> str:
    """The current value of the control labelled ``label`` (a selectbox or a native select), as its
    option's text shows it (without leading spaces: nested layers are indented)."""
    return page.get_by_label(label, exact=True).input_value().strip()


def click_tab(name: str):
    """An action clicking the tab ``name``."""
    return lambda page: page.get_by_role("tab", name=name, exact=True).click()


def goto_first_render(page, url: str) -> float:
    """Navigate to the dashboard; milliseconds from navigation start to the first picture in a tab."""
    page.goto(url, timeout=180_000)
    ms = page.evaluate(_DONE, [[{"kind": "any", "group": "tab", "old": []}], "navigation"])
    settle(page)
    return ms


# --------------------------------------------------------------------------- steps
def new_heatmap(before: dict) -> list[dict]:
    """Conditions: a heatmap not shown before is on screen (laid over its image by this checkout's
    viewer; in a figure, any picture not shown before, for the dashboard before it)."""
    if before.get("native"):
        return [{"kind": "heatmap", "old": before["heat"]}]
    return [{"kind": "any", "group": "tab", "old": before["tab"]}]


class Session:
    """One dashboard page and what it has shown. Works on this checkout's dashboard (the layer
    picker is a native ``<select>`` answered in the browser) and on the one before it (a Streamlit
    selectbox), so both are timed the same way."""

    def __init__(self, page, images_prefix: str):
        self.page = page
        self.native = page.locator(".xp-control select").count() > 0
        self.seen: set[tuple[str, str]] = set()
        self.images = [n for n in open_box(page, "Image") if n.startswith(images_prefix) and n != "Upload…"]
        page.keyboard.press("Escape")
        settle(page)
        self.layers = self.layer_options()
        self.image = current(page, "Image")
        self.seen.add((self.image, current(page, LAYER)))

    def layer_options(self) -> list[str]:
        if self.native:
            return [
                o.strip() for o in self.page.locator(".xp-control select").first.locator("option").all_inner_texts()
            ]
        options = open_box(self.page, LAYER)
        self.page.keyboard.press("Escape")
        settle(self.page)
        return options

    def choose_layer(self, layer: str):
        """An action choosing ``layer`` in the layer picker (untimed opening of Streamlit's box)."""
        if self.native:
            return lambda page: page.get_by_label(LAYER, exact=True).select_option(layer)
        open_box(self.page, LAYER)
        return pick(layer)

    def switch_image(self, timed_run: bool = False) -> float:
        """Show the next sample image; timed (to the top-5 chart and the tab's picture) if ``timed_run``."""
        i = self.images.index(self.image) if self.image in self.images else -1
        name = self.images[(i + 1) % len(self.images)]
        open_box(self.page, "Image")
        if timed_run:
            # the image itself and the tab's picture: the top-5 chart comes between them in the page's
            # updates (and is the same picture when two images get the same top 5)
            took = timed(self.page, pick(name), lambda b: new_img("main", 0)(b) + new_img("tab", 0)(b))
        else:
            took = 0.0
            pick(name)(self.page)
            settle(self.page)
        self.image = name
        self.seen.add((name, current(self.page, LAYER)))
        return took

    def switch_layer(self, how: str) -> float:
        """Choose a layer: ``"next"`` (the one after, never shown), ``"jump"`` (one at least 3 away,
        never shown) or ``"revisit"`` (one shown before for this image); timed."""
        now = current(self.page, LAYER)
        i = self.layers.index(now)
        if how == "next":
            todo = [lay for lay in self.layers[i + 1 : i + 2] if (self.image, lay) not in self.seen]
        elif how == "jump":
            far = self.layers[i + 3 :] + self.layers[: max(0, i - 2)]
            todo = [lay for lay in far if (self.image, lay) not in self.seen]
        else:
            todo = [lay for lay in self.layers if (self.image, lay) in self.seen and lay != now]
        if not todo:
            if how != "revisit" and i > 0:  # start again from the top
                self.choose_layer(self.layers[0])(self.page)
                settle(self.page)
            self.switch_image()
            if how == "revisit":
                self.choose_layer(self.layers[1 if now == self.layers[0] else 0])(self.page)
                settle(self.page)
                self.seen.add((self.image, current(self.page, LAYER)))
            return self.switch_layer(how)
        took = timed(self.page, self.choose_layer(todo[0]), new_img("tab", 0))
        self.seen.add((self.image, todo[0]))
        return took

    def pick_class(self) -> float:
        """Explain another class than the one explained now (each class once per image); timed."""
        label = "Class to explain"
        now = current(self.page, label)
        options = open_box(self.page, label)
        todo = [o for o in options if o != now and (self.image, o) not in self.seen]
        if not todo:
            self.page.keyboard.press("Escape")
            settle(self.page)
            self.switch_image()
            return self.pick_class()
        took = timed(self.page, pick(todo[0]), lambda b: new_heatmap({**b, "native": self.native}))
        self.seen.add((self.image, todo[0]))
        return took

    def opacity(self) -> float:
        """Move the opacity one step left with the keyboard; timed to the heatmaps at the new opacity
        (a new picture, where the server blends them)."""
        if self.native:
            box = self.page.locator(".xp-control input[type=range]").first
            value = round(float(box.input_value()) - 0.05, 2)
            if value < 0:
                value = 0.95
                box.fill("1")
                settle(self.page)
            return timed(self.page, lambda p: box.press("ArrowLeft"), lambda b: [{"kind": "opacity", "value": value}])
        thumb = self.page.locator('[data-testid="stSlider"]').filter(has_text="Opacity").locator("input[type=range]")
        return timed(
            self.page, lambda p: thumb.press("ArrowLeft"), lambda b: [{"kind": "any", "group": "tab", "old": b["tab"]}]
        )


def layer_steps(s: Session, repeats: int) -> dict[str, list[float]]:
    """The sidebar image and the Layers tab's steps, ``repeats`` times each."""
    log("new image")
    out = {"new image -> top-5 + grid": [s.switch_image(timed_run=True) for _ in range(repeats)]}
    for how in ("next", "jump"):
        log(f"layer, {how}")
        out[f"layer, first visit ({how})"] = [s.switch_layer(how) for _ in range(repeats)]
    log("layer, revisit")
    out["layer, revisit"] = [s.switch_layer("revisit") for _ in range(repeats)]
    conv = next(lay for lay in s.layers if "Conv" in lay and "(None, 1, 1," not in lay)
    s.choose_layer(conv)(s.page)
    settle(s.page)
    s.seen.add((s.image, conv))
    slider = s.page.locator('[data-testid="stSlider"]').filter(has_text="Feature maps shown")
    thumb = slider.locator("input[type=range]")
    out["feature maps shown slider"] = [
        timed(s.page, lambda p: thumb.press("ArrowLeft"), new_img("tab", 0)) for _ in range(repeats)
    ]
    return out


def explain_steps(s: Session, repeats: int) -> dict[str, list[float]]:
    """The Explain tab's steps, ``repeats`` times each."""
    log("Explain tab")
    opened = []
    for _ in range(repeats):
        click_tab("Layers")(s.page)
        settle(s.page)
        s.switch_image()
        opened.append(timed(s.page, click_tab("Explain"), lambda b: new_heatmap({**b, "native": s.native})))
    out = {"Explain tab -> first Grad-CAM": opened}
    log("class to explain")
    out["class to explain"] = [s.pick_class() for _ in range(repeats)]
    log("opacity")
    out["opacity"] = [s.opacity() for _ in range(repeats)]
    return out


# --------------------------------------------------------------------------- runs
def table(results: dict[str, list[float]], which: int) -> str:
    """The printed table: step, n, median ms, max ms, goal ms, median / goal (goal column ``which``)."""
    lines = [f"{'step':36s} {'n':>3s} {'median ms':>10s} {'max ms':>9s} {'goal ms':>8s} {'ratio':>6s}"]
    for step, ms in results.items():
        med, top = statistics.median(ms), max(ms)
        goal = GOALS[step][which] if step in GOALS else None
        ratio = f"{med / goal:6.2f}" if goal else f"{'-':>6s}"
        lines.append(f"{step:36s} {len(ms):3d} {med:10.0f} {top:9.0f} {goal or '-':>8} {ratio}")
    return "\n".join(lines)


def bench_floor(p, repeats: int) -> list[float]:
    """Milliseconds per pick in ``bench/floor_app.py``: Streamlit's own round trip on this machine."""
    log("Streamlit floor")
    proc, url = start_server(free_port(), ROOT / "bench" / "floor_app.py")
    try:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.add_init_script(INIT)
        goto_first_render(page, url)
        options = open_box(page, "Picture")
        page.keyboard.press("Escape")
        settle(page)
        out = []
        for option in options[1 : 1 + 2 * repeats]:
            open_box(page, "Picture")
            out.append(timed(page, pick(option), new_img("tab", 0)))
        browser.close()
        return out
    finally:
        stop_server(proc)


def bench_dashboard(p, url: str, repeats: int, prefix: str, shots: Path | None, tag: str) -> dict[str, list[float]]:
    """Every step on one dashboard server; screenshots after each group to ``shots`` if given."""
    browser = launch(p)
    results: dict[str, list[float]] = {}
    log(f"{tag}: first renders")
    for i in range(repeats + 1):
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        page = context.new_page()
        page.add_init_script(INIT)
        step = "first render, server cold" if i == 0 else "first render, new session"
        results.setdefault(step, []).append(goto_first_render(page, url))
        context.close()
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.add_init_script(INIT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    goto_first_render(page, url)
    s = Session(page, prefix)
    results |= layer_steps(s, repeats)
    if shots:
        page.screenshot(path=shots / f"bench_{tag}_layers.png", full_page=True)
    results |= explain_steps(s, repeats)
    if shots:
        page.screenshot(path=shots / f"bench_{tag}_explain.png", full_page=True)
    body = page.inner_text("body")
    browser.close()
    if "Something went wrong" in body or "unexpected error" in body or errors:
        print(f"warning: the dashboard showed an error during the {tag} run: {errors[:3]}", file=sys.stderr)
    return results


def mobilenet_model(folder: Path) -> Path:
    """A MobileNetV2 224 (random weights, 1000 classes) nested in a Sequential, saved as .keras."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None)
    model = keras.Sequential([keras.Input((224, 224, 3)), base], name="nested_mobilenetv2")
    path = folder / "mobilenetv2_random.keras"
    model.save(path)
    return path


def run_model(p, app: Path | None, args: list[str], repeats: int, prefix: str, shots, tag: str) -> dict:
    proc, url = start_server(free_port(), app, args)
    try:
        return bench_dashboard(p, url, repeats, prefix, shots, tag)
    finally:
        stop_server(proc)


# --------------------------------------------------------------------------- under load
async def _settle_async(page) -> None:
    await page.wait_for_timeout(150)
    await page.wait_for_function(_SETTLED, timeout=180_000)
    await page.wait_for_timeout(150)


async def _open_async(browser, url: str):
    """A new context and page on the dashboard; returns ``(context, page, ms to the first picture)``."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1100})
    page = await context.new_page()
    await page.add_init_script(INIT)
    await page.goto(url, timeout=180_000)
    ms = await page.evaluate(_DONE, [[{"kind": "any", "group": "tab", "old": []}], "navigation"])
    await _settle_async(page)
    return context, page, ms


async def _layer_options(page) -> tuple[bool, list[str]]:
    """Whether the layer picker is a native select (this checkout) or Streamlit's, and its options."""
    native = await page.locator(".xp-control select").count() > 0
    if native:
        texts = await page.get_by_label(LAYER, exact=True).locator("option").all_inner_texts()
        return True, [t.strip() for t in texts]
    box = page.get_by_label(LAYER, exact=True)
    await box.click()
    options = page.locator('[role="listbox"] [role="option"]')
    await options.first.wait_for()
    texts = await options.all_inner_texts()
    await page.keyboard.press("Escape")
    await _settle_async(page)
    return False, texts


async def _pick_layer(page, native: bool, layer: str) -> None:
    """Choose ``layer`` as a user does: the native select, or Streamlit's box and its option."""
    if native:
        await page.get_by_label(LAYER, exact=True).select_option(layer)
        return
    box = page.get_by_label(LAYER, exact=True)
    await box.click()
    if await box.get_attribute("aria-expanded") != "true":
        await box.click()
    await page.get_by_role("option", name=layer, exact=True).click()


async def _browse(browser, url: str, until: float, seed: int, switches: list[float]) -> None:
    """One user stepping through layers (any order) until ``until``; each switch timed."""
    import random

    rng = random.Random(seed)
    context, page, _ = await _open_async(browser, url)
    native, options = await _layer_options(page)
    while time.perf_counter() < until:
        now = (await page.get_by_label(LAYER, exact=True).input_value()).strip()
        target = rng.choice([o for o in options if o != now])
        before = await page.evaluate(_STATE)
        await page.evaluate("window.__xp.arm()")
        await _pick_layer(page, native, target)
        old = before["tab"][0] if before["tab"] else None
        switches.append(
            await page.evaluate(_DONE, [[{"kind": "new", "group": "tab", "index": 0, "old": old}], "input"])
        )
        await _settle_async(page)
    await context.close()


async def _lime_user(browser, url: str, until: float, runs: list[float]) -> None:
    """One user running LIME on image after image until ``until``."""
    context, page, _ = await _open_async(browser, url)
    await page.get_by_role("tab", name="Explain", exact=True).click()
    await _settle_async(page)
    while time.perf_counter() < until:
        start = time.perf_counter()
        await page.get_by_role("button", name="Run LIME (1000 samples)").click()
        await page.get_by_text("LIME superpixels").first.wait_for(timeout=180_000)
        await _settle_async(page)
        runs.append(time.perf_counter() - start)
        box = page.get_by_label("Image", exact=True)
        await box.click()
        options = page.locator('[role="listbox"] [role="option"]')
        await options.first.wait_for()
        await options.nth(len(runs) % 5).click()
        await _settle_async(page)
    await context.close()


async def _fresh_sessions(browser, url: str, until: float, every: float, first: dict[str, list[float]]) -> None:
    """Every ``every`` seconds, a new session's first render: alternately in a new browser context
    (nothing cached: Streamlit's 138 scripts fetched and compiled again) and in a new tab of a
    context that has loaded the dashboard before (as a user opening another tab)."""
    known = await browser.new_context(viewport={"width": 1400, "height": 1100})
    page = await known.new_page()
    await page.goto(url, timeout=180_000)
    await _settle_async(page)
    await page.close()
    fresh = True
    while time.perf_counter() + every < until:
        await asyncio.sleep(every)
        if fresh:
            context, _, ms = await _open_async(browser, url)
            await context.close()
        else:
            page = await known.new_page()
            await page.add_init_script(INIT)
            await page.goto(url, timeout=180_000)
            ms = await page.evaluate(_DONE, [[{"kind": "any", "group": "tab", "old": []}], "navigation"])
            await page.close()
        first["new browser context" if fresh else "new tab"].append(ms)
        fresh = not fresh
    await known.close()


async def _sample_rss(pid: int, until: float, samples: list[float]) -> None:
    while time.perf_counter() < until:
        samples.append(rss_mib(pid))
        await asyncio.sleep(1.0)


async def _load(url: str, pid: int, sessions: int, seconds: float) -> dict:
    from playwright.async_api import async_playwright

    switches: list[float] = []
    lime: list[float] = []
    first: dict[str, list[float]] = {"new browser context": [], "new tab": []}
    rss: list[float] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        context, _, _ = await _open_async(browser, url)  # the server warm: model loaded, functions traced
        await context.close()
        until = time.perf_counter() + seconds
        jobs = [_browse(browser, url, until, seed, switches) for seed in range(sessions - 1)]
        jobs += [_lime_user(browser, url, until, lime), _fresh_sessions(browser, url, until, 8.0, first)]
        await asyncio.gather(*jobs, _sample_rss(pid, until, rss))
        await browser.close()
    return {"switches": switches, "lime": lime, "first": first, "rss": rss}


async def _soak(url: str, pid: int, count: int) -> list[tuple[int, float]]:
    """Open ``count`` sessions one after another (each: 3 layer switches, the Explain tab); the RSS
    after every 10."""
    from playwright.async_api import async_playwright

    out = [(0, rss_mib(pid))]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        for n in range(1, count + 1):
            context, page, _ = await _open_async(browser, url)
            native, options = await _layer_options(page)
            for k in (3, 5, n):
                await _pick_layer(page, native, options[k % len(options)])
                await _settle_async(page)
            await page.get_by_role("tab", name="Explain", exact=True).click()
            await _settle_async(page)
            box = page.get_by_label("Image", exact=True)
            await box.click()
            opts = page.locator('[role="listbox"] [role="option"]')
            await opts.first.wait_for()
            await opts.nth(n % 8).click()
            await _settle_async(page)
            await context.close()
            if n % 10 == 0:
                out.append((n, rss_mib(pid)))
        await browser.close()
    return out


def load_report(url: str, pid: int, sessions: int, seconds: float, single_switch: float) -> str:
    """Run :func:`_load` (on a warm server) and describe it against issue 13's goals."""
    r = asyncio.run(_load(url, pid, sessions, seconds))
    sw = r["switches"] or [float("nan")]
    med = statistics.median(sw)
    lines = [
        f"{sessions} sessions at once for {seconds:.0f} s ({sessions - 1} stepping through layers, 1 running LIME):",
        f"  layer switches: n={len(sw)}, median {med:.0f} ms ({med / single_switch:.1f}x the single session's "
        f"{single_switch:.0f} ms; goal <= 4x), max {max(sw):.0f} ms (goal <= 2000), "
        f"over 2 s: {sum(s > 2000 for s in sw)}",
        f"  LIME runs: {len(r['lime'])}, {', '.join(f'{t:.1f} s' for t in r['lime'])}",
        *(
            f"  a fresh session's first render meanwhile, {how}: "
            f"{', '.join(f'{t / 1000:.1f} s' for t in ms)} (goal <= 5 s)"
            for how, ms in r["first"].items()
        ),
        f"  server RSS: {r['rss'][0]:.0f} MiB at the start, max {max(r['rss']):.0f} MiB, "
        f"{r['rss'][-1]:.0f} MiB at the end",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def _check_tools() -> None:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        raise SystemExit("Playwright is not installed: pip install playwright") from e


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run the steps on each model and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats per step (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 repeats per step, no MobileNetV2")
    parser.add_argument("--screenshots", type=Path, default=None, help="folder for screenshots after the steps")
    parser.add_argument(
        "--models", default="demo,mobilenetv2", help="which models, comma-separated (default: demo,mobilenetv2)"
    )
    parser.add_argument("--app", type=Path, default=None, help="the app.py to time (default: this checkout's)")
    parser.add_argument(
        "--image-prefix", default="fashion_mnist", help="sample images to step through on the first model"
    )
    parser.add_argument("--label", default=None, help="the first table's title (default: the demo model)")
    parser.add_argument("--sessions", type=int, default=0, help="then N browser sessions at once (e.g. 4)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long --sessions runs (default 60)")
    parser.add_argument("--soak", type=int, default=0, help="then N sessions one after another, RSS every 10")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    if repeats < 1:
        parser.error(f"--repeats must be at least 1, got {repeats}")
    _check_tools()
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    app = args.app.resolve() if args.app else None
    from playwright.sync_api import sync_playwright

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    demo: dict[str, list[float]] = {}
    with sync_playwright() as p:
        floor = bench_floor(p, repeats)
        print(
            f"Streamlit floor (bench/floor_app.py, a selectbox and a cached picture): median "
            f"{statistics.median(floor):.0f} ms, max {max(floor):.0f} ms over {len(floor)}",
            flush=True,
        )
        if "demo" in models:
            demo = run_model(p, app, [], repeats, args.image_prefix, args.screenshots, "demo")
            label = args.label or "Demo model (models/fashion_mnist_cnn.keras)"
            print(f"\n{label}, {repeats} repeats, headless Chromium, {app or ROOT / 'app.py'}:")
            print(table(demo, 1 if "mobilenet" in label.lower() else 0), flush=True)
        if "mobilenetv2" in models and not args.quick:
            with tempfile.TemporaryDirectory() as tmp:
                path = mobilenet_model(Path(tmp))
                mobile = run_model(p, app, ["--model", str(path)], repeats, "photo", args.screenshots, "mobilenetv2")
            print(f"\nMobileNetV2 224 (random weights) nested in a Sequential, {repeats} repeats:")
            print(table(mobile, 1), flush=True)
    if args.sessions or args.soak:
        proc, url = start_server(free_port(), app)
        try:
            if args.sessions:
                print()
                single = statistics.median(demo["layer, revisit"] + demo["layer, first visit (jump)"]) if demo else 50.0
                print(load_report(url, proc.pid, args.sessions, args.seconds, single), flush=True)
            if args.soak:
                rss = asyncio.run(_soak(url, proc.pid, args.soak))
                print(
                    f"\nServer RSS over {args.soak} sessions one after another: "
                    + ", ".join(f"{n}: {m:.0f} MiB" for n, m in rss)
                )
        finally:
            stop_server(proc)


if __name__ == "__main__":
    main()
