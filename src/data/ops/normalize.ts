/** normalize: 8-bit RGB HWC -> float32 CHW, (v / 255 - mean) / std (kept for the consumer with uint8 output). */
import { normalizeChw } from '../pil-pixels.js';
import { invalid, isTriple, type Triple } from './fields.js';
import type { OpSpec } from './op.js';

/** mean/std in 0..1 units; 'dataset' is replaced by statistics of the training split (resolvePipeline). */
export interface NormalizeOp {
  op: 'normalize';
  mean: Triple | 'dataset';
  std: Triple | 'dataset';
}

/** The numeric mean/std; an error while 'dataset' is unresolved. */
function resolved(o: NormalizeOp, where: string): { mean: Triple; std: Triple } {
  if (o.mean === 'dataset' || o.std === 'dataset')
    throw new Error(`${where}: normalize 'dataset' is unresolved; call resolvePipeline first`);
  return { mean: o.mean, std: o.std };
}

export const normalize: OpSpec<NormalizeOp> = {
  name: 'normalize',
  validate(o, at) {
    if (o.mean !== 'dataset' && !isTriple(o.mean)) throw invalid(`${at}.mean`, "[r, g, b] or 'dataset'", o.mean);
    if (o.std !== 'dataset' && !(isTriple(o.std) && o.std.every((x) => x > 0)))
      throw invalid(`${at}.std`, "[r, g, b] > 0 or 'dataset'", o.std);
  },
  stage: 'normalize',
  deterministic: true,
  pixelwise: true,
  eval: true,
  apply(o, st, ctx) {
    const { mean, std } = resolved(o, 'pipeline');
    st.mean = mean;
    st.std = std;
    if (ctx.cfg.output !== 'uint8') st.float = ctx.k.toFloatChw(st.img, mean, std, st.flip, ctx.into);
  },
  browser: {
    apply(o, img) {
      const { mean, std } = resolved(o, 'web pre-processing');
      return normalizeChw(img, mean, std);
    },
  },
};
