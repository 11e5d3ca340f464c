# Reference for the ArcFace / CosFace losses (insightface's ArcMarginProduct and
# MarginCosineProduct) in float64: reads cases as JSON on stdin, writes the loss
# and the gradients of the embeddings and class centres as JSON on stdout.
import json, math, sys
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
out = []
for c in json.load(sys.stdin):
    x = torch.tensor(c['x'], dtype=torch.float64).reshape(c['n'], c['d']).requires_grad_(True)
    w = torch.tensor(c['w'], dtype=torch.float64).reshape(c['classes'], c['d']).requires_grad_(True)
    label = torch.tensor(c['labels'], dtype=torch.int64)
    s, m = c['scale'], c['margin']
    cosine = F.linear(F.normalize(x), F.normalize(w))
    if c['type'] == 'arcface':
        sine = torch.sqrt((1.0 - torch.pow(cosine, 2)).clamp(0, 1))
        phi = cosine * math.cos(m) - sine * math.sin(m)
        if c['easy']:
            phi = torch.where(cosine > 0, phi, cosine)
        else:
            phi = torch.where(cosine > math.cos(math.pi - m), phi, cosine - math.sin(math.pi - m) * m)
    else:
        phi = cosine - m
    one_hot = torch.zeros_like(cosine).scatter_(1, label.view(-1, 1), 1)
    output = ((one_hot * phi) + ((1.0 - one_hot) * cosine)) * s
    loss = F.cross_entropy(output, label, label_smoothing=c['smoothing'])
    loss.backward()
    out.append({'loss': loss.item(), 'gx': x.grad.flatten().tolist(), 'gw': w.grad.flatten().tolist(),
                 'fallback': int(((cosine <= math.cos(math.pi - m)) & (one_hot > 0)).sum().item())})
json.dump(out, sys.stdout)
