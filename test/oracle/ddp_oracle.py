# PyTorch DDP reference for test/dist-parity.test.ts: 2 processes on Gloo (loopback), a small
# float64 CNN, the inputs and initial weights the test wrote, SGD with momentum for k steps; then
# the same with SyncBatchNorm (nn.SyncBatchNorm.convert_sync_batchnorm, run on CPU: see below).
# Usage: ddp_oracle.py <dir> <port> <steps>; writes the shared inputs <dir>/data.safetensors and
# <dir>/init.safetensors, then <dir>/torch-rank<r>.safetensors and <dir>/torch-syncbn-rank<r>.safetensors
# (final states) and <dir>/result.json (per-rank losses: losses, syncbn_losses).
import json, os, sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.distributed.nn.functional as dist_fn
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nn_oracle import write_safetensors  # noqa: E402

N, STEPS_DEFAULT = 24, 3


def model():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).double()


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """nn.SyncBatchNorm's semantics on CPU. torch 1.13 cannot run nn.SyncBatchNorm on CPU (its forward
    requires CUDA input, batch_norm_stats has no CPU kernel, and DDP refuses SyncBatchNorm in a CPU module),
    so this is its documented math: in training, the mean and biased variance of the global batch from a
    differentiable all-reduce (torch.distributed.nn; its backward all-reduces the gradient, as SyncBatchNorm's
    backward all-reduces sum_dy and sum_dy_xmu) of per-channel sum, sum of squares and count; running
    statistics updated with the unbiased global variance; eval mode is BatchNorm on the running statistics."""

    def forward(self, x):
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        self.num_batches_tracked.add_(1)
        c = x.size(1)
        count = torch.full((1,), x.numel() // c, dtype=x.dtype)
        total = dist_fn.all_reduce(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))
        n = total[2 * c]
        mean = total[:c] / n
        var = total[c:2 * c] / n - mean * mean
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * n / (n - 1))
        shape = (1, c, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        return y * self.weight.view(shape) + self.bias.view(shape)


def sync_bn_model():
    m = nn.SyncBatchNorm.convert_sync_batchnorm(model())
    for layer in m.modules():
        if isinstance(layer, nn.SyncBatchNorm):
            layer.__class__ = CpuSyncBatchNorm  # same parameters and buffers, CPU math
    return m


def inputs():
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(N, 3, 12, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (N,), generator=g)
    torch.manual_seed(99)
    init = model().state_dict()
    return x, y, init


def worker(rank, world, d, port, steps, q):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    x, y, init = inputs()
    res = {}
    for name, make in (('', model), ('syncbn-', sync_bn_model)):
        m = make()
        m.load_state_dict(init)
        ddp = nn.parallel.DistributedDataParallel(m)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        sampler = DistributedSampler(range(len(y)), num_replicas=world, rank=rank, shuffle=False)
        order = list(sampler)
        per = len(order) // steps
        losses = []
        for s in range(steps):
            idx = torch.tensor(order[s * per:(s + 1) * per])
            loss = nn.functional.cross_entropy(ddp(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        write_safetensors(os.path.join(d, f'torch-{name}rank{rank}.safetensors'), m.state_dict())
        res[name] = losses
    q.put((rank, res))
    dist.destroy_process_group()


if __name__ == '__main__':
    d, port, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    x, y, init = inputs()
    write_safetensors(os.path.join(d, 'data.safetensors'), {'x': x, 'y': y})
    write_safetensors(os.path.join(d, 'init.safetensors'), init)
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    ps = [ctx.Process(target=worker, args=(r, 2, d, port, steps, q)) for r in range(2)]
    for p in ps: p.start()
    res = dict(q.get(timeout=120) for _ in ps)
    for p in ps: p.join()
    json.dump({'losses': [res[0][''], res[1]['']], 'syncbn_losses': [res[0]['syncbn-'], res[1]['syncbn-']]},
              open(os.path.join(d, 'result.json'), 'w'))
