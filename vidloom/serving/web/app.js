// The vidloom web page: a client of the same OpenAI-compatible Videos API as any SDK.
"use strict";

const $ = (id) => document.getElementById(id);
// The report's aspect-ratio buckets, scaled to the largest size the model accepts.
const ASPECTS = [[16, 9], [9, 16], [4, 3], [3, 4], [1, 1]];
const MULTIPLE = 16;
let pollTimer = null;
let shownUrl = null;

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = $("key").value.trim() || localStorage.getItem("vidloom-key") || "";
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const response = await fetch(path, opts);
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
    const err = new Error(message);
    err.status = response.status;
    throw err;
  }
  return response;
}

function fit(aspect, limits) {
  const [aw, ah] = aspect;
  const scale = Math.min(limits.max_width / aw, limits.max_height / ah);
  const w = Math.floor((aw * scale) / MULTIPLE) * MULTIPLE;
  const h = Math.floor((ah * scale) / MULTIPLE) * MULTIPLE;
  return [w, h];
}

function fillOptions(model) {
  const limits = model.limits;
  const sizes = $("size");
  sizes.innerHTML = "";
  const seen = new Set();
  for (const aspect of ASPECTS) {
    for (const factor of [1, 0.5, 0.25]) {
      const [w, h] = fit(aspect, {max_width: limits.max_width * factor, max_height: limits.max_height * factor});
      const value = w + "x" + h;
      if (w < MULTIPLE || h < MULTIPLE || seen.has(value)) continue;
      seen.add(value);
      sizes.add(new Option(value + " (" + aspect[0] + ":" + aspect[1] + ")", value));
    }
  }
  const frames = $("frames");
  frames.innerHTML = "";
  for (let f = 1; f <= limits.max_frames; f += 4) {
    if (f === 1 || f === limits.max_frames || (f - 1) % 16 === 0 || f <= 9) frames.add(new Option(String(f), String(f)));
  }
  frames.value = String(Math.min(limits.max_frames, 33 - ((33 - 1) % 4)));
  if (!frames.value) frames.selectedIndex = frames.options.length - 1;
  $("steps").value = model.sampling.num_inference_steps;
  $("model").textContent = model.id + (model.random_init ? " (random weights: noise)" : "") + " · " +
    (model.num_parameters / 1e6).toFixed(1) + "M parameters · up to " + limits.max_width + "x" +
    limits.max_height + ", " + limits.max_frames + " frames";
}

async function loadModel() {
  try {
    const health = await (await fetch("/healthz")).json();
    if (health.auth_required && !headers().Authorization) {
      $("model").textContent = health.model;
      $("error").textContent = "This server needs an API key (below).";
      $("key-box").open = true;
      return;
    }
    const models = await (await api("/v1/models")).json();
    fillOptions(models.data[0]);
    $("error").textContent = "";
    await loadRecent();
  } catch (err) {
    $("model").textContent = "model unknown";
    $("error").textContent = err.status === 401 ? "This server needs an API key (below)." : err.message;
    if (err.status === 401) $("key-box").open = true;
  }
}

async function show(video) {
  $("current").hidden = false;
  $("status").textContent = video.status + (video.error ? ": " + video.error.message : "");
  $("progress").value = video.progress || 0;
  const extras = video.extras || {};
  $("rewritten").textContent = extras.rewritten_prompt ? "Prompt used: " + extras.rewritten_prompt : "";
  if (video.status === "completed") {
    const blob = await (await api("/v1/videos/" + video.id + "/content")).blob();
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = URL.createObjectURL(blob);
    const player = $("video");
    player.dataset.videoId = video.id;
    player.src = shownUrl;
    player.play().catch(() => { /* autoplay may be refused; the controls remain */ });
  }
}

async function poll(id) {
  clearTimeout(pollTimer);
  const response = await api("/v1/videos/" + id);
  const video = await response.json();
  await show(video);
  if (video.status === "queued" || video.status === "in_progress") {
    const after = parseInt(response.headers.get("openai-poll-after-ms") || "1000", 10);
    pollTimer = setTimeout(() => poll(id).catch(report), after);
  } else {
    $("submit").disabled = false;
    await loadRecent();
  }
}

function report(err) {
  $("error").textContent = err.message;
  $("submit").disabled = false;
}

async function loadRecent() {
  const list = await (await api("/v1/videos?limit=10&order=desc")).json();
  const ul = $("recent");
  ul.innerHTML = "";
  for (const v of list.data) {
    const li = document.createElement("li");
    li.dataset.videoId = v.id;
    const text = document.createElement("span");
    text.textContent = v.status + " · " + v.size + " · " + v.seconds + " s · " + v.prompt;
    li.appendChild(text);
    li.addEventListener("click", () => poll(v.id).catch(report));
    ul.appendChild(li);
  }
}

$("create").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").textContent = "";
  const key = $("key").value.trim();
  if (key) localStorage.setItem("vidloom-key", key);
  const body = {
    prompt: $("prompt").value,
    size: $("size").value,
    num_frames: parseInt($("frames").value, 10),
    rewrite: $("rewrite").value,
  };
  if ($("steps").value) body.num_inference_steps = parseInt($("steps").value, 10);
  if ($("seed").value) body.seed = parseInt($("seed").value, 10);
  $("submit").disabled = true;
  try {
    const video = await (await api("/v1/videos", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
    })).json();
    await show(video);
    await loadRecent();
    await poll(video.id);
  } catch (err) {
    report(err);
  }
});

$("key").addEventListener("change", loadModel);
loadModel();
