#!/usr/bin/python3
"""torchvision baseline for `npm run bench -- data`: the same pipeline as goodsrec's bench on the
grocery-store train split (ImageFolder-equivalent dataset over train.txt, PIL loader), DataLoader with
num_workers workers, persistent workers, batch 64. Prints one JSON line per epoch: {"epoch", "images", "seconds"}.

Usage: /usr/bin/python3 bench/data_torchvision.py DATASET_DIR EPOCHS WORKERS AUGMENT MEAN_JSON STD_JSON
(AUGMENT: '' or autoaugment; mean/std come from goodsrec's run config, their one source.)
"""
import json
import os
import sys
import time

import torch
import torchvision.transforms as T
from PIL import Image

class Letterbox:
    """Structure-retention resize as the trainer does it: pad to a black square (RandomResizedCrop resizes)."""

    def __call__(self, im):
        w, h = im.size
        s = max(w, h)
        canvas = Image.new("RGB", (s, s), (0, 0, 0))
        canvas.paste(im, ((s - w) // 2, (s - h) // 2))
        return canvas


class ManifestImageFolder(torch.utils.data.Dataset):
    """What torchvision's ImageFolder does (pil_loader + transform), over a train.txt manifest."""

    def __init__(self, root, split, transform):
        d = os.path.join(root, "dataset")
        self.items = []
        for line in open(os.path.join(d, f"{split}.txt")):
            if line.strip():
                p, c = [x.strip() for x in line.split(",")[:2]]
                self.items.append((os.path.join(d, p), int(c)))
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        p, c = self.items[i]
        with open(p, "rb") as f:
            im = Image.open(f).convert("RGB")
        return self.transform(im), c


def main():
    root, epochs, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    augment, mean, std = sys.argv[4], json.loads(sys.argv[5]), json.loads(sys.argv[6])
    torch.set_num_threads(1)
    extra = [T.AutoAugment(T.AutoAugmentPolicy.IMAGENET)] if augment == "autoaugment" else []
    # The trainer's op order (src/run/pipelines.ts trainPipeline): flip, ColorJitter, then AutoAugment.
    tf = T.Compose([Letterbox(), T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4), *extra,
                    T.ToTensor(), T.Normalize(mean, std)])
    ds = ManifestImageFolder(root, "train", tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers, persistent_workers=workers > 0, drop_last=False)
    for e in range(epochs):
        t = time.perf_counter()
        n = 0
        for x, y in dl:
            n += x.shape[0]
        print(json.dumps({"epoch": e, "images": n, "seconds": time.perf_counter() - t}), flush=True)


if __name__ == "__main__":
    main()
