// Argument conversion, handle wrapping and live-handle accounting.
#include "common.h"

#include <mutex>
#include <unordered_set>

namespace gr {

std::vector<OpEntry>& opRegistry() {
  static std::vector<OpEntry> registry;
  return registry;
}

const char* opName(const Napi::CallbackInfo& info) {
  const char* name = static_cast<const char*>(info.Data());
  return name ? name : "goodsrec native";
}

// --- live handles -----------------------------------------------------------

static std::mutex liveMutex;
static std::unordered_set<TensorBox*>& liveSet() {
  static std::unordered_set<TensorBox*> set;
  return set;
}

void trackAlloc(TensorBox* box) {
  std::lock_guard<std::mutex> lock(liveMutex);
  liveSet().insert(box);
}

void trackFree(TensorBox* box) {
  std::lock_guard<std::mutex> lock(liveMutex);
  liveSet().erase(box);
}

// Frees the tensors of every handle a JS thread still holds. Runs when that
// thread's environment is torn down (worker exit or terminate()): N-API does
// not promise to run the remaining finalizers then. The boxes themselves stay
// for a finalizer that may still come; only the tensors are released.
void releaseThread(std::thread::id owner) {
  std::vector<at::Tensor> doomed;
  {
    std::lock_guard<std::mutex> lock(liveMutex);
    auto& set = liveSet();
    for (auto it = set.begin(); it != set.end();) {
      TensorBox* box = *it;
      if (box->owner != owner) { ++it; continue; }
      box->disposed = true;
      doomed.push_back(std::move(box->t));
      box->t = at::Tensor();
      it = set.erase(it);
    }
  }
  // Destroyed outside the lock: freeing a tensor may run arbitrary deleters.
  doomed.clear();
}

// Counts handles holding a tensor and the bytes of the distinct storages they
// keep alive (views of one storage count once); of the calling JS thread only
// when thisThread is set.
void liveStats(bool thisThread, int64_t& tensors, int64_t& bytes, int64_t& cudaBytes) {
  std::lock_guard<std::mutex> lock(liveMutex);
  std::unordered_set<const void*> seen;
  const std::thread::id me = std::this_thread::get_id();
  tensors = 0;
  bytes = 0;
  cudaBytes = 0;
  for (TensorBox* box : liveSet()) {
    if (box->disposed || !box->t.defined()) continue;
    if (thisThread && box->owner != me) continue;
    tensors++;
    if (!box->t.has_storage()) continue;
    const c10::StorageImpl* impl = box->t.storage().unsafeGetStorageImpl();
    if (!seen.insert(impl).second) continue;
    int64_t n = static_cast<int64_t>(impl->nbytes());
    if (box->t.is_cuda()) cudaBytes += n; else bytes += n;
  }
}

// --- wrapping ---------------------------------------------------------------

static void finalizeBox(Napi::Env, TensorBox* box) {
  trackFree(box);
  delete box;
}

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  auto* box = new TensorBox{std::move(t)};
  trackAlloc(box);
  return Napi::External<TensorBox>::New(env, box, finalizeBox);
}

Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  Napi::Array arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) arr.Set(static_cast<uint32_t>(i), wrap(env, ts[i]));
  return arr;
}

Napi::Value wrapTuple2(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& ts) {
  return wrapList(env, {std::get<0>(ts), std::get<1>(ts)});
}

// --- arguments --------------------------------------------------------------

static Napi::TypeError typeError(const Napi::CallbackInfo& info, size_t i, const char* expected) {
  return Napi::TypeError::New(info.Env(), std::string(opName(info)) + ": argument " + std::to_string(i) + " must be " + expected);
}

static TensorBox* boxAt(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsExternal()) throw typeError(info, i, "a tensor handle");
  TensorBox* box = info[i].As<Napi::External<TensorBox>>().Data();
  if (box->disposed) throw Napi::Error::New(info.Env(), std::string(opName(info)) + ": argument " + std::to_string(i) +
    " is a disposed tensor: it was freed by dispose() or by the end of its tidy() scope");
  return box;
}

at::Tensor& argTensor(const Napi::CallbackInfo& info, size_t i) { return boxAt(info, i)->t; }

c10::optional<at::Tensor> argOptTensor(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return boxAt(info, i)->t;
}

std::vector<at::Tensor> argTensorList(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw typeError(info, i, "an array of tensor handles");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    if (!v.IsExternal()) throw typeError(info, i, "an array of tensor handles");
    TensorBox* box = v.As<Napi::External<TensorBox>>().Data();
    if (box->disposed) {
      throw Napi::Error::New(info.Env(), std::string(opName(info)) + ": argument " + std::to_string(i) +
        " holds a disposed tensor at position " + std::to_string(k));
    }
    out.push_back(box->t);
  }
  return out;
}

double argDouble(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw typeError(info, i, "a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t argInt(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw typeError(info, i, "an integer");
  return info[i].As<Napi::Number>().Int64Value();
}

c10::optional<int64_t> argOptInt(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return argInt(info, i);
}

c10::optional<double> argOptDouble(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return argDouble(info, i);
}

bool argBool(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsBoolean()) throw typeError(info, i, "a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::vector<int64_t> argIntList(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw typeError(info, i, "an array of integers");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) out[k] = arr.Get(k).As<Napi::Number>().Int64Value();
  return out;
}

std::vector<double> argDoubleList(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw typeError(info, i, "an array of numbers");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<double> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) out[k] = arr.Get(k).As<Napi::Number>().DoubleValue();
  return out;
}

std::string argString(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsString()) throw typeError(info, i, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// JS has one number type: integral values become integer scalars so integer
// tensors stay integer; booleans become bool scalars.
at::Scalar argScalar(const Napi::CallbackInfo& info, size_t i) {
  if (i < info.Length() && info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  double v = argDouble(info, i);
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.007199254740992e15) return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}

at::ScalarType argDType(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<at::ScalarType>(argInt(info, i));
}

c10::optional<at::ScalarType> argOptDType(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return argDType(info, i);
}

at::Device argDevice(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return at::Device(at::kCPU);
  return at::Device(argString(info, i));
}

at::TensorOptions argOptions(const Napi::CallbackInfo& info, size_t dtypeIdx, size_t deviceIdx) {
  return at::TensorOptions().dtype(argDType(info, dtypeIdx)).device(argDevice(info, deviceIdx));
}

}  // namespace gr
