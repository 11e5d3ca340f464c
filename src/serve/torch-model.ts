// `goodsrec serve --device cuda` (or cpu): the served model run through libtorch on a device instead of
// onnxruntime, behind the same ServedModel (so the same dynamic batcher, routes and gallery). The run is still
// exported first: the sidecar (classes, pre-processing, test-time views, embedding) is the served contract,
// and the page and GET /v1/model.onnx keep their graph. The checkpoint the sidecar names is loaded on the
// device; each micro-batch is copied there (pinned, non-blocking on CUDA), and its rows are the logits
// (the sidecar's views averaged as it says) followed by the unit-length embedding, as the graph's.
// Inference runs on the main thread (a GPU batch takes milliseconds; on the CPU prefer onnxruntime).
import { batchLogits } from '../eval/evaluate.js';
import { disposeRecognizer, loadRecognizer } from '../eval/predictor.js';
import { embedBatch } from '../gallery/embed.js';
import * as T from '../tensor/index.js';
import { readSidecar, resolveServable, sidecarPathFor, type OpenOptions, type ServedModel } from './model.js';

export async function openTorchServedModel(path: string, o: OpenOptions & { device: T.Device }): Promise<ServedModel> {
  const onnxPath = await resolveServable(path, o);
  const sidecar = readSidecar(sidecarPathFor(onnxPath));
  const checkpoint = sidecar.source.checkpoint;
  if (sidecar.members.length > 0 || sidecar.precision === 'int8' || !checkpoint)
    throw new Error(
      `${path}: --device serves one model's checkpoint through libtorch; ` +
        (sidecar.members.length > 0
          ? 'an ensemble is served through onnxruntime (omit --device)'
          : sidecar.precision === 'int8'
            ? 'an int8 graph is served through onnxruntime (omit --device)'
            : 'this export does not name its checkpoint (serve the run folder)'),
    );
  if (o.embedding && !sidecar.embedding)
    throw new Error(`${onnxPath}: the export has no embedding output; serve the run folder or export it again`);
  const r = loadRecognizer(checkpoint, { device: o.device });
  if (r.classes.length !== sidecar.classes.length)
    throw new Error(`${checkpoint}: ${r.classes.length} classes, its export ${sidecar.classes.length}; export again`);
  r.model.eval();
  o.log?.(`inference: libtorch on ${T.describeDevice(o.device)} (checkpoint ${checkpoint})`);
  const dims = sidecar.input.dims;
  const itemSize = dims.reduce((a, b) => a * b, 1);
  const embeddingDim = o.embedding ? sidecar.embedding!.dims[0]! : 0;
  let released = false;
  return {
    onnxPath,
    sidecar,
    itemSize,
    embeddingDim,
    async run(input: Float32Array, n: number): Promise<Float32Array> {
      if (released) throw new Error('libtorch model released');
      return T.tidy(() =>
        T.noGrad(() => {
          const host = T.tensor(input.subarray(0, n * itemSize), [n, ...dims]);
          const x = T.batchToDevice(host, o.device);
          const logits = batchLogits(r.model, x, sidecar.tta, sidecar.ttaMean).float();
          const rows = embeddingDim ? T.cat([logits, embedBatch(r.model, x, sidecar.tta)], 1) : logits;
          return rows.cpu().data<'float32'>().slice();
        }),
      );
    },
    async release(): Promise<void> {
      if (released) return;
      released = true;
      disposeRecognizer(r);
      T.releaseCachedMemory();
    },
  };
}
