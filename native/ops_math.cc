// Elementwise arithmetic, comparisons, unary math, matrix products and the
// in-place updates optimizers use (called under no-grad).
#include "common.h"

// Binary ops: tensor (op) tensor, and tensor (op) scalar.
GR_OP(add, RET(at::add(T(0), T(1), SC(2)));)
GR_OP(addScalar, RET(at::add(T(0), SC(1), SC(2)));)
GR_OP(sub, RET(at::sub(T(0), T(1), SC(2)));)
GR_OP(subScalar, RET(at::sub(T(0), SC(1), SC(2)));)
GR_OP(rsubScalar, RET(at::rsub(T(0), SC(1), SC(2)));)
GR_OP(mul, RET(at::mul(T(0), T(1)));)
GR_OP(mulScalar, RET(at::mul(T(0), SC(1)));)
GR_OP(div, RET(at::div(T(0), T(1)));)
GR_OP(divScalar, RET(at::div(T(0), SC(1)));)
GR_OP(floorDivide, RET(at::div(T(0), T(1), "floor"));)
GR_OP(remainder, RET(at::remainder(T(0), T(1)));)
GR_OP(pow, RET(at::pow(T(0), T(1)));)
GR_OP(powScalar, RET(at::pow(T(0), SC(1)));)
GR_OP(rpowScalar, RET(at::pow(SC(1), T(0)));)
GR_OP(maximum, RET(at::maximum(T(0), T(1)));)
GR_OP(minimum, RET(at::minimum(T(0), T(1)));)
GR_OP(atan2, RET(at::atan2(T(0), T(1)));)

GR_OP(eq, RET(at::eq(T(0), T(1)));)
GR_OP(ne, RET(at::ne(T(0), T(1)));)
GR_OP(lt, RET(at::lt(T(0), T(1)));)
GR_OP(le, RET(at::le(T(0), T(1)));)
GR_OP(gt, RET(at::gt(T(0), T(1)));)
GR_OP(ge, RET(at::ge(T(0), T(1)));)
GR_OP(eqScalar, RET(at::eq(T(0), SC(1)));)
GR_OP(neScalar, RET(at::ne(T(0), SC(1)));)
GR_OP(ltScalar, RET(at::lt(T(0), SC(1)));)
GR_OP(leScalar, RET(at::le(T(0), SC(1)));)
GR_OP(gtScalar, RET(at::gt(T(0), SC(1)));)
GR_OP(geScalar, RET(at::ge(T(0), SC(1)));)
GR_OP(logicalAnd, RET(at::logical_and(T(0), T(1)));)
GR_OP(logicalOr, RET(at::logical_or(T(0), T(1)));)
GR_OP(logicalXor, RET(at::logical_xor(T(0), T(1)));)
GR_OP(logicalNot, RET(at::logical_not(T(0)));)
GR_OP(allclose, return Napi::Boolean::New(env, at::allclose(T(0), T(1), D(2), D(3)));)
GR_OP(equal, return Napi::Boolean::New(env, at::equal(T(0), T(1)));)

// Unary math.
GR_OP(neg, RET(at::neg(T(0)));)
GR_OP(abs, RET(at::abs(T(0)));)
GR_OP(sign, RET(at::sign(T(0)));)
GR_OP(exp, RET(at::exp(T(0)));)
GR_OP(expm1, RET(at::expm1(T(0)));)
GR_OP(log, RET(at::log(T(0)));)
GR_OP(log1p, RET(at::log1p(T(0)));)
GR_OP(log2, RET(at::log2(T(0)));)
GR_OP(sqrt, RET(at::sqrt(T(0)));)
GR_OP(rsqrt, RET(at::rsqrt(T(0)));)
GR_OP(square, RET(at::square(T(0)));)
GR_OP(reciprocal, RET(at::reciprocal(T(0)));)
GR_OP(sin, RET(at::sin(T(0)));)
GR_OP(cos, RET(at::cos(T(0)));)
GR_OP(erf, RET(at::erf(T(0)));)
GR_OP(floor, RET(at::floor(T(0)));)
GR_OP(ceil, RET(at::ceil(T(0)));)
GR_OP(round, RET(at::round(T(0)));)
GR_OP(trunc, RET(at::trunc(T(0)));)
GR_OP(isnan, RET(at::isnan(T(0)));)
GR_OP(isinf, RET(at::isinf(T(0)));)
GR_OP(isfinite, RET(at::isfinite(T(0)));)

// clamp: a bound given as null is absent.
GR_OP(clamp, {
  c10::optional<at::Scalar> lo, hi;
  if (info[1].IsNumber()) lo = SC(1);
  if (info[2].IsNumber()) hi = SC(2);
  RET(at::clamp(T(0), lo, hi));
})
GR_OP(clampTensor, RET(at::clamp(T(0), OT(1), OT(2)));)
GR_OP(where, RET(at::where(T(0), T(1), T(2)));)
GR_OP(maskedFill, RET(at::masked_fill(T(0), T(1), SC(2)));)
GR_OP(lerp, RET(at::lerp(T(0), T(1), SC(2)));)

// Matrix products.
GR_OP(matmul, RET(at::matmul(T(0), T(1)));)
GR_OP(mm, RET(at::mm(T(0), T(1)));)
GR_OP(bmm, RET(at::bmm(T(0), T(1)));)
GR_OP(linear, RET(at::linear(T(0), T(1), OT(2)));)
GR_OP(outer, RET(at::outer(T(0), T(1)));)
GR_OP(einsum, RET(at::einsum(S(0), TL(1)));)

// In-place updates (optimizers, weight loading). They return nothing: the
// JS tensor object stays the same.
GR_OP(add_, { T(0).add_(T(1), SC(2)); RETV; })
GR_OP(addScalar_, { T(0).add_(SC(1)); RETV; })
GR_OP(mul_, { T(0).mul_(T(1)); RETV; })
GR_OP(mulScalar_, { T(0).mul_(SC(1)); RETV; })
GR_OP(div_, { T(0).div_(T(1)); RETV; })
GR_OP(divScalar_, { T(0).div_(SC(1)); RETV; })
GR_OP(addcmul_, { T(0).addcmul_(T(1), T(2), SC(3)); RETV; })
GR_OP(addcdiv_, { T(0).addcdiv_(T(1), T(2), SC(3)); RETV; })
GR_OP(lerp_, { T(0).lerp_(T(1), SC(2)); RETV; })
GR_OP(copy_, { T(0).copy_(T(1)); RETV; })
GR_OP(zero_, { T(0).zero_(); RETV; })
GR_OP(fill_, { T(0).fill_(SC(1)); RETV; })
GR_OP(sqrt_, { T(0).sqrt_(); RETV; })
GR_OP(clampMin_, { T(0).clamp_min_(SC(1)); RETV; })
GR_OP(normal_, { T(0).normal_(D(1), D(2)); RETV; })
GR_OP(uniform_, { T(0).uniform_(D(1), D(2)); RETV; })
GR_OP(bernoulli_, { T(0).bernoulli_(D(1)); RETV; })

// Gradient-scaler helpers: one call for the whole gradient list.
// unscaleAndCheck multiplies every grad by the inverse scale in place and reports whether any value was inf/NaN (torch.amp's found_inf).
GR_OP(unscaleAndCheck, {
  auto grads = TL(0);
  double inv = D(1);
  bool found = false;
  for (auto& g : grads) {
    if (!g.defined()) continue;
    g.mul_(inv);
    if (!found && !at::isfinite(g).all().item<bool>()) found = true;
  }
  return Napi::Boolean::New(env, found);
})
GR_OP(allFinite, {
  for (auto& t : TL(0)) {
    if (t.defined() && !at::isfinite(t).all().item<bool>()) return Napi::Boolean::New(env, false);
  }
  return Napi::Boolean::New(env, true);
})
