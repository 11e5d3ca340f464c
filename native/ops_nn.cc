// Neural-network functionals: convolution, normalisation, activations,
// pooling, dropout, losses, resampling.
#include "common.h"

GR_OP(conv2d, RET(at::conv2d(T(0), T(1), OT(2), IL(3), IL(4), IL(5), I(6)));)
GR_OP(convTranspose2d, RET(at::conv_transpose2d(T(0), T(1), OT(2), IL(3), IL(4), IL(5), I(6), IL(7)));)
GR_OP(batchNorm, RET(at::batch_norm(T(0), OT(1), OT(2), OT(3), OT(4), B(5), D(6), D(7), true));)
GR_OP(layerNorm, RET(at::layer_norm(T(0), IL(1), OT(2), OT(3), D(4), true));)
GR_OP(groupNorm, RET(at::group_norm(T(0), I(1), OT(2), OT(3), D(4), true));)

GR_OP(relu, RET(at::relu(T(0)));)
GR_OP(relu_, { at::relu_(T(0)); RETV; })
GR_OP(hardtanh, RET(at::hardtanh(T(0), SC(1), SC(2)));)
GR_OP(leakyRelu, RET(at::leaky_relu(T(0), SC(1)));)
GR_OP(elu, RET(at::elu(T(0), SC(1)));)
GR_OP(silu, RET(at::silu(T(0)));)
GR_OP(mish, RET(at::mish(T(0)));)
GR_OP(gelu, RET(at::gelu(T(0), S(1)));)
GR_OP(sigmoid, RET(at::sigmoid(T(0)));)
GR_OP(hardsigmoid, RET(at::hardsigmoid(T(0)));)
GR_OP(hardswish, RET(at::hardswish(T(0)));)
GR_OP(tanh, RET(at::tanh(T(0)));)
GR_OP(softplus, RET(at::softplus(T(0), SC(1), SC(2)));)
GR_OP(softmax, RET(at::softmax(T(0), I(1), ODT(2)));)
GR_OP(logSoftmax, RET(at::log_softmax(T(0), I(1), ODT(2)));)

GR_OP(maxPool2d, RET(at::max_pool2d(T(0), IL(1), IL(2), IL(3), IL(4), B(5)));)
GR_OP(avgPool2d, RET(at::avg_pool2d(T(0), IL(1), IL(2), IL(3), B(4), B(5), OI(6)));)
GR_OP(adaptiveAvgPool2d, RET(at::adaptive_avg_pool2d(T(0), IL(1)));)
GR_OP(adaptiveMaxPool2d, RET(std::get<0>(at::adaptive_max_pool2d(T(0), IL(1))));)

GR_OP(dropout, RET(at::dropout(T(0), D(1), B(2)));)

// Losses. reduction: 0 none, 1 mean, 2 sum (at::Reduction).
GR_OP(crossEntropy, RET(at::cross_entropy_loss(T(0), T(1), OT(2), I(3), I(4), D(5)));)
GR_OP(nllLoss, RET(at::nll_loss_nd(T(0), T(1), OT(2), I(3), I(4)));)
GR_OP(klDiv, RET(at::kl_div(T(0), T(1), I(2), B(3)));)
GR_OP(mseLoss, RET(at::mse_loss(T(0), T(1), I(2)));)
GR_OP(bceWithLogits, RET(at::binary_cross_entropy_with_logits(T(0), T(1), OT(2), OT(3), I(4)));)
GR_OP(oneHot, RET(at::one_hot(T(0), I(1)));)
GR_OP(embedding, RET(at::embedding(T(0), T(1)));)

// Resampling: output size plus the optional scale factors the user gave
// (PyTorch maps coordinates with 1/scale when a scale factor is given).
GR_OP(upsampleNearest2d, RET(at::upsample_nearest2d(T(0), IL(1), OD(2), OD(3)));)
GR_OP(upsampleBilinear2d, RET(at::upsample_bilinear2d(T(0), IL(1), B(2), OD(3), OD(4)));)
GR_OP(upsampleBicubic2d, RET(at::upsample_bicubic2d(T(0), IL(1), B(2), OD(3), OD(4)));)
