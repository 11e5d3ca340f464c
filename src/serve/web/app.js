// goodsrec page: send a photo to POST /v1/predict, or run the exported model
// in the browser with onnxruntime-web (wasm, files served by this server).
const $ = (id) => document.getElementById(id);
const statusEl = $('status');
const results = $('results');
let meta = null;
let browserSession = null;

function setStatus(text, error = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle('error', error);
}

async function loadMeta() {
  const r = await fetch('/v1/model');
  if (!r.ok) throw new Error(`GET /v1/model: ${r.status}`);
  meta = await r.json();
  const from = meta.preprocess?.pretrained ? `, fine-tuned from ${meta.preprocess.pretrained.name}` : '';
  const q = meta.quantization?.calibration;
  const precision =
    meta.precision === 'int8'
      ? `, int8${q ? ` (ranges by ${q.method}${q.auto ? ' (auto)' : ''} on ${q.photos} photos)` : ''}`
      : `, ${meta.precision ?? 'fp32'}`;
  $('model-info').textContent =
    `${meta.model}, ${meta.classes.length} classes, input ${meta.input.dims.join('x')}${precision}${from}`;
}

function show(top, mode, ms) {
  results.replaceChildren();
  results.dataset.mode = mode;
  for (const t of top) {
    const li = document.createElement('li');
    li.dataset.label = t.label;
    let pic;
    if (meta.references?.[t.index]) {
      pic = document.createElement('img');
      pic.src = `/v1/classes/${t.index}/image`;
      pic.alt = t.label;
    } else {
      pic = document.createElement('div');
      pic.className = 'ph';
    }
    const body = document.createElement('div');
    const label = document.createElement('div');
    label.className = 'label';
    label.textContent = t.label;
    const pct = document.createElement('div');
    pct.className = 'pct';
    pct.textContent = `${(100 * t.probability).toFixed(1)}%`;
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${(100 * t.probability).toFixed(1)}%`;
    bar.append(fill);
    body.append(label, pct, bar);
    li.append(pic, body);
    results.append(li);
  }
  setStatus(`${mode === 'browser' ? 'in the browser' : 'on the server'}: ${ms.toFixed(0)} ms`);
}

async function predictOnServer(blob) {
  const t0 = performance.now();
  const r = await fetch('/v1/predict?top=5', {
    method: 'POST',
    headers: { 'content-type': blob.type || 'image/jpeg' },
    body: blob,
  });
  const body = await r.json();
  if (!r.ok) throw new Error(`${body.error.code}: ${body.error.message}`);
  showGallery(body.predictions[0].gallery);
  show(body.predictions[0].top, 'server', performance.now() - t0);
}

// --- the gallery: its classes, enrol and remove (admin token kept in the form field only) -----

function showGallery(answer) {
  const el = $('gallery-answer');
  el.hidden = !answer;
  if (!answer) return;
  el.dataset.class = answer.class ?? '';
  el.textContent =
    answer.class === null
      ? `gallery: unknown product (best similarity ${answer.similarity.toFixed(3)})`
      : `gallery: ${answer.class} (similarity ${answer.similarity.toFixed(3)})`;
}

async function adminFetch(url, init) {
  const r = await fetch(url, { ...init, headers: { authorization: `Bearer ${$('enrol-token').value.trim()}` } });
  const body = await r.json();
  if (!r.ok) throw new Error(`${body.error.code}: ${body.error.message}`);
  return body;
}

async function loadGallery() {
  const r = await fetch('/v1/gallery');
  if (!r.ok) return;
  const g = await r.json();
  $('gallery').hidden = false;
  $('gallery-info').textContent =
    `${g.photos} photos of ${g.classes.length} products, ${g.search} search, version ${g.version}`;
  $('gallery-info').dataset.version = String(g.version);
  const list = $('gallery-classes');
  list.replaceChildren();
  for (const c of g.classes) {
    const li = document.createElement('li');
    li.dataset.class = c.class;
    li.textContent = `${c.class} (${c.photos})`;
    const rm = document.createElement('button');
    rm.type = 'button';
    rm.className = 'remove';
    rm.textContent = 'remove';
    rm.addEventListener('click', () => removeClass(c.class));
    li.append(rm);
    list.append(li);
  }
}

function enrolStatus(text, error = false) {
  $('enrol-status').textContent = text;
  $('enrol-status').classList.toggle('error', error);
}

async function removeClass(name) {
  try {
    const r = await adminFetch(`/v1/gallery/classes/${encodeURIComponent(name)}`, { method: 'DELETE' });
    enrolStatus(`removed ${r.removed} photos of ${r.class}`);
    await loadGallery();
  } catch (err) {
    enrolStatus(String(err.message || err), true);
  }
}

$('enrol').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = $('enrol-name').value.trim();
  const files = Array.from($('enrol-photos').files);
  const form = new FormData();
  for (const f of files) form.append('photos', f, f.name);
  enrolStatus(`enrolling ${files.length} photos...`);
  try {
    const r = await adminFetch(`/v1/gallery/classes/${encodeURIComponent(name)}`, { method: 'POST', body: form });
    enrolStatus(`enrolled ${r.added} photos of ${r.class}; the gallery has ${r.photos} photos`);
    await loadGallery();
    // What the gallery now says for the first enrolled photo.
    $('in-browser').checked = false;
    await handle(files[0]);
  } catch (err) {
    enrolStatus(String(err.message || err), true);
  }
});

// --- in-browser inference -------------------------------------------------------------

async function session() {
  if (browserSession) return browserSession;
  setStatus('loading onnxruntime-web and the model...');
  const ort = await import('/ort/ort.wasm.bundle.min.mjs');
  ort.env.wasm.wasmPaths = '/ort/';
  // Threads need cross-origin isolation (SharedArrayBuffer); one thread works everywhere.
  ort.env.wasm.numThreads = 1;
  const bytes = new Uint8Array(await (await fetch('/v1/model.onnx')).arrayBuffer());
  browserSession = { ort, s: await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] }) };
  return browserSession;
}

// The server's own evaluation pipeline (GET /v1/model `pipeline`) run by the server's resampler code,
// compiled for the browser (src/serve/web-preprocess.ts): nothing about sizes or colours is restated here.
let webPreprocess = null;
async function preprocess(blob) {
  webPreprocess ??= await import('/lib/serve/web-preprocess.js');
  const bytes = new Uint8Array(await blob.arrayBuffer());
  // Displayed orientation (EXIF applied, as the server decodes), no colour management, no premultiplying.
  const bmp = await createImageBitmap(blob, {
    imageOrientation: 'from-image',
    colorSpaceConversion: 'none',
    premultiplyAlpha: 'none',
  });
  const canvas = new OffscreenCanvas(bmp.width, bmp.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bmp, 0, 0);
  const rgb = webPreprocess.rgbaToRgb(ctx.getImageData(0, 0, bmp.width, bmp.height).data, bmp.width, bmp.height);
  bmp.close();
  // Test hook (test/serve-web.test.ts): a negative control alters the pipeline before it runs.
  const hook = window.goodsrecPipelineHook;
  const pipeline = typeof hook === 'function' ? hook(structuredClone(meta.pipeline)) : meta.pipeline;
  return webPreprocess.evalTensor(rgb, pipeline, webPreprocess.encodedInfo(bytes));
}

async function predictInBrowser(blob) {
  const { ort, s } = await session();
  const t0 = performance.now();
  const x = await preprocess(blob);
  // Test-time views and ensembles are inside the graph: one image in, one row of scores out.
  const out = await s.run({ [meta.input.name]: new ort.Tensor('float32', x, [1, ...meta.input.dims]) });
  const logits = Array.from(out[meta.output.name].data).slice(0, meta.classes.length);
  const m = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  const probabilities = e.map((v) => v / z);
  const top = logits
    .map((_, j) => j)
    .sort((a, b) => logits[b] - logits[a] || a - b)
    .slice(0, 5)
    .map((j) => ({ label: meta.classes[j], index: j, probability: probabilities[j] }));
  // What the page computed, for the browser-vs-server test.
  window.goodsrecLast = { mode: 'browser', probabilities, input: x };
  showGallery(null);
  show(top, 'browser', performance.now() - t0);
}

async function handle(blob) {
  if (!blob || blob.size === 0) return;
  $('preview').src = URL.createObjectURL(blob);
  $('preview').hidden = false;
  setStatus('recognising...');
  try {
    if ($('in-browser').checked) await predictInBrowser(blob);
    else await predictOnServer(blob);
  } catch (err) {
    results.replaceChildren();
    setStatus(String(err.message || err), true);
  }
}

// --- inputs ----------------------------------------------------------------------------------

$('file').addEventListener('change', (ev) => handle(ev.target.files[0]));
const drop = $('drop');
drop.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  handle(ev.dataTransfer.files[0]);
});

$('camera-start').addEventListener('click', async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    const video = $('video');
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    $('camera-shoot').hidden = false;
  } catch (err) {
    setStatus(`camera: ${err.message || err}`, true);
  }
});
$('camera-shoot').addEventListener('click', () => {
  const video = $('video');
  const c = document.createElement('canvas');
  c.width = video.videoWidth;
  c.height = video.videoHeight;
  c.getContext('2d').drawImage(video, 0, 0);
  c.toBlob((b) => handle(b), 'image/jpeg', 0.92);
});

loadMeta().then(
  async () => {
    if (meta.gallery) await loadGallery();
    setStatus('ready');
  },
  (err) => setStatus(String(err.message || err), true),
);
