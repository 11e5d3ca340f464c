// goodsrec pull: prefetch pretrained weights by name into the shared caches (for offline use).
import { resolvePretrained } from '../../hub/index.js';
import { defineCliCommand } from '../options.js';

export default defineCliCommand({
  name: 'pull',
  description:
    "Download pretrained weights by name into the Hugging Face / torch.hub caches: 'hf-hub:timm/resnet50.a1_in1k[@rev]', 'torchvision:resnet50'.",
  positionals: { name: { description: 'pretrained name', required: true } },
  options: {
    json: { type: 'boolean', description: 'print the result as JSON' },
  },
  async run({ options: o, args }) {
    const p = await resolvePretrained(args.name);
    if (o.json) console.log(JSON.stringify(p, null, 2));
    else console.log(`${p.name}: ${p.architecture ?? 'weights'} at ${p.weights}`);
  },
});
