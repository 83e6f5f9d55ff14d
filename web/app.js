// The page: pick a model and an image, encode it on the browser's WebGPU adapter through the wasm
// build of vlm-connectors (web/src/lib.rs), and show the processor's tiling, the tokens, the times
// and the token budget. Served from the repository root (scripts/web.sh serve), so the shipped tiny
// models (tests/data/pixels) and photos (assets/images) are plain fetches. No server-side code.
import init, { createSession } from "./pkg/vlm_connectors_web.js";

const SHIPPED = {
  pixels_llava_next: "LLaVA-NeXT (AnyRes tiles, tiny CLIP tower)",
  pixels_llava_clip: "LLaVA-1.5 (tiny CLIP tower, center crop)",
  pixels_blip2: "BLIP-2 (tiny EVA tower, Q-Former)",
};
const PHOTOS = ["coffee.png", "astronaut.png", "coffee.jpg"];
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let session = null;
let ownImage = null; // a File the user picked or dropped
let adapter = null; // the session's adapter facts
let running = false;
// A Rust panic aborts the wasm instance (its Promise never settles): web/src/lib.rs reports it here.
globalThis.vlmcPanic = (message) => {
  console.error(message);
  fail(new Error(`vlm-connectors panicked (reload the page): ${message}`));
};

function status(text) { $("status").textContent = text; }

function fail(e) {
  const text = e instanceof Error ? e.message : String(e);
  $("error").textContent = text;
  $("error").hidden = false;
  status("Failed.");
  document.body.dataset.state = "error";
}

async function fetchOk(url, as) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return as === "text" ? r.text() : new Uint8Array(await r.arrayBuffer());
}

/// The three files of the chosen model: [config.json, preprocessor_config.json, weights, label].
async function modelFiles() {
  const source = document.querySelector("input[name=source]:checked").value;
  if (source === "shipped") {
    const dir = `../tests/data/pixels/${$("shipped").value}/`;
    return [await fetchOk(dir + "config.json", "text"), await fetchOk(dir + "preprocessor_config.json", "text"),
      await fetchOk(dir + "model.safetensors"), $("shipped").value];
  }
  if (source === "url") {
    let base = $("url").value.trim();
    if (!base) throw new Error("enter the URL of a model folder");
    if (!base.endsWith("/")) base += "/";
    return [await fetchOk(base + "config.json", "text"), await fetchOk(base + "preprocessor_config.json", "text"),
      await fetchOk(base + "model.safetensors"), base];
  }
  const files = Array.from($("folder").files);
  const find = (name) => {
    const f = files.find((f) => f.name === name);
    if (!f) throw new Error(`the folder has no ${name}`);
    return f;
  };
  return [await find("config.json").text(), await find("preprocessor_config.json").text(),
    new Uint8Array(await find("model.safetensors").arrayBuffer()), files[0]?.webkitRelativePath.split("/")[0] ?? "folder"];
}

async function imageBytes() {
  if (ownImage) return [new Uint8Array(await ownImage.arrayBuffer()), ownImage.name];
  const name = $("photo").value;
  return [await fetchOk(`../assets/images/${name}`), name];
}

/// The photo with what the processor does to it: AnyRes's pinpoint, padding and tile grid, or the
/// resize and center crop.
function drawTiling(bitmap, r) {
  const t = r.tiling, [h, w] = r.image, canvas = $("tiling"), ctx = canvas.getContext("2d");
  const [fh, fw] = t.pinpoint ?? t.resized;
  const s = Math.min(600 / fw, 440 / fh);
  canvas.width = Math.round(fw * s) + 2;
  canvas.height = Math.round(fh * s) + 2;
  ctx.fillStyle = "#d0d0d0";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.lineWidth = 2;
  ctx.font = "bold 14px sans-serif";
  if (t.pinpoint) {
    const [rh, rw] = t.resized, [gr, gc] = t.grid;
    const top = Math.floor((fh - rh) / 2), left = Math.floor((fw - rw) / 2);
    ctx.drawImage(bitmap, left * s + 1, top * s + 1, rw * s, rh * s);
    ctx.strokeStyle = "#d95f02";
    for (let i = 0; i < gr; i++) {
      for (let j = 0; j < gc; j++) {
        const x = j * t.tile * s + 1, y = i * t.tile * s + 1;
        ctx.strokeRect(x, y, t.tile * s, t.tile * s);
        ctx.fillStyle = "rgba(0,0,0,.55)";
        ctx.fillRect(x + 3, y + 3, 24, 18);
        ctx.fillStyle = "#fff";
        ctx.fillText(String(1 + i * gc + j), x + 6, y + 17);
      }
    }
    $("tiling-caption").textContent = `${r.processor} · AnyRes (sizes height×width): the ${h}×${w} photo → ` +
      `best pinpoint ${fh}×${fw} → resized to ${rh}×${rw}, padded (grey) → ${gr}×${gc} tiles of ${t.tile} px ` +
      `+ 1 global view = ${gr * gc + 1} tower inputs of ${t.input[0]}×${t.input[1]} ` +
      `(pixel_values [${r.pixel_values_shape}]).`;
  } else {
    const [rh, rw] = t.resized;
    ctx.drawImage(bitmap, 1, 1, rw * s, rh * s);
    const [ch, cw] = t.crop ?? t.resized;
    const top = Math.floor((rh - ch) / 2), left = Math.floor((rw - cw) / 2);
    ctx.fillStyle = "rgba(255,255,255,.6)";
    ctx.fillRect(1, 1, rw * s, top * s);
    ctx.fillRect(1, (top + ch) * s + 1, rw * s, (rh - top - ch) * s);
    ctx.fillRect(1, 1, left * s, rh * s);
    ctx.fillRect((left + cw) * s + 1, 1, (rw - left - cw) * s, rh * s);
    ctx.strokeStyle = "#d95f02";
    ctx.strokeRect(left * s + 1, top * s + 1, cw * s, ch * s);
    const crop = t.crop ? `, center crop ${ch}×${cw} (outlined)` : "";
    $("tiling-caption").textContent = `${r.processor} · (sizes height×width) the ${h}×${w} photo → resized to ` +
      `${rh}×${rw}${crop} → 1 tower input of ${t.input[0]}×${t.input[1]} (pixel_values [${r.pixel_values_shape}]).`;
  }
}

function showFacts(model, r, label, imageName) {
  const ms = (v) => (v == null ? "—" : `${v.toFixed(1)} ms`);
  const gpu = !adapter.timestamps ? "no timestamp-query on this adapter" : r.gpu_ms == null ? "below the timer's resolution" : ms(r.gpu_ms);
  const rows = [
    ["visual tokens", String(r.tokens), "big"],
    ["output", `[${r.output_shape}] (LLM embeddings)`],
    ["model", `${label}: ${model.class} (${model.model_type})`],
    ...model.describe.map((line) => ["", line]),
    ["image", `${imageName}, ${r.image[0]}×${r.image[1]} (height×width)`],
    ["preprocessing (CPU, wasm)", ms(r.preprocess_ms)],
    ["first run (compiles pipelines)", ms(r.first_run_ms)],
    ["forward, GPU timestamps", gpu],
    ["forward, submit → done", ms(r.wall_ms)],
    ["two runs agree", r.runs_agree ? "yes, bit for bit" : "NO"],
    ["first values", r.output_head.map((v) => (v == null ? "NaN" : v.toFixed(4))).join(", ")],
  ];
  // Text only: file and folder names are the user's.
  $("facts").replaceChildren(...rows.map(([k, v, cls]) => {
    const tr = document.createElement("tr");
    for (const [text, c] of [[k], [v, cls]]) {
      const td = tr.insertCell();
      td.textContent = text;
      if (c) td.className = c;
    }
    return tr;
  }));
}

async function run() {
  if (!session || running) return;
  running = true;
  $("run").disabled = true;
  $("error").hidden = true;
  document.body.dataset.state = "running";
  try {
    status("Loading the model…");
    const [config, preprocessor, weights, label] = await modelFiles();
    const model = JSON.parse(session.load(config, preprocessor, weights));
    status("Encoding…");
    const [bytes, imageName] = await imageBytes();
    const context = Number($("context").value) || 4096;
    const r = JSON.parse(await session.encode(bytes, context));
    // The decoder in wasm ignores EXIF orientation, as Pillow does: draw the pixels as stored.
    drawTiling(await createImageBitmap(new Blob([bytes]), { imageOrientation: "none" }), r);
    showFacts(model, r, label, imageName);
    $("budget").innerHTML = r.budget_svg;
    $("results").hidden = false;
    window.lastResult = r;
    status(`Done: ${r.tokens} visual tokens from ${imageName} in ${(r.gpu_ms ?? r.wall_ms).toFixed(1)} ms on the adapter.`);
    document.body.dataset.state = "done";
  } catch (e) {
    fail(e);
  } finally {
    running = false;
    $("run").disabled = false;
  }
}

async function main() {
  for (const [k, v] of Object.entries(SHIPPED)) $("shipped").add(new Option(v, k));
  for (const p of PHOTOS) $("photo").add(new Option(p, p));
  if (params.get("model") in SHIPPED) $("shipped").value = params.get("model");
  if (PHOTOS.includes(params.get("photo"))) $("photo").value = params.get("photo");
  $("image").onchange = () => { ownImage = $("image").files[0] ?? null; };
  $("photo").onchange = () => { ownImage = null; };
  const drop = $("drop");
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    ownImage = e.dataTransfer.files[0] ?? null;
    if (ownImage) { drop.textContent = ownImage.name; run(); }
  };
  $("run").onclick = run;
  $("run").disabled = true; // until the session exists
  try {
    if (!navigator.gpu) throw new Error("This browser has no WebGPU (navigator.gpu is undefined).");
    await init();
    session = await createSession();
    const a = (adapter = JSON.parse(session.adapter()));
    const name = a.name || "the browser's WebGPU adapter (its name withheld by the browser)";
    $("adapter").textContent = `Adapter: ${name}${a.fallback ? ", a CPU fallback adapter" : ""} · shader-f16 ${a.shader_f16 ? "yes" : "no (f32 kernels)"} · ` +
      `timestamps ${a.timestamps ? "yes" : "no"}`;
  } catch (e) {
    $("adapter").textContent = "No WebGPU adapter.";
    return fail(e);
  }
  await run();
}

main();
