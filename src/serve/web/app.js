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
  const from = meta.preprocess && meta.preprocess.pretrained ? `, fine-tuned from ${meta.preprocess.pretrained.name}` : '';
  $('model-info').textContent = `${meta.model}, ${meta.classes.length} classes, input ${meta.input.dims.join('x')}${from}`;
}

function show(top, mode, ms) {
  results.replaceChildren();
  results.dataset.mode = mode;
  for (const t of top) {
    const li = document.createElement('li');
    li.dataset.label = t.label;
    let pic;
    if (meta.references && meta.references[t.index]) {
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
  const r = await fetch('/v1/predict?top=5', { method: 'POST', headers: { 'content-type': blob.type || 'image/jpeg' }, body: blob });
  const body = await r.json();
  if (!r.ok) throw new Error(`${body.error.code}: ${body.error.message}`);
  show(body.predictions[0].top, 'server', performance.now() - t0);
}

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

/** The evaluation pre-processing: letterbox (or squash) to size/cropPct, center crop, normalize (CHW). */
async function preprocess(blob) {
  const p = meta.preprocess;
  const bmp = await createImageBitmap(blob);
  const R = Math.round(p.size / p.cropPct);
  const canvas = new OffscreenCanvas(R, R);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, R, R);
  if (p.resize === 'letterbox') {
    const S = Math.max(bmp.width, bmp.height);
    const k = R / S;
    ctx.drawImage(bmp, Math.floor((S - bmp.width) / 2) * k, Math.floor((S - bmp.height) / 2) * k, bmp.width * k, bmp.height * k);
  } else {
    ctx.drawImage(bmp, 0, 0, R, R);
  }
  bmp.close();
  const off = Math.round((R - p.size) / 2);
  const px = ctx.getImageData(off, off, p.size, p.size).data;
  const plane = p.size * p.size;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = (px[4 * i + c] / 255 - p.mean[c]) / p.std[c];
  }
  return out;
}

async function predictInBrowser(blob) {
  const { ort, s } = await session();
  const t0 = performance.now();
  const x = await preprocess(blob);
  // Test-time views and ensembles are inside the graph: one image in, one row of scores out.
  const out = await s.run({ [meta.input.name]: new ort.Tensor('float32', x, [1, ...meta.input.dims]) });
  const logits = Array.from(out[meta.output.name].data);
  const m = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  const top = logits.map((_, j) => j).sort((a, b) => logits[b] - logits[a] || a - b).slice(0, 5)
    .map((j) => ({ label: meta.classes[j], index: j, probability: e[j] / z }));
  show(top, 'browser', performance.now() - t0);
}

async function handle(blob) {
  if (!blob || blob.size === 0) return;
  $('preview').src = URL.createObjectURL(blob);
  $('preview').hidden = false;
  setStatus('recognising...');
  try {
    if ($('in-browser').checked) await predictInBrowser(blob); else await predictOnServer(blob);
  } catch (err) {
    results.replaceChildren();
    setStatus(String(err.message || err), true);
  }
}

// --- inputs ----------------------------------------------------------------------------------

$('file').addEventListener('change', (ev) => handle(ev.target.files[0]));
const drop = $('drop');
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
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

loadMeta().then(() => setStatus('ready'), (err) => setStatus(String(err.message || err), true));
