// Shared helpers for the goodsrec addon: the tensor handle, argument
// conversion and the one macro every op binding goes through.
#pragma once

// When a worker thread is terminated mid-call, throwing into JS fails; without
// this, node-addon-api turns that failure into a C++ exception that escapes
// the callback and aborts the whole process.
#ifndef NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#define NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS
#endif
#include <napi.h>
#include <ATen/ATen.h>

#include <string>
#include <thread>
#include <vector>

namespace gr {

// A JS tensor handle owns one at::Tensor. dispose() releases the tensor at
// once; the finalizer only frees the box (safety net for forgotten tensors).
struct TensorBox {
  at::Tensor t;
  bool disposed = false;
  // The JS thread (main or worker) that made the handle: memory() reports
  // per thread, so a worker's leak check is not disturbed by other threads.
  std::thread::id owner = std::this_thread::get_id();
};

using OpFn = Napi::Value (*)(const Napi::CallbackInfo&);
struct OpEntry {
  const char* name;
  OpFn fn;
};
std::vector<OpEntry>& opRegistry();
// The op's name, for messages: every binding is created with it as its data.
const char* opName(const Napi::CallbackInfo& info);
struct OpRegistrar {
  OpRegistrar(const char* name, OpFn fn) { opRegistry().push_back({name, fn}); }
};

// Live-handle accounting for leak checks (process-wide; libtorch memory is).
void trackAlloc(TensorBox* box);
void trackFree(TensorBox* box);
void releaseThread(std::thread::id owner);

// Argument readers. Validation of shapes and options happens in TypeScript;
// these only convert, and throw a TypeError on a wrong JS type.
at::Tensor& argTensor(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::Tensor> argOptTensor(const Napi::CallbackInfo& info, size_t i);
std::vector<at::Tensor> argTensorList(const Napi::CallbackInfo& info, size_t i);
double argDouble(const Napi::CallbackInfo& info, size_t i);
int64_t argInt(const Napi::CallbackInfo& info, size_t i);
c10::optional<int64_t> argOptInt(const Napi::CallbackInfo& info, size_t i);
c10::optional<double> argOptDouble(const Napi::CallbackInfo& info, size_t i);
bool argBool(const Napi::CallbackInfo& info, size_t i);
std::vector<int64_t> argIntList(const Napi::CallbackInfo& info, size_t i);
std::vector<double> argDoubleList(const Napi::CallbackInfo& info, size_t i);
std::string argString(const Napi::CallbackInfo& info, size_t i);
at::Scalar argScalar(const Napi::CallbackInfo& info, size_t i);
at::ScalarType argDType(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::ScalarType> argOptDType(const Napi::CallbackInfo& info, size_t i);
at::Device argDevice(const Napi::CallbackInfo& info, size_t i);
at::TensorOptions argOptions(const Napi::CallbackInfo& info, size_t dtypeIdx, size_t deviceIdx);

Napi::Value wrap(Napi::Env env, at::Tensor t);
Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& ts);
Napi::Value wrapTuple2(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& ts);

}  // namespace gr

// One error path: libtorch's c10::Error and any std::exception become a JS
// Error carrying libtorch's message (without its C++ backtrace), prefixed
// with the op's name; argument errors from the readers already name it.
#define GR_TRY_BEGIN try {
#define GR_TRY_END(env, opName)                                                      \
  }                                                                                  \
  catch (const Napi::Error&) {                                                       \
    throw;                                                                           \
  }                                                                                  \
  catch (const c10::Error& e) {                                                      \
    throw Napi::Error::New(env, std::string(opName) + ": " + e.what_without_backtrace()); \
  }                                                                                  \
  catch (const std::exception& e) {                                                  \
    throw Napi::Error::New(env, std::string(opName) + ": " + e.what());              \
  }

// GR_OP(name, body): defines and registers one binding. Its arguments and
// result are declared once, in src/tensor/ops.ts (test/native-ops.test.ts
// checks that the readers used here match that table). Inside the body:
// T(i) tensor, OT(i) optional tensor, TL(i) tensor list, D(i) double, I(i) int,
// OI(i) optional int, OD(i) optional double, B(i) bool, IL(i) int list,
// S(i) string, SC(i) scalar, DT(i) dtype, ODT(i) optional dtype; RET(t) wraps a
// tensor result, RETL(v) a list of tensors.
#define GR_OP(name, ...)                                                  \
  static Napi::Value op_##name(const Napi::CallbackInfo& info) {          \
    Napi::Env env = info.Env();                                           \
    GR_TRY_BEGIN __VA_ARGS__ GR_TRY_END(env, #name)                       \
  }                                                                       \
  static gr::OpRegistrar reg_##name(#name, op_##name);

#define T(i) gr::argTensor(info, i)
#define OT(i) gr::argOptTensor(info, i)
#define TL(i) gr::argTensorList(info, i)
#define D(i) gr::argDouble(info, i)
#define I(i) gr::argInt(info, i)
#define OI(i) gr::argOptInt(info, i)
#define OD(i) gr::argOptDouble(info, i)
#define B(i) gr::argBool(info, i)
#define IL(i) gr::argIntList(info, i)
#define S(i) gr::argString(info, i)
#define SC(i) gr::argScalar(info, i)
#define DT(i) gr::argDType(info, i)
#define ODT(i) gr::argOptDType(info, i)
#define RET(expr) return gr::wrap(env, (expr))
#define RETL(expr) return gr::wrapList(env, (expr))
#define RET2(expr) return gr::wrapTuple2(env, (expr))
#define RETV return env.Undefined()
