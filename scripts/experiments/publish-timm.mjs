#!/usr/bin/env node
// Writes a goodsrec run's best checkpoint as a timm-format Hub repo folder: model.safetensors (the
// checkpoint's weights, unchanged: the zoo's ResNets use timm's / torchvision's key names) and config.json
// with timm's fields (architecture, num_classes, num_features, label_names, pretrained_cfg).
//   node scripts/experiments/publish-timm.mjs RUN_DIR OUT_DIR
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const [run, out] = process.argv.slice(2).map((p) => resolve(p));
if (!run || !out) {
  console.error('usage: publish-timm.mjs RUN_DIR OUT_DIR');
  process.exit(2);
}
const best = JSON.parse(readFileSync(join(run, 'best.json'), 'utf8'));
const ckpt = resolve(run, 'checkpoints', best.name ?? best.checkpoint ?? '');
const weights = join(ckpt, 'model.safetensors');
if (!existsSync(weights)) {
  console.error(`${weights}: not found (best.json: ${JSON.stringify(best)})`);
  process.exit(1);
}
const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
const classes = JSON.parse(readFileSync(join(run, 'classes.json'), 'utf8'));
const labels = Array.isArray(classes) ? classes : classes.classes;
const size = config.input.size;
const timm = {
  architecture: config.model.name,
  num_classes: labels.length,
  num_features: 512,
  label_names: labels,
  pretrained_cfg: {
    tag: 'grocery_a',
    input_size: [3, size, size],
    mean: config.input.mean,
    std: config.input.std,
    interpolation: 'bilinear',
    crop_pct: config.input.cropPct,
    crop_mode: 'center',
    num_classes: labels.length,
  },
};
mkdirSync(out, { recursive: true });
copyFileSync(weights, join(out, 'model.safetensors'));
writeFileSync(join(out, 'config.json'), JSON.stringify(timm, null, 2));
console.log(`${out}: ${config.model.name}, ${labels.length} classes, from ${ckpt}`);
