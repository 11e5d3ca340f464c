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
  letterbox_bicubic, resize_bicubic, squash_bicubic: the same three resizes with PIL's BICUBIC filter
  eval_center_bicubic float32 CHW timm's 'center' eval crop: Resize(256, BICUBIC) -> CenterCrop 224 -> Normalize
Mean/std come from the environment (GOODSREC_NORM='{"mean": [...], "std": [...]}'), set by the test from
goodsrec's run config, their one source.
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

NORM = json.loads(os.environ["GOODSREC_NORM"])
MEAN, STD = NORM["mean"], NORM["std"]


class Letterbox:
    def __init__(self, size, fill=(0, 0, 0), resample=Image.BILINEAR):
        self.size, self.fill, self.resample = size, fill, resample

    def __call__(self, im):
        w, h = im.size
        s = max(w, h)
        canvas = Image.new("RGB", (s, s), self.fill)
        canvas.paste(im, ((s - w) // 2, (s - h) // 2))
        return canvas.resize((self.size, self.size), self.resample)


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
        "letterbox_bicubic": T.Compose([Letterbox(256, resample=Image.BICUBIC)]),
        "resize_bicubic": T.Compose([T.Resize(256, T.InterpolationMode.BICUBIC), T.CenterCrop(224)]),
        "squash_bicubic": T.Compose([T.Resize((200, 160), T.InterpolationMode.BICUBIC)]),
        "eval_center_bicubic": T.Compose([
            T.Resize(256, T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)]),
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
