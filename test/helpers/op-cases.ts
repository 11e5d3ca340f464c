// The op cases of issue 2, shared by test/tensor-ops.test.ts (goodsrec against PyTorch on the CPU) and
// bench/device-check.ts (the same cases on a GPU against the CPU in float64, with the same bounds).
import * as T from '../../src/tensor/index.js';
import { F } from '../../src/tensor/index.js';
import { BF16_TOL, F16_TOL, type OpCase, type InputSpec } from './op-oracle.js';

export const f = (shape: number[], extra: Partial<InputSpec> = {}): InputSpec => ({ shape, ...extra });
const int = (shape: number[], lo: number, hi: number): InputSpec => ({ shape, dtype: 'int64', gen: { int: [lo, hi] } });
const img = [2, 6, 9, 11];

export const OP_CASES: OpCase[] = [
  // --- arithmetic with broadcasting, views -------------------------------------------------
  {
    name: 'add broadcast alpha',
    inputs: [f([3, 4, 5]), f([4, 1])],
    js: ([a, b]) => a!.add(b!, 0.5),
    py: 'torch.add(x[0], x[1], alpha=0.5)',
  },
  { name: 'add scalar', inputs: [f([4, 5])], js: ([a]) => a!.add(2.5), py: 'x[0] + 2.5' },
  {
    name: 'sub transposed',
    inputs: [f([5, 4], { layout: 'T' }), f([5, 4])],
    js: ([a, b]) => a!.sub(b!, 2),
    py: 'torch.sub(x[0], x[1], alpha=2)',
  },
  { name: 'rsub scalar', inputs: [f([6])], js: ([a]) => a!.rsub(1), py: '1 - x[0]' },
  {
    name: 'mul strided slice',
    inputs: [f([3, 6], { layout: 'slice' }), f([6])],
    js: ([a, b]) => a!.mul(b!),
    py: 'x[0] * x[1]',
  },
  { name: 'mul scalar', inputs: [f([3, 6])], js: ([a]) => a!.mul(-1.5), py: 'x[0] * -1.5' },
  {
    name: 'div broadcast',
    inputs: [f([2, 3, 4]), f([2, 1, 4], { gen: 'pos' })],
    js: ([a, b]) => a!.div(b!),
    py: 'x[0] / x[1]',
  },
  { name: 'div scalar', inputs: [f([7])], js: ([a]) => a!.div(3), py: 'x[0] / 3' },
  { name: 'pow tensor', inputs: [f([3, 4], { gen: 'pos' }), f([4])], js: ([a, b]) => a!.pow(b!), py: 'x[0] ** x[1]' },
  { name: 'pow scalar', inputs: [f([3, 4])], js: ([a]) => a!.pow(3), py: 'x[0] ** 3' },
  {
    name: 'maximum minimum',
    inputs: [f([3, 4]), f([1, 4])],
    js: ([a, b]) => [a!.maximum(b!), a!.minimum(b!)],
    py: '(torch.maximum(x[0], x[1]), torch.minimum(x[0], x[1]))',
  },
  {
    name: 'remainder floorDivide',
    inputs: [f([12], { gen: 'wide' }), f([12], { gen: 'pos' })],
    js: ([a, b]) => [a!.remainder(b!), a!.floorDivide(b!)],
    py: '(torch.remainder(x[0], x[1]), torch.div(x[0], x[1], rounding_mode="floor"))',
  },
  {
    name: 'unary math',
    inputs: [f([4, 5])],
    js: ([a]) => [
      a!.neg(),
      a!.abs(),
      a!.exp(),
      a!.expm1(),
      a!.square(),
      a!.sin(),
      a!.cos(),
      a!.erf(),
      a!.sign(),
      a!.floor(),
      a!.ceil(),
      a!.round(),
      a!.trunc(),
    ],
    py: '(-x[0], x[0].abs(), x[0].exp(), x[0].expm1(), x[0].square(), x[0].sin(), x[0].cos(), x[0].erf(), x[0].sign(), x[0].floor(), x[0].ceil(), x[0].round(), x[0].trunc())',
  },
  {
    name: 'unary math on positives',
    inputs: [f([4, 5], { gen: 'pos' })],
    js: ([a]) => [a!.log(), a!.log1p(), a!.log2(), a!.sqrt(), a!.rsqrt(), a!.reciprocal()],
    py: '(x[0].log(), x[0].log1p(), x[0].log2(), x[0].sqrt(), x[0].rsqrt(), x[0].reciprocal())',
  },
  { name: 'lerp', inputs: [f([3, 4]), f([3, 4])], js: ([a, b]) => a!.lerp(b!, 0.3), py: 'torch.lerp(x[0], x[1], 0.3)' },
  {
    name: 'add bfloat16',
    inputs: [f([4, 8], { dtype: 'bfloat16' }), f([8], { dtype: 'bfloat16' })],
    js: ([a, b]) => a!.add(b!).mul(a!),
    py: '(x[0] + x[1]) * x[0]',
    tol: BF16_TOL,
  },
  {
    name: 'mul float16',
    inputs: [f([4, 8], { dtype: 'float16' }), f([4, 8], { dtype: 'float16' })],
    js: ([a, b]) => a!.mul(b!).add(1),
    py: 'x[0] * x[1] + 1',
    tol: F16_TOL,
  },
  {
    name: 'float64 arithmetic',
    inputs: [f([3, 3], { dtype: 'float64' }), f([3, 1], { dtype: 'float64' })],
    js: ([a, b]) => a!.mul(b!).sub(a!.exp()),
    py: 'x[0] * x[1] - x[0].exp()',
  },

  // --- comparisons and logic ---------------------------------------------------------------
  {
    name: 'comparisons tensor',
    inputs: [
      f([3, 5], { gen: { int: [0, 3] }, dtype: 'float32', grad: false }),
      f([5], { gen: { int: [0, 3] }, dtype: 'float32', grad: false }),
    ],
    js: ([a, b]) => [a!.eq(b!), a!.ne(b!), a!.lt(b!), a!.le(b!), a!.gt(b!), a!.ge(b!)],
    py: '(x[0] == x[1], x[0] != x[1], x[0] < x[1], x[0] <= x[1], x[0] > x[1], x[0] >= x[1])',
  },
  {
    name: 'comparisons scalar',
    inputs: [int([3, 5], 0, 4)],
    js: ([a]) => [a!.eq(2), a!.ne(2), a!.lt(2), a!.le(2), a!.gt(2), a!.ge(2)],
    py: '(x[0] == 2, x[0] != 2, x[0] < 2, x[0] <= 2, x[0] > 2, x[0] >= 2)',
  },
  {
    name: 'logical ops',
    inputs: [f([4, 6], { gen: 'mask' }), f([6], { gen: 'mask' })],
    js: ([a, b]) => [a!.logicalAnd(b!), a!.logicalOr(b!), a!.logicalXor(b!), a!.logicalNot()],
    py: '(x[0].logical_and(x[1]), x[0].logical_or(x[1]), x[0].logical_xor(x[1]), x[0].logical_not())',
  },
  {
    name: 'isnan isinf isfinite',
    inputs: [f([6])],
    js: ([a]) => {
      const y = a!.log();
      return [y.isnan(), y.isinf(), y.isfinite()];
    },
    py: '(x[0].log().isnan(), x[0].log().isinf(), x[0].log().isfinite())',
  },

  // --- where / masked_fill / clamp -----------------------------------------------------------
  {
    name: 'where broadcast',
    inputs: [f([3, 4], { gen: 'mask' }), f([3, 4]), f([4])],
    js: ([c, a, b]) => T.where(c!, a!, b!),
    py: 'torch.where(x[0], x[1], x[2])',
  },
  {
    name: 'maskedFill',
    inputs: [f([3, 4]), f([4], { gen: 'mask' })],
    js: ([a, m]) => a!.maskedFill(m!, -7),
    py: 'x[0].masked_fill(x[1], -7)',
  },
  { name: 'clamp both', inputs: [f([5, 5], { gen: 'wide' })], js: ([a]) => a!.clamp(-1, 2), py: 'x[0].clamp(-1, 2)' },
  {
    name: 'clamp min max only',
    inputs: [f([5, 5])],
    js: ([a]) => [a!.clampMin(0.1), a!.clampMax(-0.2)],
    py: '(x[0].clamp(min=0.1), x[0].clamp(max=-0.2))',
  },

  // --- matrix products --------------------------------------------------------------------------
  {
    name: 'matmul broadcast batch',
    inputs: [f([2, 3, 4, 5]), f([5, 6])],
    js: ([a, b]) => a!.matmul(b!),
    py: 'x[0] @ x[1]',
  },
  {
    name: 'matmul transposed operands',
    inputs: [f([4, 5], { layout: 'T' }), f([5, 3], { layout: 'T' })],
    js: ([a, b]) => a!.matmul(b!),
    py: 'x[0] @ x[1]',
  },
  { name: 'matmul vector', inputs: [f([3, 4]), f([4])], js: ([a, b]) => a!.matmul(b!), py: 'x[0] @ x[1]' },
  { name: 'mm', inputs: [f([4, 7]), f([7, 3])], js: ([a, b]) => a!.mm(b!), py: 'x[0].mm(x[1])' },
  {
    name: 'bmm',
    inputs: [f([3, 4, 5]), f([3, 5, 2], { layout: 'T' })],
    js: ([a, b]) => a!.bmm(b!),
    py: 'torch.bmm(x[0], x[1])',
  },
  {
    name: 'linear bias',
    inputs: [f([2, 3, 8]), f([5, 8]), f([5])],
    js: ([a, w, b]) => F.linear(a!, w!, b!),
    py: 'F.linear(x[0], x[1], x[2])',
  },
  {
    name: 'linear no bias, strided input',
    inputs: [f([4, 8], { layout: 'slice' }), f([5, 8])],
    js: ([a, w]) => F.linear(a!, w!),
    py: 'F.linear(x[0], x[1])',
  },
  { name: 'outer', inputs: [f([4]), f([3])], js: ([a, b]) => a!.outer(b!), py: 'torch.outer(x[0], x[1])' },
  {
    name: 'einsum batched matmul',
    inputs: [f([2, 3, 4]), f([2, 4, 5])],
    js: ([a, b]) => T.einsum('bij,bjk->bik', a!, b!),
    py: 'torch.einsum("bij,bjk->bik", x[0], x[1])',
  },
  {
    name: 'einsum attention',
    inputs: [f([2, 2, 5, 4]), f([2, 2, 6, 4])],
    js: ([q, k]) => T.einsum('bhqd,bhkd->bhqk', q!, k!),
    py: 'torch.einsum("bhqd,bhkd->bhqk", x[0], x[1])',
  },
  {
    name: 'einsum trace-like reduce',
    inputs: [f([4, 4]), f([4])],
    js: ([a, v]) => T.einsum('ij,j->i', a!, v!),
    py: 'torch.einsum("ij,j->i", x[0], x[1])',
  },
  {
    name: 'matmul bfloat16',
    inputs: [f([4, 16], { dtype: 'bfloat16' }), f([16, 3], { dtype: 'bfloat16' })],
    js: ([a, b]) => a!.matmul(b!),
    py: 'x[0] @ x[1]',
    tol: { rtol: 1.6e-2, atol: 1.6e-2 },
  },

  // --- convolution ---------------------------------------------------------------------------------
  {
    name: 'conv2d 3x3 pad 1 bias',
    inputs: [f(img), f([4, 6, 3, 3]), f([4])],
    js: ([x, w, b]) => F.conv2d(x!, w!, b!, { padding: 1 }),
    py: 'F.conv2d(x[0], x[1], x[2], padding=1)',
  },
  {
    name: 'conv2d stride 2, asymmetric padding',
    inputs: [f(img), f([5, 6, 3, 2])],
    js: ([x, w]) => F.conv2d(x!, w!, null, { stride: 2, padding: [1, 0] }),
    py: 'F.conv2d(x[0], x[1], stride=2, padding=(1, 0))',
  },
  {
    name: 'conv2d dilation 2',
    inputs: [f(img), f([3, 6, 3, 3]), f([3])],
    js: ([x, w, b]) => F.conv2d(x!, w!, b!, { dilation: 2, padding: 2 }),
    py: 'F.conv2d(x[0], x[1], x[2], dilation=2, padding=2)',
  },
  {
    name: 'conv2d groups 2, stride (1,2)',
    inputs: [f(img), f([4, 3, 3, 3]), f([4])],
    js: ([x, w, b]) => F.conv2d(x!, w!, b!, { groups: 2, stride: [1, 2] }),
    py: 'F.conv2d(x[0], x[1], x[2], groups=2, stride=(1, 2))',
  },
  {
    name: 'conv2d depthwise',
    inputs: [f(img), f([6, 1, 3, 3])],
    js: ([x, w]) => F.conv2d(x!, w!, null, { groups: 6, padding: 1 }),
    py: 'F.conv2d(x[0], x[1], groups=6, padding=1)',
  },
  {
    name: 'conv2d channels_last',
    inputs: [f(img, { layout: 'cl' }), f([8, 6, 3, 3], { layout: 'cl' }), f([8])],
    js: ([x, w, b]) => F.conv2d(x!, w!, b!, { padding: 1 }),
    py: 'F.conv2d(x[0], x[1], x[2], padding=1)',
  },
  {
    name: 'conv2d 1x1 on transposed input',
    inputs: [f([2, 4, 5, 7], { layout: 'T' }), f([3, 4, 1, 1])],
    js: ([x, w]) => F.conv2d(x!, w!),
    py: 'F.conv2d(x[0], x[1])',
  },
  {
    name: 'convTranspose2d stride 2',
    inputs: [f([2, 4, 5, 5]), f([4, 3, 3, 3]), f([3])],
    js: ([x, w, b]) => F.convTranspose2d(x!, w!, b!, { stride: 2, padding: 1, outputPadding: 1 }),
    py: 'F.conv_transpose2d(x[0], x[1], x[2], stride=2, padding=1, output_padding=1)',
  },
  {
    name: 'conv2d bfloat16',
    inputs: [f(img, { dtype: 'bfloat16' }), f([4, 6, 3, 3], { dtype: 'bfloat16' })],
    js: ([x, w]) => F.conv2d(x!, w!, null, { padding: 1 }),
    py: 'F.conv2d(x[0], x[1], padding=1)',
    tol: { rtol: 1.6e-2, atol: 1.6e-2 },
  },

  // --- normalisation -----------------------------------------------------------------------------------
  {
    name: 'batchNorm train updates running stats (momentum 0.3)',
    inputs: [f(img), f([6]), f([6]), f([6], { grad: false }), f([6], { gen: 'pos', grad: false })],
    js: ([x, w, b, rm, rv]) => [
      F.batchNorm(x!, rm!, rv!, { weight: w!, bias: b!, training: true, momentum: 0.3 }),
      rm!,
      rv!,
    ],
    py: '(F.batch_norm(x[0], x[3], x[4], x[1], x[2], training=True, momentum=0.3), x[3], x[4])',
  },
  {
    name: 'batchNorm eval uses running stats',
    inputs: [f(img), f([6]), f([6]), f([6], { grad: false }), f([6], { gen: 'pos', grad: false })],
    js: ([x, w, b, rm, rv]) => [F.batchNorm(x!, rm!, rv!, { weight: w!, bias: b!, training: false }), rm!, rv!],
    py: '(F.batch_norm(x[0], x[3], x[4], x[1], x[2], training=False), x[3], x[4])',
  },
  {
    name: 'batchNorm train without running stats, eps',
    inputs: [f([4, 3, 5])],
    js: ([x]) => F.batchNorm(x!, null, null, { training: true, eps: 1e-3 }),
    py: 'F.batch_norm(x[0], None, None, training=True, eps=1e-3)',
  },
  {
    name: 'batchNorm channels_last',
    inputs: [f(img, { layout: 'cl' }), f([6]), f([6]), f([6], { grad: false }), f([6], { gen: 'pos', grad: false })],
    js: ([x, w, b, rm, rv]) => [F.batchNorm(x!, rm!, rv!, { weight: w!, bias: b!, training: true }), rm!, rv!],
    py: '(F.batch_norm(x[0], x[3], x[4], x[1], x[2], training=True), x[3], x[4])',
  },
  {
    name: 'layerNorm last two dims',
    inputs: [f([3, 4, 5]), f([4, 5]), f([4, 5])],
    js: ([x, w, b]) => F.layerNorm(x!, [4, 5], w!, b!),
    py: 'F.layer_norm(x[0], [4, 5], x[1], x[2])',
  },
  {
    name: 'layerNorm no affine, transposed',
    inputs: [f([3, 6, 5], { layout: 'T' })],
    js: ([x]) => F.layerNorm(x!, [5], null, null, 1e-6),
    py: 'F.layer_norm(x[0], [5], eps=1e-6)',
  },
  {
    name: 'groupNorm',
    inputs: [f(img), f([6]), f([6])],
    js: ([x, w, b]) => F.groupNorm(x!, 3, w!, b!),
    py: 'F.group_norm(x[0], 3, x[1], x[2])',
  },

  // --- activations --------------------------------------------------------------------------------
  {
    name: 'activations',
    inputs: [f([4, 25], { gen: 'wide' })],
    js: ([x]) => [
      F.relu(x!),
      F.relu6(x!),
      F.leakyRelu(x!, 0.2),
      F.elu(x!),
      F.silu(x!),
      F.mish(x!),
      F.gelu(x!),
      F.gelu(x!, 'tanh'),
      F.sigmoid(x!),
      F.hardsigmoid(x!),
      F.hardswish(x!),
      F.tanh(x!),
      F.softplus(x!, 2, 10),
      x!.relu(),
      x!.sigmoid(),
      x!.tanh(),
    ],
    py:
      '(F.relu(x[0]), F.relu6(x[0]), F.leaky_relu(x[0], 0.2), F.elu(x[0]), F.silu(x[0]), F.mish(x[0]), F.gelu(x[0]), F.gelu(x[0], approximate="tanh"),' +
      ' torch.sigmoid(x[0]), F.hardsigmoid(x[0]), F.hardswish(x[0]), torch.tanh(x[0]), F.softplus(x[0], 2, 10), x[0].relu(), x[0].sigmoid(), x[0].tanh())',
  },
  {
    name: 'activations channels_last',
    inputs: [f(img, { layout: 'cl', gen: 'wide' })],
    js: ([x]) => [F.relu(x!), F.silu(x!), F.hardswish(x!)],
    py: '(F.relu(x[0]), F.silu(x[0]), F.hardswish(x[0]))',
  },
  {
    name: 'softmax log_softmax',
    inputs: [f([3, 7, 4])],
    js: ([x]) => [F.softmax(x!, 1), F.logSoftmax(x!, -1), x!.softmax(0)],
    py: '(F.softmax(x[0], 1), F.log_softmax(x[0], -1), x[0].softmax(0))',
  },
  {
    name: 'softmax transposed, float64 dtype',
    inputs: [f([5, 6], { layout: 'T' })],
    js: ([x]) => [F.softmax(x!, -1, 'float64'), x!.logSoftmax(0)],
    py: '(F.softmax(x[0], -1, dtype=torch.float64), x[0].log_softmax(0))',
  },

  // --- pooling ----------------------------------------------------------------------------------------
  {
    name: 'maxPool2d k3 s2 p1',
    inputs: [f(img)],
    js: ([x]) => F.maxPool2d(x!, 3, { stride: 2, padding: 1 }),
    py: 'F.max_pool2d(x[0], 3, 2, 1)',
  },
  {
    name: 'maxPool2d ceil_mode, dilation',
    inputs: [f(img)],
    js: ([x]) => F.maxPool2d(x!, 2, { stride: 2, ceilMode: true, dilation: [1, 2] }),
    py: 'F.max_pool2d(x[0], 2, 2, dilation=(1, 2), ceil_mode=True)',
  },
  {
    name: 'maxPool2d channels_last',
    inputs: [f(img, { layout: 'cl' })],
    js: ([x]) => F.maxPool2d(x!, 2),
    py: 'F.max_pool2d(x[0], 2)',
  },
  { name: 'avgPool2d k2', inputs: [f(img)], js: ([x]) => F.avgPool2d(x!, 2), py: 'F.avg_pool2d(x[0], 2)' },
  {
    name: 'avgPool2d pad, exclude pad, ceil',
    inputs: [f(img)],
    js: ([x]) => F.avgPool2d(x!, 3, { stride: 2, padding: 1, countIncludePad: false, ceilMode: true }),
    py: 'F.avg_pool2d(x[0], 3, 2, 1, ceil_mode=True, count_include_pad=False)',
  },
  {
    name: 'avgPool2d divisor override',
    inputs: [f(img)],
    js: ([x]) => F.avgPool2d(x!, [2, 3], { divisorOverride: 4 }),
    py: 'F.avg_pool2d(x[0], (2, 3), divisor_override=4)',
  },
  {
    name: 'adaptiveAvgPool2d 1 and 3x5',
    inputs: [f(img)],
    js: ([x]) => [F.adaptiveAvgPool2d(x!, 1), F.adaptiveAvgPool2d(x!, [3, 5])],
    py: '(F.adaptive_avg_pool2d(x[0], 1), F.adaptive_avg_pool2d(x[0], (3, 5)))',
  },
  {
    name: 'adaptiveAvgPool2d channels_last',
    inputs: [f(img, { layout: 'cl' })],
    js: ([x]) => F.adaptiveAvgPool2d(x!, [2, 2]),
    py: 'F.adaptive_avg_pool2d(x[0], (2, 2))',
  },
  {
    name: 'adaptiveMaxPool2d 2x3',
    inputs: [f(img)],
    js: ([x]) => F.adaptiveMaxPool2d(x!, [2, 3]),
    py: 'F.adaptive_max_pool2d(x[0], (2, 3))',
  },

  // --- shape ops -----------------------------------------------------------------------------------------
  {
    name: 'reshape view',
    inputs: [f([2, 3, 4])],
    js: ([x]) => [x!.reshape([6, 4]), x!.view([4, 6]), x!.reshape([-1])],
    py: '(x[0].reshape(6, 4), x[0].view(4, 6), x[0].reshape(-1))',
  },
  {
    name: 'reshape of transposed',
    inputs: [f([3, 4], { layout: 'T' })],
    js: ([x]) => x!.reshape([2, 6]),
    py: 'x[0].reshape(2, 6)',
  },
  {
    name: 'permute transpose t',
    inputs: [f([2, 3, 4])],
    js: ([x]) => [x!.permute([2, 0, 1]), x!.transpose(0, 2), x!.flatten(1).t()],
    py: '(x[0].permute(2, 0, 1), x[0].transpose(0, 2), x[0].flatten(1).t())',
  },
  {
    name: 'flatten squeeze unsqueeze',
    inputs: [f([2, 1, 3, 1])],
    js: ([x]) => [x!.flatten(), x!.flatten(1, 2), x!.squeeze(), x!.squeeze(1), x!.unsqueeze(0), x!.unsqueeze(-1)],
    py: '(x[0].flatten(), x[0].flatten(1, 2), x[0].squeeze(), x[0].squeeze(1), x[0].unsqueeze(0), x[0].unsqueeze(-1))',
  },
  {
    name: 'expand repeat',
    inputs: [f([3, 1])],
    js: ([x]) => [x!.expand([2, 3, 4]), x!.repeat([2, 3])],
    py: '(x[0].expand(2, 3, 4), x[0].repeat(2, 3))',
  },
  {
    name: 'cat',
    inputs: [f([2, 3]), f([2, 4], { layout: 'T' }), f([2, 1])],
    js: ([a, b, c]) => T.cat([a!, b!, c!], 1),
    py: 'torch.cat([x[0], x[1], x[2]], 1)',
  },
  {
    name: 'stack',
    inputs: [f([3, 4]), f([3, 4], { layout: 'slice' })],
    js: ([a, b]) => [T.stack([a!, b!]), T.stack([a!, b!], -1)],
    py: '(torch.stack([x[0], x[1]]), torch.stack([x[0], x[1]], -1))',
  },
  {
    name: 'split chunk unbind',
    inputs: [f([5, 6])],
    js: ([x]) => [...x!.split(2), ...x!.split([1, 5], 1), ...x!.chunk(3, 1), ...x!.unbind(0)],
    py: '(*x[0].split(2), *x[0].split([1, 5], 1), *x[0].chunk(3, 1), *x[0].unbind(0))',
  },
  {
    name: 'narrow select slice',
    inputs: [f([5, 6])],
    js: ([x]) => [x!.narrow(1, 2, 3), x!.select(0, -1), x!.slice(0, 1, 5, 2)],
    py: '(x[0].narrow(1, 2, 3), x[0].select(0, -1), x[0][1:5:2])',
  },
  {
    name: 'indexSelect',
    inputs: [f([5, 4]), int([7], 0, 5)],
    js: ([x, i]) => [x!.indexSelect(0, i!), x!.index(i!)],
    py: '(x[0].index_select(0, x[1]), x[0][x[1]])',
  },
  {
    name: 'gather',
    inputs: [f([4, 6]), int([4, 3], 0, 6)],
    js: ([x, i]) => x!.gather(1, i!),
    py: 'x[0].gather(1, x[1])',
  },
  {
    name: 'scatter tensor src (permutation index)',
    inputs: [f([4, 5]), { shape: [4, 5], gen: { perm: 1 } }, f([4, 5])],
    js: ([x, i, s]) => x!.scatter(1, i!, s!),
    py: 'x[0].scatter(1, x[1], x[2])',
  },
  {
    name: 'scatter scalar, scatterAdd',
    inputs: [f([3, 5]), int([3, 4], 0, 5), f([3, 4])],
    js: ([x, i, s]) => [x!.scatter(1, i!, 2), x!.scatterAdd(1, i!, s!)],
    py: '(x[0].scatter(1, x[1], 2), x[0].scatter_add(1, x[1], x[2]))',
  },
  {
    name: 'maskedSelect nonzero',
    inputs: [f([4, 5]), f([4, 5], { gen: 'mask' })],
    js: ([x, m]) => [x!.maskedSelect(m!), m!.nonzero()],
    py: '(x[0].masked_select(x[1]), x[1].nonzero())',
  },
  {
    name: 'pad constant, negative crop',
    inputs: [f([2, 3, 4])],
    js: ([x]) => [F.pad(x!, [1, 2]), F.pad(x!, [1, 0, 2, 1], 'constant', 3.5), F.pad(x!, [-1, 1])],
    py: '(F.pad(x[0], (1, 2)), F.pad(x[0], (1, 0, 2, 1), value=3.5), F.pad(x[0], (-1, 1)))',
  },
  {
    name: 'pad reflect replicate',
    inputs: [f([2, 3, 4, 5])],
    js: ([x]) => [F.pad(x!, [1, 2, 2, 1], 'reflect'), F.pad(x!, [2, 0, 1, 3], 'replicate')],
    py: '(F.pad(x[0], (1, 2, 2, 1), mode="reflect"), F.pad(x[0], (2, 0, 1, 3), mode="replicate"))',
  },
  {
    name: 'roll flip',
    inputs: [f([3, 4, 5])],
    js: ([x]) => [x!.roll(2, 1), x!.roll([1, -2], [0, 2]), x!.flip(0), x!.flip([1, 2])],
    py: '(x[0].roll(2, 1), x[0].roll((1, -2), (0, 2)), x[0].flip(0), x[0].flip((1, 2)))',
  },
  { name: 'tril triu', inputs: [f([4, 4])], js: ([x]) => [x!.tril(), x!.triu(1)], py: '(x[0].tril(), x[0].triu(1))' },

  // --- reductions ---------------------------------------------------------------------------------
  {
    name: 'sum mean all and dims',
    inputs: [f([3, 4, 5])],
    js: ([x]) => [x!.sum(), x!.sum([0, 2]), x!.sum(1, true), x!.mean(), x!.mean(-1), x!.mean([0, 1], true)],
    py: '(x[0].sum(), x[0].sum((0, 2)), x[0].sum(1, keepdim=True), x[0].mean(), x[0].mean(-1), x[0].mean((0, 1), keepdim=True))',
  },
  {
    name: 'sum transposed',
    inputs: [f([6, 7], { layout: 'T' })],
    js: ([x]) => [x!.sum(0), x!.sum(1)],
    py: '(x[0].sum(0), x[0].sum(1))',
  },
  {
    name: 'var std',
    inputs: [f([4, 6])],
    js: ([x]) => [
      x!.var(),
      x!.var(1),
      x!.var(0, { unbiased: false, keepdim: true }),
      x!.std(),
      x!.std(1, { unbiased: false }),
    ],
    py: '(x[0].var(), x[0].var(1), x[0].var(0, unbiased=False, keepdim=True), x[0].std(), x[0].std(1, unbiased=False))',
  },
  {
    name: 'max min all and dim',
    inputs: [f([4, 6])],
    js: ([x]) => {
      const a = x!.maxDim(1);
      const b = x!.minDim(0, true);
      return [x!.max(), x!.min(), a.values, a.indices, b.values, b.indices];
    },
    py: '(x[0].max(), x[0].min(), *x[0].max(1), *x[0].min(0, keepdim=True))',
  },
  {
    name: 'amax amin prod',
    inputs: [f([3, 4], { gen: 'pos' })],
    js: ([x]) => [x!.amax(1), x!.amin([0, 1]), x!.prod()],
    py: '(x[0].amax(1), x[0].amin((0, 1)), x[0].prod())',
  },
  {
    name: 'argmax argmin',
    inputs: [f([4, 6])],
    js: ([x]) => [x!.argmax(), x!.argmax(1), x!.argmin(0, true)],
    py: '(x[0].argmax(), x[0].argmax(1), x[0].argmin(0, keepdim=True))',
  },
  {
    name: 'topk',
    inputs: [f([4, 8])],
    js: ([x]) => {
      const a = x!.topk(3);
      const b = x!.topk(2, 0, false);
      return [a.values, a.indices, b.values, b.indices];
    },
    py: '(*x[0].topk(3), *x[0].topk(2, 0, largest=False))',
  },
  {
    name: 'sort argsort',
    inputs: [f([4, 8])],
    js: ([x]) => {
      const a = x!.sort();
      const b = x!.sort(0, true);
      return [a.values, a.indices, b.values, b.indices, x!.argsort(1, true)];
    },
    py: '(*x[0].sort(), *x[0].sort(0, descending=True), x[0].argsort(1, descending=True))',
  },
  {
    name: 'cumsum logsumexp norm',
    inputs: [f([4, 6])],
    js: ([x]) => [x!.cumsum(1), x!.cumsum(0), x!.logsumexp(1), x!.norm(), x!.norm(1, 1)],
    py: '(x[0].cumsum(1), x[0].cumsum(0), x[0].logsumexp(1), x[0].norm(), x[0].norm(1, 1))',
  },
  {
    name: 'all any',
    inputs: [f([3, 4], { gen: 'mask' })],
    js: ([m]) => [m!.all(), m!.any()],
    py: '(x[0].all(), x[0].any())',
  },

  // --- losses ---------------------------------------------------------------------------------------
  {
    name: 'crossEntropy',
    inputs: [f([6, 5]), int([6], 0, 5)],
    js: ([x, t]) => F.crossEntropy(x!, t!),
    py: 'F.cross_entropy(x[0], x[1])',
  },
  {
    name: 'crossEntropy label smoothing',
    inputs: [f([6, 5]), int([6], 0, 5)],
    js: ([x, t]) => F.crossEntropy(x!, t!, { labelSmoothing: 0.1 }),
    py: 'F.cross_entropy(x[0], x[1], label_smoothing=0.1)',
  },
  {
    name: 'crossEntropy class weights',
    inputs: [f([6, 5]), int([6], 0, 5), f([5], { gen: 'pos', grad: false })],
    js: ([x, t, w]) => F.crossEntropy(x!, t!, { weight: w! }),
    py: 'F.cross_entropy(x[0], x[1], weight=x[2])',
  },
  {
    name: 'crossEntropy weights + ignore_index + label smoothing',
    inputs: [
      f([8, 5]),
      { shape: [8], dtype: 'int64', gen: () => T.tensor([0, 3, -100, 4, 1, -100, 2, 3], [8], { dtype: 'int64' }) },
      f([5], { gen: 'pos', grad: false }),
    ],
    js: ([x, t, w]) => [
      F.crossEntropy(x!, t!, { weight: w!, ignoreIndex: -100, labelSmoothing: 0.2 }),
      F.crossEntropy(x!, t!, { ignoreIndex: -100, reduction: 'none' }),
    ],
    py: '(F.cross_entropy(x[0], x[1], weight=x[2], ignore_index=-100, label_smoothing=0.2), F.cross_entropy(x[0], x[1], ignore_index=-100, reduction="none"))',
  },
  {
    name: 'crossEntropy ignore_index 2, sum',
    inputs: [f([6, 4]), int([6], 0, 4)],
    js: ([x, t]) => F.crossEntropy(x!, t!, { ignoreIndex: 2, reduction: 'sum' }),
    py: 'F.cross_entropy(x[0], x[1], ignore_index=2, reduction="sum")',
  },
  {
    name: 'crossEntropy spatial NCHW',
    inputs: [f([2, 4, 3, 3]), int([2, 3, 3], 0, 4)],
    js: ([x, t]) => F.crossEntropy(x!, t!, { labelSmoothing: 0.05 }),
    py: 'F.cross_entropy(x[0], x[1], label_smoothing=0.05)',
  },
  {
    name: 'nllLoss weights ignore_index',
    inputs: [
      f([6, 5]),
      { shape: [6], dtype: 'int64', gen: () => T.tensor([1, 4, 4, 0, -100, 2], [6], { dtype: 'int64' }) },
      f([5], { gen: 'pos', grad: false }),
    ],
    js: ([x, t, w]) => {
      const lp = F.logSoftmax(x!, 1);
      return [F.nllLoss(lp, t!, { weight: w! }), F.nllLoss(lp, t!, { reduction: 'none' })];
    },
    py: '(F.nll_loss(F.log_softmax(x[0], 1), x[1], weight=x[2]), F.nll_loss(F.log_softmax(x[0], 1), x[1], reduction="none"))',
  },
  {
    name: 'klDiv batchmean, log_target',
    inputs: [f([4, 5]), f([4, 5])],
    js: ([a, b]) => {
      const lp = F.logSoftmax(a!, 1);
      const q = F.softmax(b!, 1);
      const lq = F.logSoftmax(b!, 1);
      return [F.klDiv(lp, q, 'batchmean'), F.klDiv(lp, lq, 'sum', true), F.klDiv(lp, q, 'none')];
    },
    py: '(F.kl_div(F.log_softmax(x[0], 1), F.softmax(x[1], 1), reduction="batchmean"), F.kl_div(F.log_softmax(x[0], 1), F.log_softmax(x[1], 1), reduction="sum", log_target=True), F.kl_div(F.log_softmax(x[0], 1), F.softmax(x[1], 1), reduction="none"))',
  },
  {
    name: 'mseLoss bceWithLogits',
    inputs: [f([4, 5]), f([4, 5], { gen: 'rand' }), f([5], { gen: 'pos', grad: false })],
    js: ([a, b, pw]) => [F.mseLoss(a!, b!), F.binaryCrossEntropyWithLogits(a!, b!, { posWeight: pw! })],
    py: '(F.mse_loss(x[0], x[1]), F.binary_cross_entropy_with_logits(x[0], x[1], pos_weight=x[2]))',
  },
  {
    name: 'softTargetCrossEntropy',
    inputs: [f([4, 5]), f([4, 5])],
    js: ([a, b]) => F.softTargetCrossEntropy(a!, F.softmax(b!, -1)),
    py: '(-(F.softmax(x[1], -1) * F.log_softmax(x[0], -1)).sum(-1)).mean()',
  },
  {
    name: 'oneHot',
    inputs: [int([7], 0, 4)],
    js: ([t]) => [F.oneHot(t!), F.oneHot(t!, 6)],
    py: '(F.one_hot(x[0]), F.one_hot(x[0], 6))',
  },
  {
    name: 'embedding',
    inputs: [int([2, 3], 0, 5), f([5, 4])],
    js: ([i, w]) => F.embedding(i!, w!),
    py: 'F.embedding(x[0], x[1])',
  },

  // --- interpolation ---------------------------------------------------------------------------------
  {
    name: 'interpolate nearest up and down',
    inputs: [f([2, 3, 5, 6])],
    js: ([x]) => [F.interpolate(x!, { size: [10, 12] }), F.interpolate(x!, { size: [3, 4] })],
    py: '(F.interpolate(x[0], size=(10, 12)), F.interpolate(x[0], size=(3, 4)))',
  },
  {
    name: 'interpolate bilinear',
    inputs: [f([2, 3, 5, 6])],
    js: ([x]) => [
      F.interpolate(x!, { size: [8, 9], mode: 'bilinear' }),
      F.interpolate(x!, { size: [8, 9], mode: 'bilinear', alignCorners: true }),
    ],
    py: '(F.interpolate(x[0], size=(8, 9), mode="bilinear", align_corners=False), F.interpolate(x[0], size=(8, 9), mode="bilinear", align_corners=True))',
  },
  {
    name: 'interpolate bilinear down, channels_last',
    inputs: [f([2, 3, 8, 9], { layout: 'cl' })],
    js: ([x]) => F.interpolate(x!, { size: 5, mode: 'bilinear' }),
    py: 'F.interpolate(x[0], size=5, mode="bilinear", align_corners=False)',
  },
  {
    name: 'interpolate bicubic',
    inputs: [f([1, 2, 4, 5])],
    js: ([x]) => F.interpolate(x!, { size: [7, 7], mode: 'bicubic', alignCorners: true }),
    py: 'F.interpolate(x[0], size=(7, 7), mode="bicubic", align_corners=True)',
  },
  {
    name: 'interpolate scale factor',
    inputs: [f([1, 2, 4, 5])],
    js: ([x]) => [
      F.interpolate(x!, { scaleFactor: 2 }),
      F.interpolate(x!, { scaleFactor: [1.5, 0.5], mode: 'bilinear' }),
    ],
    py: '(F.interpolate(x[0], scale_factor=2), F.interpolate(x[0], scale_factor=(1.5, 0.5), mode="bilinear"))',
  },

  // --- autocast (bf16 on CPU) ----------------------------------------------------------------------
  {
    name: 'autocast matmul -> bfloat16',
    autocast: true,
    inputs: [f([8, 16]), f([16, 4])],
    js: ([a, b]) => a!.matmul(b!),
    py: 'x[0] @ x[1]',
    tol: { rtol: 1.6e-2, atol: 1.6e-2 },
  },
  {
    name: 'autocast linear + conv2d -> bfloat16',
    autocast: true,
    inputs: [f([2, 4, 6, 6]), f([5, 4, 3, 3]), f([5]), f([3, 5]), f([3])],
    js: ([x, w, b, lw, lb]) => {
      const y = F.conv2d(x!, w!, b!, { padding: 1 });
      return [y, F.linear(y.mean([2, 3]), lw!, lb!)];
    },
    py: '(lambda y: (y, F.linear(y.mean((2, 3)), x[3], x[4])))(F.conv2d(x[0], x[1], x[2], padding=1))',
    tol: { rtol: 1.6e-2, atol: 1.6e-2 },
  },
];
