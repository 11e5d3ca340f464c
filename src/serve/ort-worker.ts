// onnxruntime-node's session.run() holds the JS thread for the whole
// inference, so the server runs it here, in a worker thread: HTTP parsing,
// decoding and pre-processing of the next batch go on meanwhile.
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

export interface OrtWorkerData {
  onnxPath: string;
  options: ort.InferenceSession.SessionOptions;
  inputName: string;
  /** Outputs to fetch; each image's rows are concatenated in this order (logits, then the embedding). */
  outputNames: string[];
  dims: number[];
}
export type OrtRequest = { type: 'run'; id: number; input: Float32Array; n: number } | { type: 'release' };
export type OrtReply =
  | { type: 'ready' }
  | { type: 'result'; id: number; output: Float32Array }
  | { type: 'error'; id: number; message: string }
  | { type: 'fatal'; message: string }
  | { type: 'released' };

const data = workerData as OrtWorkerData;
const port = parentPort!;
const post = (m: OrtReply, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

try {
  const session = await ort.InferenceSession.create(data.onnxPath, data.options);
  port.on('message', (m: OrtRequest) => {
    if (m.type === 'release') {
      void session.release().then(() => post({ type: 'released' }));
      return;
    }
    session.run({ [data.inputName]: new ort.Tensor('float32', m.input, [m.n, ...data.dims]) }, data.outputNames).then(
      (r) => {
        const outs = data.outputNames.map((name) => r[name]!.data as Float32Array);
        let out = outs[0]!;
        if (outs.length > 1) {
          const widths = outs.map((o) => o.length / m.n);
          const row = widths.reduce((a, b) => a + b, 0);
          out = new Float32Array(row * m.n);
          for (let i = 0; i < m.n; i++) {
            let at = i * row;
            outs.forEach((o, j) => {
              out.set(o.subarray(i * widths[j]!, (i + 1) * widths[j]!), at);
              at += widths[j]!;
            });
          }
        }
        post({ type: 'result', id: m.id, output: out }, [out.buffer as ArrayBuffer]);
      },
      (e: unknown) => post({ type: 'error', id: m.id, message: (e as Error).message }),
    );
  });
  post({ type: 'ready' });
} catch (e) {
  post({ type: 'fatal', message: (e as Error).message });
}
