#!/usr/bin/python3
"""torchvision baseline for `npm run bench -- data`: the same pipeline as goodsrec's bench on the
grocery-store train split (ImageFolder-equivalent dataset over train.txt, PIL loader), DataLoader with
num_workers workers, persistent workers, batch 64. Prints one JSON line per epoch: {"epoch", "images", "seconds"}.

Usage: /usr/bin/python3 bench/data_torchvision.py DATASET_DIR EPOCHS WORKERS [autoaugment]
"""
import json
import os
import sys
import time

import torch
import torchvision.transforms as T
from PIL import Image

MEAN = [0.4716, 0.425, 0.354]
STD = [0.2178, 0.2079, 0.1935]


class Letterbox:
    """Structure-retention resize: pad to square with black, resize."""

    def __init__(self, size):
        self.size = size

    def __call__(self, im):
        w, h = im.size
        s = max(w, h)
        canvas = Image.new("RGB", (s, s), (0, 0, 0))
        canvas.paste(im, ((s - w) // 2, (s - h) // 2))
        return canvas.resize((self.size, self.size), Image.BILINEAR)


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
    augment = sys.argv[4] if len(sys.argv) > 4 else ""
    torch.set_num_threads(1)
    extra = [T.AutoAugment(T.AutoAugmentPolicy.IMAGENET)] if augment == "autoaugment" else []
    tf = T.Compose([Letterbox(224), T.RandomResizedCrop(224), T.RandomHorizontalFlip(), *extra, T.ColorJitter(0.4, 0.4, 0.4), T.ToTensor(), T.Normalize(MEAN, STD)])
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
