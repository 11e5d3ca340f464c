#!/usr/bin/python3
"""Oracle for goodsrec's deterministic transforms: torchvision 0.14 + PIL on the same files.

Usage: /usr/bin/python3 scripts/oracle/transforms.py OUT_DIR IMAGE...
For each image i writes OUT_DIR/<i>.<name>.bin (raw bytes) and prints one JSON line per output with
its shape and dtype. Outputs:
  decode      uint8 HWC   PIL open + convert('RGB') (EXIF orientation applied first)
  letterbox   uint8 HWC   pad to square (black, PIL paste at ((S-W)//2, (S-H)//2)), resize 256 bilinear
  eval        float32 CHW letterbox 256 -> CenterCrop 224 -> ToTensor -> Normalize(recipe mean/std)
  resize      uint8 HWC   Resize(256) (shorter side) -> CenterCrop(224)
  squash      uint8 HWC   Resize((200, 160)) (h, w)
  hflip       uint8 HWC   RandomHorizontalFlip(p=1)
"""
import json
import os
import sys

try:
    import numpy as np
    import torch
    import torchvision.transforms as T
    from PIL import Image, ImageOps
except ImportError as e:  # a clear message for the test runner
    print(f"oracle needs torch, torchvision, numpy and PIL importable from {sys.executable}: {e}", file=sys.stderr)
    sys.exit(3)

MEAN = [0.4716, 0.425, 0.354]
STD = [0.2178, 0.2079, 0.1935]


class Letterbox:
    def __init__(self, size, fill=(0, 0, 0)):
        self.size, self.fill = size, fill

    def __call__(self, im):
        w, h = im.size
        s = max(w, h)
        canvas = Image.new("RGB", (s, s), self.fill)
        canvas.paste(im, ((s - w) // 2, (s - h) // 2))
        return canvas.resize((self.size, self.size), Image.BILINEAR)


def load(path):
    im = Image.open(path)
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB")


def main():
    out, paths = sys.argv[1], sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    pipes = {
        "letterbox": T.Compose([Letterbox(256)]),
        "eval": T.Compose([Letterbox(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)]),
        "resize": T.Compose([T.Resize(256), T.CenterCrop(224)]),
        "squash": T.Compose([T.Resize((200, 160))]),
        "hflip": T.Compose([T.RandomHorizontalFlip(p=1.0)]),
    }
    for i, p in enumerate(paths):
        im = load(p)
        results = {"decode": im}
        for k, t in pipes.items():
            results[k] = t(im)
        for k, r in results.items():
            if isinstance(r, torch.Tensor):
                arr = r.numpy().astype(np.float32)
            else:
                arr = np.asarray(r, dtype=np.uint8)
            arr.tofile(os.path.join(out, f"{i}.{k}.bin"))
            print(json.dumps({"index": i, "name": k, "shape": list(arr.shape), "dtype": str(arr.dtype)}))


if __name__ == "__main__":
    main()
