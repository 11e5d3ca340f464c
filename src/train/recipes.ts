// Named presets (`goodsrec train --recipe NAME`): a layer of options between the
// defaults and the user's config file, so everything the user sets still wins.
export const RECIPES: Record<string, { description: string; values: Record<string, unknown> }> = {
  finetune: {
    description:
      'start from pretrained weights: lr 0.01 (10x lower), 1 warmup epoch (lr set every iteration), 15 epochs, ' +
      'layer-wise lr decay 0.8, no AutoAugment; head-only epochs and frozen BatchNorm are options (finetune.*)',
    values: {
      optim: { lr: 0.01 },
      // Per iteration: with per-epoch updates the warmup epoch would run whole at the warmup's first lr (~0).
      schedule: { epochs: 15, warmupEpochs: 1, perIteration: true },
      augment: { autoAugment: null },
      finetune: { headOnlyEpochs: 0, layerDecay: 0.8, freezeBn: false },
    },
  },
};

export function recipeLayer(name: string): { source: string; values: Record<string, unknown> } {
  const r = RECIPES[name];
  if (!r) throw new Error(`--recipe ${name}: unknown recipe (known: ${Object.keys(RECIPES).join(', ')})`);
  return { source: `--recipe ${name}`, values: structuredClone(r.values) };
}
