// goodsrec pull: prefetch pretrained weights by name into the shared caches (for offline use).
import { defineCommand } from 'citty';
import { HubError, resolvePretrained } from '../../hub/index.js';
import { fail } from '../errors.js';

export default defineCommand({
  meta: {
    name: 'pull',
    description: "Download pretrained weights by name into the Hugging Face / torch.hub caches: 'hf-hub:timm/resnet50.a1_in1k[@rev]', 'torchvision:resnet50'.",
  },
  args: {
    name: { type: 'positional', description: 'pretrained name', required: true },
    json: { type: 'boolean', description: 'print the result as JSON' },
  },
  async run({ args }) {
    try {
      const p = await resolvePretrained(args.name);
      if (args.json) console.log(JSON.stringify(p, null, 2));
      else console.log(`${p.name}: ${p.architecture ?? 'weights'} at ${p.weights}`);
    } catch (e) {
      if (e instanceof HubError) return fail(e.message);
      throw e;
    }
  },
});
