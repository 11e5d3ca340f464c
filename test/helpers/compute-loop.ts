// A deterministic compute loop (conv forward + backward + SGD) used by the
// worker-thread tests: same result on any thread, no RNG involved.
import * as T from '../../src/tensor/index.js';
import { F } from '../../src/tensor/index.js';

/** Runs `steps` training steps; returns the final weight sum. Frees everything. */
export function computeLoop(steps: number): number {
  const w = T.tidy(() =>
    T.arange(0, 16 * 8 * 9, 1, { dtype: 'float32' })
      .mul(0.37)
      .sin()
      .mul(0.1)
      .reshape([16, 8, 3, 3]),
  );
  w.setRequiresGrad(true);
  const x = T.tidy(() =>
    T.arange(0, 8 * 8 * 24 * 24, 1, { dtype: 'float32' })
      .mul(0.011)
      .cos()
      .reshape([8, 8, 24, 24]),
  );
  for (let i = 0; i < steps; i++) {
    const loss = T.tidy(() => F.conv2d(x, w, null, { padding: 1 }).relu().square().mean());
    loss.backward();
    loss.dispose();
    T.tidy(() =>
      T.noGrad(() => {
        w.add_(w.grad!, -0.01);
        w.zeroGrad();
      }),
    );
  }
  const s = T.tidy(() => w.sum().item());
  w.dispose();
  x.dispose();
  return s;
}
