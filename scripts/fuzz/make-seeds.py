#!/usr/bin/python3
"""Writes the small seed files of the fuzzer into test/fuzz/seeds/ (committed; rerun only to change them).
Images come from two Grocery Store photos, downscaled; weights from torch.save (Debian torch 1.13).
Usage: /usr/bin/python3 scripts/fuzz/make-seeds.py"""
import io, json, os, struct, sys
from PIL import Image
import torch

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
out = os.path.join(root, 'test', 'fuzz', 'seeds')
ds = os.path.join(root, '..', 'shared', 'datasets', 'grocery-store', 'dataset')
os.makedirs(out, exist_ok=True)
photos = [os.path.join(ds, 'train/Vegetables/Asparagus/Asparagus_004.jpg'),
          os.path.join(ds, 'train/Vegetables/Asparagus/Asparagus_012.jpg')]
a = Image.open(photos[0]).convert('RGB').resize((40, 40))
b = Image.open(photos[1]).convert('RGB').resize((24, 32))

def exif_orientation(o):
    e = Image.Exif()
    e[0x0112] = o
    return e.tobytes()

a.save(os.path.join(out, 'photo-exif6.jpg'), quality=80, exif=exif_orientation(6))
b.save(os.path.join(out, 'photo-progressive-444.jpg'), quality=90, progressive=True, subsampling=0)
b.convert('L').save(os.path.join(out, 'photo-gray.jpg'), quality=70)
a.resize((16, 12)).save(os.path.join(out, 'rgb.png'))
rgba = a.resize((10, 10)).convert('RGBA'); rgba.putalpha(128); rgba.save(os.path.join(out, 'rgba-interlaced.png'), interlace=1)
a.resize((12, 8)).convert('P', palette=Image.ADAPTIVE, colors=8).save(os.path.join(out, 'palette.png'))
Image.new('I;16', (6, 5), 40000).save(os.path.join(out, 'gray16.png'))

torch.manual_seed(0)
conv = torch.randn(2, 1, 3, 3)
sd = {'conv.weight': conv, 'bn.running_mean': torch.zeros(2), 'bn.num_batches_tracked': torch.tensor(3),
      'fc.weight': torch.randn(3, 2).t(), 'fc.bias': torch.randn(3).half(), 'tied': conv}
torch.save(sd, os.path.join(out, 'state-dict.pth'))
torch.save({'model': {'w': torch.arange(6, dtype=torch.int64).view(2, 3)[:, 1:]}, 'epoch': 3, 'name': 'x'},
           os.path.join(out, 'checkpoint-nested.pth'))

def safetensors(path, tensors, meta):
    header, blobs, off = {'__metadata__': meta}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [off, off + len(data)]}
        blobs.append(data); off += len(data)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))

safetensors(os.path.join(out, 'weights.safetensors'), {
    'conv.weight': ('F32', [2, 1, 3, 3], conv.numpy().tobytes()),
    'bn.num_batches_tracked': ('I64', [], struct.pack('<q', 3)),
    'fc.bias': ('F16', [3], torch.randn(3).half().numpy().tobytes()),
    'emb': ('BF16', [2, 2], torch.randn(2, 2).bfloat16().view(torch.int16).numpy().tobytes()),
    'empty': ('F32', [0, 4], b''),
}, {'format': 'pt'})
print('seeds in', out)
