// explain dashboard: shows a "view" (one or more pictures side by side, each with an optional
// heatmap laid over it and a caption) and keeps every view it was sent in a page-wide cache. When a
// control announces a choice (a window event), the view for that choice is drawn from the cache in
// the same frame, with no round trip to the server; a choice not cached yet dims the old view
// until the server sends the new one. An opacity event sets the heatmaps' CSS opacity, which is
// the blend (1 - a) * image + a * heatmap, without asking the server for anything.
// Data: {current, views: {key: [tile]}, pick: {event, keys: {option: key}} | null,
//        alpha: {event, value} | null, hidden}; tile: {src, over, caption, alt, pixelated}.

const CACHE = (window.__explainViews ??= new Map());
// The most recent views as ready-made elements whose pictures are decoded: putting one on screen
// is then a DOM swap in the same frame, even for a 900x900 mosaic (decoding its PNG anew takes
// 100-200 ms on a slow machine). Older views keep their data only (decoded bitmaps are large).
const NODES = (window.__explainNodes ??= new Map());
const ALPHA = (window.__explainAlpha ??= {});
const MAX_VIEWS = 240;
const MAX_NODES = 32;

function remember(key, tiles) {
  CACHE.delete(key);
  CACHE.set(key, tiles);
  while (CACHE.size > MAX_VIEWS) CACHE.delete(CACHE.keys().next().value);
  NODES.delete(key); // new data for this key: its elements are made again when needed
}

function nodes(key, alpha) {
  let made = NODES.get(key);
  if (!made) {
    made = CACHE.get(key).map((t) => tileElement(t, alpha));
    for (const img of made.flatMap((f) => [...f.querySelectorAll("img")])) img.decode().catch(() => {});
  }
  NODES.delete(key);
  NODES.set(key, made);
  while (NODES.size > MAX_NODES) NODES.delete(NODES.keys().next().value);
  return made;
}

function tileElement(tile, alpha) {
  const fig = document.createElement("figure");
  fig.className = "xp-tile";
  const frame = document.createElement("div");
  frame.className = "xp-frame" + (tile.pixelated ? " xp-pixelated" : "");
  const base = document.createElement("img");
  base.className = "xp-base";
  base.src = tile.src;
  base.alt = tile.alt || tile.caption || "";
  frame.appendChild(base);
  if (tile.over) {
    const over = document.createElement("img");
    over.className = "xp-over";
    over.src = tile.over;
    over.alt = "";
    over.style.opacity = alpha;
    frame.appendChild(over);
  }
  fig.appendChild(frame);
  if (tile.caption) {
    const cap = document.createElement("figcaption");
    cap.textContent = tile.caption;
    fig.appendChild(cap);
  }
  return fig;
}

function show(root, key, alpha) {
  root.classList.remove("xp-waiting");
  if (root.dataset.view === key || !CACHE.has(key)) return;
  root.replaceChildren(...nodes(key, alpha));
  root.dataset.view = key;
  setAlpha(root, alpha);
}

function setAlpha(root, value) {
  for (const img of root.querySelectorAll(".xp-over")) img.style.opacity = value;
}

export default function (component) {
  const { data, parentElement } = component;
  // a view key is a hash of everything its pictures depend on: a key seen before is the same view
  for (const [key, tiles] of Object.entries(data.views || {})) if (!CACHE.has(key)) remember(key, tiles);
  if (data.hidden) {
    // views sent ahead: make and decode the nearest ones now, so they show in the same frame
    for (const key of Object.keys(data.views || {}).slice(0, 4)) nodes(key, 1);
    return undefined;
  }
  let root = parentElement.querySelector(".xp-viewer");
  if (!root) {
    root = document.createElement("div");
    root.className = "xp-viewer";
    parentElement.appendChild(root);
  }
  const alpha = data.alpha;
  if (alpha && root.dataset.served !== String(alpha.value)) {
    ALPHA[alpha.event] = alpha.value; // the server's value, e.g. on the first render
    root.dataset.served = String(alpha.value);
  }
  const opacity = alpha ? ALPHA[alpha.event] ?? alpha.value : 1;
  show(root, data.current, opacity);
  setAlpha(root, opacity);
  const onPick = (e) => {
    const key = data.pick.keys[e.detail];
    if (key && CACHE.has(key)) show(root, key, alpha ? ALPHA[alpha.event] : 1);
    else root.classList.add("xp-waiting");
  };
  const onAlpha = (e) => {
    ALPHA[alpha.event] = e.detail;
    setAlpha(root, e.detail);
  };
  if (data.pick) window.addEventListener(data.pick.event, onPick);
  if (alpha) window.addEventListener(alpha.event, onAlpha);
  return () => {
    if (data.pick) window.removeEventListener(data.pick.event, onPick);
    if (alpha) window.removeEventListener(alpha.event, onAlpha);
  };
}
