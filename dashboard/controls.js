// explain dashboard: a drop-down (with previous / next buttons) or a slider that tells the page
// at once what the user chose, by a window event the viewers listen to, and tells the server
// afterwards (setStateValue). The viewers redraw from their cache in the same frame; the server's
// rerun then fills in what depends on the choice. Data: {kind: "select" | "range", label, event,
// value, help, options (select), min, max, step (range)}.

function build(root, data) {
  root.className = "xp-control";
  const id = "xp-" + Math.random().toString(36).slice(2);
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = data.label;
  if (data.help) label.title = data.help;
  root.appendChild(label);
  const row = document.createElement("div");
  row.className = "xp-row";
  if (data.kind === "select") {
    const prev = document.createElement("button");
    prev.className = "xp-step xp-prev";
    prev.type = "button";
    prev.textContent = "\u25C0";
    prev.setAttribute("aria-label", "Previous");
    const select = document.createElement("select");
    select.id = id;
    const next = document.createElement("button");
    next.className = "xp-step xp-next";
    next.type = "button";
    next.textContent = "\u25B6";
    next.setAttribute("aria-label", "Next");
    row.append(prev, select, next);
  } else {
    const input = document.createElement("input");
    input.type = "range";
    input.id = id;
    const out = document.createElement("output");
    out.htmlFor = id;
    row.append(input, out);
  }
  root.appendChild(row);
}

function syncOptions(select, options) {
  const joined = options.join("\u0000");
  if (select.dataset.options === joined) return;
  select.replaceChildren(
    ...options.map((o) => {
      const el = document.createElement("option");
      el.value = o;
      el.textContent = o;
      return el;
    }),
  );
  select.dataset.options = joined;
}

function announce(event, value) {
  window.dispatchEvent(new CustomEvent(event, { detail: value }));
}

function selectControl(root, data, setStateValue) {
  const select = root.querySelector("select");
  syncOptions(select, data.options);
  if (root.dataset.served !== String(data.value)) {
    // the server chose (first render, a new model): show its value
    select.value = data.value;
    root.dataset.served = String(data.value);
  }
  const choose = (value) => {
    select.value = value;
    announce(data.event, value);
    setStateValue("value", value);
  };
  select.onchange = () => choose(select.value);
  const step = (by) => {
    const i = Math.min(data.options.length - 1, Math.max(0, select.selectedIndex + by));
    if (i !== select.selectedIndex) choose(data.options[i]);
  };
  root.querySelector(".xp-prev").onclick = () => step(-1);
  root.querySelector(".xp-next").onclick = () => step(1);
}

function rangeControl(root, data, setStateValue) {
  const input = root.querySelector("input");
  const out = root.querySelector("output");
  Object.assign(input, { min: data.min, max: data.max, step: data.step });
  if (root.dataset.served !== String(data.value)) {
    input.value = data.value;
    root.dataset.served = String(data.value);
  }
  out.textContent = Number(input.value).toFixed(2);
  input.oninput = () => {
    out.textContent = Number(input.value).toFixed(2);
    announce(data.event, Number(input.value));
  };
  input.onchange = () => setStateValue("value", Number(input.value));
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let root = parentElement.querySelector(".xp-control");
  if (!root) {
    root = document.createElement("div");
    build(root, data);
    parentElement.appendChild(root);
  }
  if (data.kind === "select") selectControl(root, data, setStateValue);
  else rangeControl(root, data, setStateValue);
}
