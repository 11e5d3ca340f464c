#!/usr/bin/python3
"""Oracle for test/models-zoo-a.test.ts: eval logits and one training step's gradients of the
torchvision twins of goodsrec models, from the same weights.

    /usr/bin/python3 test/oracle/zoo_a_oracle.py OUT_DIR THREADS

Twins: resnet101 and resnext50_32x4d (torchvision 1.13 as is); seresnext50_32x4d (torchvision's
resnext50_32x4d with torchvision.ops.SqueezeExcitation - fc1/fc2 1x1 convs with bias, ReLU,
sigmoid, the same computation and names as timm's SEModule - after bn3 of every bottleneck, as
timm's resnet.py places `se`); inception_resnet_v2 (timm's InceptionResnetV2 written out below
with its module names, since timm is not installed); resnet50_cbam_authors and resnet50_bam_authors
(torchvision's resnet50 with the CBAM/BAM authors' modules and names, Jongchan/attention-module:
CBAM `cbam` after bn3 of every bottleneck, BAM `bam1..3` after layer1-3 with their product
combination) - goodsrec loads the first through its checkpoint filter, the second with combine 'product'.
For each NAME writes NAME.weights.safetensors (random init, perturbed BN affine and statistics)
and NAME.result.safetensors: x, y, eval.logits, loss (train mode, cross entropy) and grad.<param>.
result.json lists the twins, their input shapes and losses.

Everything after the weights is computed in float64 (the float32 weights and input promoted), so
the test's tolerance holds on any CPU, whatever kernels its BLAS/oneDNN picks: float32 gradients of
these nets (train-mode BatchNorm at batch 2) move by up to 4e-2 relative between CPU kinds.

Negative controls: a NAME of the form BASE~WRONG writes only NAME.result.safetensors, computed
from BASE's weights with a deliberately wrong architecture (see WRONG below); the test checks
that goodsrec's BASE model does NOT match it.
"""
import json
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models.resnet import Bottleneck  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nn_oracle import write_safetensors  # noqa: E402


# --- SE-ResNeXt: timm's `se` slot in torchvision's bottleneck ------------------------------
def se_bottleneck_forward(self, x):
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    out = self.se(out)
    if self.downsample is not None:
        identity = self.downsample(x)
    out += identity
    return self.relu(out)


def seresnext50_32x4d(num_classes):
    model = torchvision.models.resnext50_32x4d(num_classes=num_classes)
    for m in model.modules():
        if isinstance(m, Bottleneck):
            c = m.bn3.num_features
            m.se = torchvision.ops.SqueezeExcitation(c, c // 16)
            m.forward = se_bottleneck_forward.__get__(m)
    return model


# --- CBAM and BAM as the authors wrote them ---------------------------------------------
class AuthorsChannelGate(nn.Module):
    def __init__(self, c, r=16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(c, c // r), nn.ReLU(), nn.Linear(c // r, c))

    def forward(self, x):
        k = (x.size(2), x.size(3))
        att = self.mlp(nn.functional.avg_pool2d(x, k, stride=k)) + self.mlp(nn.functional.max_pool2d(x, k, stride=k))
        return x * torch.sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)


class AuthorsBasicConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x):
        return self.bn(self.conv(x))


class AuthorsSpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.spatial = AuthorsBasicConv()

    def forward(self, x):
        pooled = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class AuthorsCBAM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ChannelGate = AuthorsChannelGate(c)
        self.SpatialGate = AuthorsSpatialGate()

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))


def cbam_bottleneck_forward(self, x):
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    if self.downsample is not None:
        identity = self.downsample(x)
    out = self.cbam(out)
    out += identity
    return self.relu(out)


def resnet50_cbam_authors(num_classes):
    model = torchvision.models.resnet50(num_classes=num_classes)
    for m in model.modules():
        if isinstance(m, Bottleneck):
            m.cbam = AuthorsCBAM(m.bn3.num_features)
            m.forward = cbam_bottleneck_forward.__get__(m)
    return model


class AuthorsBAM(nn.Module):
    def __init__(self, c, r=16, d=4):
        super().__init__()
        self.channel_att = nn.Module()
        gc = nn.Sequential()
        gc.add_module("flatten", nn.Flatten())
        gc.add_module("gate_c_fc_0", nn.Linear(c, c // r))
        gc.add_module("gate_c_bn_1", nn.BatchNorm1d(c // r))
        gc.add_module("gate_c_relu_1", nn.ReLU())
        gc.add_module("gate_c_fc_final", nn.Linear(c // r, c))
        self.channel_att.gate_c = gc
        self.spatial_att = nn.Module()
        gs = nn.Sequential()
        gs.add_module("gate_s_conv_reduce0", nn.Conv2d(c, c // r, 1))
        gs.add_module("gate_s_bn_reduce0", nn.BatchNorm2d(c // r))
        gs.add_module("gate_s_relu_reduce0", nn.ReLU())
        for i in range(2):
            gs.add_module("gate_s_conv_di_%d" % i, nn.Conv2d(c // r, c // r, 3, padding=d, dilation=d))
            gs.add_module("gate_s_bn_di_%d" % i, nn.BatchNorm2d(c // r))
            gs.add_module("gate_s_relu_di_%d" % i, nn.ReLU())
        gs.add_module("gate_s_conv_final", nn.Conv2d(c // r, 1, 1))
        self.spatial_att.gate_s = gs

    def forward(self, x):
        k = x.size(2)
        ch = self.channel_att.gate_c(nn.functional.avg_pool2d(x, k, stride=k)).unsqueeze(2).unsqueeze(3).expand_as(x)
        sp = self.spatial_att.gate_s(x).expand_as(x)
        return (1 + torch.sigmoid(ch * sp)) * x


def resnet50_bam_authors(num_classes):
    model = torchvision.models.resnet50(num_classes=num_classes)
    model.bam1, model.bam2, model.bam3 = AuthorsBAM(256), AuthorsBAM(512), AuthorsBAM(1024)

    def forward(x):
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        x = model.bam1(model.layer1(x))
        x = model.bam2(model.layer2(x))
        x = model.bam3(model.layer3(x))
        x = model.layer4(x)
        return model.fc(torch.flatten(model.avgpool(x), 1))

    model.forward = forward
    return model


# --- Inception-ResNet-v2 with timm's names ----------------------------------------------
class BasicConv2d(nn.Module):
    def __init__(self, i, o, k, s=1, p=0):
        super().__init__()
        self.conv = nn.Conv2d(i, o, k, stride=s, padding=p, bias=False)
        self.bn = nn.BatchNorm2d(o, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Branches(nn.Module):
    def forward(self, x):
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], 1)


class Mixed5b(Branches):
    n = 4

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(192, 96, 1)
        self.branch1 = nn.Sequential(BasicConv2d(192, 48, 1), BasicConv2d(48, 64, 5, 1, 2))
        self.branch2 = nn.Sequential(BasicConv2d(192, 64, 1), BasicConv2d(64, 96, 3, 1, 1), BasicConv2d(96, 96, 3, 1, 1))
        self.branch3 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), BasicConv2d(192, 64, 1))


class Mixed6a(Branches):
    n = 3

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(320, 384, 3, 2)
        self.branch1 = nn.Sequential(BasicConv2d(320, 256, 1), BasicConv2d(256, 256, 3, 1, 1), BasicConv2d(256, 384, 3, 2))
        self.branch2 = nn.MaxPool2d(3, stride=2)


class Mixed7a(Branches):
    n = 4

    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(1088, 256, 1), BasicConv2d(256, 384, 3, 2))
        self.branch1 = nn.Sequential(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, 2))
        self.branch2 = nn.Sequential(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, 1, 1), BasicConv2d(288, 320, 3, 2))
        self.branch3 = nn.MaxPool2d(3, stride=2)


class Residual(Branches):
    def forward(self, x):
        out = self.conv2d(super().forward(x)) * self.scale + x
        return out if self.no_relu else torch.relu(out)


class Block35(Residual):
    n = 3

    def __init__(self, scale):
        super().__init__()
        self.scale, self.no_relu = scale, False
        self.branch0 = BasicConv2d(320, 32, 1)
        self.branch1 = nn.Sequential(BasicConv2d(320, 32, 1), BasicConv2d(32, 32, 3, 1, 1))
        self.branch2 = nn.Sequential(BasicConv2d(320, 32, 1), BasicConv2d(32, 48, 3, 1, 1), BasicConv2d(48, 64, 3, 1, 1))
        self.conv2d = nn.Conv2d(128, 320, 1)


class Block17(Residual):
    n = 2

    def __init__(self, scale):
        super().__init__()
        self.scale, self.no_relu = scale, False
        self.branch0 = BasicConv2d(1088, 192, 1)
        self.branch1 = nn.Sequential(BasicConv2d(1088, 128, 1), BasicConv2d(128, 160, (1, 7), 1, (0, 3)), BasicConv2d(160, 192, (7, 1), 1, (3, 0)))
        self.conv2d = nn.Conv2d(384, 1088, 1)


class Block8(Residual):
    n = 2

    def __init__(self, scale=1.0, no_relu=False):
        super().__init__()
        self.scale, self.no_relu = scale, no_relu
        self.branch0 = BasicConv2d(2080, 192, 1)
        self.branch1 = nn.Sequential(BasicConv2d(2080, 192, 1), BasicConv2d(192, 224, (1, 3), 1, (0, 1)), BasicConv2d(224, 256, (3, 1), 1, (1, 0)))
        self.conv2d = nn.Conv2d(448, 2080, 1)


class InceptionResnetV2(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32, 3, 2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = Mixed5b()
        self.repeat = nn.Sequential(*[Block35(0.17) for _ in range(10)])
        self.mixed_6a = Mixed6a()
        self.repeat_1 = nn.Sequential(*[Block17(0.10) for _ in range(20)])
        self.mixed_7a = Mixed7a()
        self.repeat_2 = nn.Sequential(*[Block8(0.20) for _ in range(9)])
        self.block8 = Block8(no_relu=True)
        self.conv2d_7b = BasicConv2d(2080, 1536, 1)
        self.classif = nn.Linear(1536, num_classes)

    def forward(self, x):
        for m in list(self.children())[:-1]:
            x = m(x)
        return self.classif(x.mean((2, 3)))


TWINS = {
    "resnet101": (lambda: torchvision.models.resnet101(num_classes=10), 64),
    "resnext50_32x4d": (lambda: torchvision.models.resnext50_32x4d(num_classes=10), 64),
    "seresnext50_32x4d": (lambda: seresnext50_32x4d(10), 64),
    "inception_resnet_v2": (lambda: InceptionResnetV2(10), 139),
    "resnet50_cbam_authors": (lambda: resnet50_cbam_authors(10), 64),
    "resnet50_bam_authors": (lambda: resnet50_bam_authors(10), 64),
}


# --- deliberately wrong variants (negative controls) -------------------------------------
def _cbam_channel_after_spatial(model):
    for m in model.modules():
        if isinstance(m, AuthorsCBAM):
            m.forward = (lambda mm: lambda x: mm.ChannelGate(mm.SpatialGate(x)))(m)


def _cbam_mean_max(model):
    def forward(self, x):
        pooled = torch.cat((torch.mean(x, 1).unsqueeze(1), torch.max(x, 1)[0].unsqueeze(1)), dim=1)
        return x * torch.sigmoid(self.spatial(pooled))

    for m in model.modules():
        if isinstance(m, AuthorsSpatialGate):
            m.forward = forward.__get__(m)


def _bam_no_sigmoid(model):
    def forward(self, x):
        k = x.size(2)
        ch = self.channel_att.gate_c(nn.functional.avg_pool2d(x, k, stride=k)).unsqueeze(2).unsqueeze(3).expand_as(x)
        return (1 + ch * self.spatial_att.gate_s(x).expand_as(x)) * x

    for m in model.modules():
        if isinstance(m, AuthorsBAM):
            m.forward = forward.__get__(m)


def _no_residual(model):
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)))

    block = model.layer3[1]
    block.forward = forward.__get__(block)


def _transposed_stem(model):
    conv = model.conv1
    conv.forward = lambda x: nn.functional.conv2d(x, conv.weight.transpose(2, 3), None, conv.stride, conv.padding)


def _se_no_sigmoid(model):
    for m in model.modules():
        if isinstance(m, torchvision.ops.SqueezeExcitation):
            m.scale_activation = nn.Identity()


WRONG = {
    "cbam_order": _cbam_channel_after_spatial,  # spatial gate before the channel gate
    "cbam_mean_max": _cbam_mean_max,  # [mean, max] into the spatial conv instead of [max, mean]
    "bam_no_sigmoid": _bam_no_sigmoid,
    "no_residual": _no_residual,  # layer3.1 without its identity path
    "transposed_stem": _transposed_stem,  # the 7x7 stem kernel transposed
    "se_no_sigmoid": _se_no_sigmoid,
}


def main():
    out_dir, threads = sys.argv[1], int(sys.argv[2])
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(TWINS)
    torch.set_num_threads(threads)
    info = {}
    for name in names:
        base, _, wrong = name.partition("~")
        make, size = TWINS[base]
        i = list(TWINS).index(base)  # a variant gets its base's seeds, hence its weights and input
        torch.manual_seed(i)
        model = make()
        g = torch.Generator().manual_seed(100 + i)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    c = m.num_features
                    m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                    m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        if not wrong:
            write_safetensors(f"{out_dir}/{name}.weights.safetensors", model.state_dict())
        else:
            WRONG[wrong](model)
        model.double()
        x = torch.randn(2, 3, size, size, generator=g).double()
        y = torch.randint(0, 10, (2,), generator=g)
        result = {"x": x, "y": y}
        model.eval()
        with torch.no_grad():
            result["eval.logits"] = model(x)
        model.train()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        result["loss"] = loss.detach().reshape(1)
        for n, p in model.named_parameters():
            result["grad." + n] = p.grad
        write_safetensors(f"{out_dir}/{name}.result.safetensors", result)
        info[name] = {"size": size, "loss": loss.item(), "params": sum(p.numel() for p in model.parameters())}
        del model
    with open(f"{out_dir}/result.json", "w") as f:
        json.dump({"twins": info, "torch": torch.__version__}, f)


if __name__ == "__main__":
    main()
