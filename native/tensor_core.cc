// Handles, creation, read-back, metadata, autograd, RNG, threads, autocast.
#include "common.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cstring>
#if defined(GOODSREC_CUDA)
// Only in the CUDA build (scripts/setup-cuda.sh, device-check.sh): the caching allocator and device names.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace gr {
void liveStats(bool thisThread, int64_t& tensors, int64_t& bytes, int64_t& cudaBytes);
void installCachingCPUAllocator(size_t limitBytes);
size_t releaseCachedCPUMemory();
void cachedCPUStats(int64_t& cachedBytes, int64_t& hits, int64_t& misses);
}

static at::MemoryFormat memoryFormat(int64_t code) {
  switch (code) {
    case 1: return at::MemoryFormat::ChannelsLast;
    case 2: return at::MemoryFormat::Preserve;
    default: return at::MemoryFormat::Contiguous;
  }
}

// --- creation -----------------------------------------------------------------

// fromBuffer copies the bytes of a typed array, DataView or ArrayBuffer.
GR_OP(fromBuffer, {
  const uint8_t* src = nullptr;
  size_t len = 0;
  if (info[0].IsTypedArray()) {
    // napi_get_typedarray_info's data pointer also works for views of a SharedArrayBuffer (the data
    // loader's batches), where TypedArray::ArrayBuffer() throws.
    napi_typedarray_type type;
    size_t count = 0;
    void* data = nullptr;
    NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, info[0], &type, &count, &data, nullptr, nullptr), Napi::Value());
    src = static_cast<const uint8_t*>(data);
    len = info[0].As<Napi::TypedArray>().ByteLength();
  } else if (info[0].IsDataView()) {
    Napi::DataView dv = info[0].As<Napi::DataView>();
    src = static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    len = dv.ByteLength();
  } else if (info[0].IsArrayBuffer()) {
    Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
    src = static_cast<const uint8_t*>(ab.Data());
    len = ab.ByteLength();
  } else {
    throw Napi::TypeError::New(env, "fromBuffer: expected a typed array or ArrayBuffer");
  }
  auto shape = IL(1);
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(DT(2)));
  if (static_cast<size_t>(t.nbytes()) != len) {
    throw Napi::RangeError::New(env, "fromBuffer: " + std::to_string(len) + " bytes given, shape needs " + std::to_string(t.nbytes()));
  }
  if (len) std::memcpy(t.data_ptr(), src, len);
  at::Device dev = gr::argDevice(info, 3);
  if (!dev.is_cpu()) t = t.to(dev);
  RET(t);
})

// toBuffer copies the values (row-major, on CPU) into a new ArrayBuffer.
GR_OP(toBuffer, {
  at::Tensor t = T(0).detach();
  if (!t.is_cpu()) t = t.to(at::kCPU);
  t = t.contiguous();
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, t.nbytes());
  if (t.nbytes()) std::memcpy(ab.Data(), t.data_ptr(), t.nbytes());
  return ab;
})

GR_OP(item, {
  at::Tensor& t = T(0);
  at::Scalar s = t.item();
  if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
  if (s.isIntegral(false)) return Napi::Number::New(env, static_cast<double>(s.toLong()));
  return Napi::Number::New(env, s.toDouble());
})

GR_OP(empty, RET(at::empty(IL(0), gr::argOptions(info, 1, 2)));)
GR_OP(zeros, RET(at::zeros(IL(0), gr::argOptions(info, 1, 2)));)
GR_OP(ones, RET(at::ones(IL(0), gr::argOptions(info, 1, 2)));)
GR_OP(full, RET(at::full(IL(0), SC(1), gr::argOptions(info, 2, 3)));)
GR_OP(arange, RET(at::arange(SC(0), SC(1), SC(2), gr::argOptions(info, 3, 4)));)
GR_OP(linspace, RET(at::linspace(SC(0), SC(1), I(2), gr::argOptions(info, 3, 4)));)
GR_OP(rand, RET(at::rand(IL(0), gr::argOptions(info, 1, 2)));)
GR_OP(randn, RET(at::randn(IL(0), gr::argOptions(info, 1, 2)));)
GR_OP(randint, RET(at::randint(I(0), I(1), IL(2), gr::argOptions(info, 3, 4)));)
GR_OP(randperm, RET(at::randperm(I(0), gr::argOptions(info, 1, 2)));)
GR_OP(bernoulli, RET(at::bernoulli(T(0)));)
GR_OP(eye, RET(at::eye(I(0), gr::argOptions(info, 1, 2)));)

// --- metadata -------------------------------------------------------------------

GR_OP(shape, {
  at::Tensor& t = T(0);
  Napi::Array arr = Napi::Array::New(env, t.dim());
  for (int64_t d = 0; d < t.dim(); d++) arr.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(t.size(d))));
  return arr;
})
GR_OP(strides, {
  at::Tensor& t = T(0);
  Napi::Array arr = Napi::Array::New(env, t.dim());
  for (int64_t d = 0; d < t.dim(); d++) arr.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(t.stride(d))));
  return arr;
})
GR_OP(dtype, return Napi::Number::New(env, static_cast<int>(T(0).scalar_type()));)
GR_OP(device, return Napi::String::New(env, T(0).device().str());)
GR_OP(isContiguous, return Napi::Boolean::New(env, T(0).is_contiguous(memoryFormat(I(1))));)
GR_OP(requiresGrad, return Napi::Boolean::New(env, T(0).requires_grad());)
GR_OP(isLeaf, return Napi::Boolean::New(env, T(0).is_leaf());)
GR_OP(storageOffset, return Napi::Number::New(env, static_cast<double>(T(0).storage_offset()));)
GR_OP(sameStorage, return Napi::Boolean::New(env, T(0).is_alias_of(T(1)));)

GR_OP(dispose, {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(env, "dispose: expected a tensor handle");
  gr::TensorBox* box = info[0].As<Napi::External<gr::TensorBox>>().Data();
  if (!box->disposed) {
    box->disposed = true;
    box->t = at::Tensor();
    gr::trackFree(box);
  }
  RETV;
})
GR_OP(isDisposed, {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(env, "isDisposed: expected a tensor handle");
  return Napi::Boolean::New(env, info[0].As<Napi::External<gr::TensorBox>>().Data()->disposed);
})

// --- conversion -----------------------------------------------------------------

// to: a null dtype or device keeps the tensor's own. nonBlocking: a copy from pinned host memory to a GPU
// returns at once and runs on the current stream (ordered before the kernels that read it).
GR_OP(to, {
  at::Tensor& t = T(0);
  auto dtype = ODT(1);
  at::Device dev = (info[2].IsString()) ? at::Device(S(2)) : t.device();
  RET(t.to(dev, dtype.value_or(t.scalar_type()), /*non_blocking=*/B(4), /*copy=*/B(3)));
})
// pinMemory: a page-locked copy of a CPU tensor (needs a visible GPU, as in PyTorch); isPinned: whether it is one.
GR_OP(pinMemory, RET(T(0).pin_memory());)
GR_OP(isPinned, return Napi::Boolean::New(env, T(0).is_pinned());)
GR_OP(clone, RET(T(0).clone(memoryFormat(I(1))));)
GR_OP(contiguous, RET(T(0).contiguous(memoryFormat(I(1))));)
GR_OP(detach, RET(T(0).detach());)
GR_OP(alias, RET(T(0));)  // a second handle to the same tensor (keeps it alive)

// --- autograd -------------------------------------------------------------------

GR_OP(setRequiresGrad, { T(0).set_requires_grad(B(1)); RETV; })
GR_OP(backward, {
  at::Tensor& t = T(0);
  auto grad = OT(1);
  t.backward(grad.value_or(at::Tensor()), /*retain_graph=*/c10::optional<bool>(B(2)), /*create_graph=*/false);
  RETV;
})
GR_OP(grad, {
  const at::Tensor& g = T(0).grad();
  if (!g.defined()) RETV;
  RET(g);
})
GR_OP(setGrad, {
  at::Tensor& t = T(0);
  auto g = OT(1);
  t.mutable_grad() = g.has_value() ? *g : at::Tensor();
  RETV;
})
GR_OP(retainGrad, { T(0).retain_grad(); RETV; })
GR_OP(gradEnabled, return Napi::Boolean::New(env, c10::GradMode::is_enabled());)
GR_OP(setGradEnabled, { c10::GradMode::set_enabled(B(0)); RETV; })

// --- process-wide settings --------------------------------------------------------

// mallocPolicy('retain', cacheBytes): freed tensor memory stays in the process so that the next step reuses
// it instead of page-faulting fresh pages in: large tensor blocks are kept by the caching CPU allocator (up
// to cacheBytes; cpu_cache_allocator.cc), and glibc neither mmaps per large block nor trims. Returns whether
// the policy is in effect ('system' leaves libtorch's allocator and glibc's defaults).
GR_OP(mallocPolicy, {
  const std::string mode = S(0);
  bool applied = false;
  if (mode == "retain") {
    gr::installCachingCPUAllocator(static_cast<size_t>(I(1)));
    applied = true;
#if defined(__GLIBC__)
    applied = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, -1) == 1;
#endif
  }
  return Napi::Boolean::New(env, applied);
})
// releaseCachedMemory(): hands the caching CPU allocator's free blocks back to malloc (returns their bytes) and
// empties libtorch's CUDA caching allocator (torch.cuda.empty_cache()) when a GPU is in use.
GR_OP(releaseCachedMemory, {
  size_t released = gr::releaseCachedCPUMemory();
#if defined(GOODSREC_CUDA)
  if (at::hasCUDA()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  return Napi::Number::New(env, static_cast<double>(released));
})
GR_OP(setNumThreads, { at::set_num_threads(static_cast<int>(I(0))); RETV; })
GR_OP(getNumThreads, return Napi::Number::New(env, at::get_num_threads());)
GR_OP(manualSeed, { at::manual_seed(static_cast<uint64_t>(I(0))); RETV; })
GR_OP(cudaIsAvailable, return Napi::Boolean::New(env, at::hasCUDA());)
GR_OP(cudaDeviceCount, {
  int n = at::hasCUDA() ? static_cast<int>(at::detail::getCUDAHooks().getNumGPUs()) : 0;
  return Napi::Number::New(env, n);
})
// cudaSynchronize(index): waits for every kernel queued on that GPU (timings, the device check); a no-op
// without CUDA. cudnnBenchmark(on): cuDNN autotuning of convolution algorithms for fixed shapes; returns the
// previous setting. cudaDeviceName(index): the GPU's name ('' without CUDA).
GR_OP(cudaSynchronize, {
  if (at::hasCUDA()) at::detail::getCUDAHooks().deviceSynchronize(static_cast<c10::DeviceIndex>(I(0)));
  RETV;
})
GR_OP(cudnnBenchmark, {
  bool prev = at::globalContext().benchmarkCuDNN();
  at::globalContext().setBenchmarkCuDNN(B(0));
  return Napi::Boolean::New(env, prev);
})
GR_OP(cudaDeviceName, {
  std::string name;
#if defined(GOODSREC_CUDA)
  if (at::hasCUDA()) name = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(I(0)))->name;
#else
  (void)I(0);
#endif
  return Napi::String::New(env, name);
})
// memory: live handles (of this JS thread, or process-wide) and the bytes of their storages.
GR_OP(memory, {
  int64_t tensors, bytes, cudaBytes;
  gr::liveStats(!B(0), tensors, bytes, cudaBytes);
  Napi::Object o = Napi::Object::New(env);
  o.Set("tensors", Napi::Number::New(env, static_cast<double>(tensors)));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(bytes)));
  o.Set("cudaBytes", Napi::Number::New(env, static_cast<double>(cudaBytes)));
  int64_t cached, hits, misses;
  gr::cachedCPUStats(cached, hits, misses);
  o.Set("cachedBytes", Napi::Number::New(env, static_cast<double>(cached)));
  o.Set("cacheHits", Napi::Number::New(env, static_cast<double>(hits)));
  o.Set("cacheMisses", Napi::Number::New(env, static_cast<double>(misses)));
  return o;
})
GR_OP(buildInfo, {
  Napi::Object o = Napi::Object::New(env);
  o.Set("torchVersion", Napi::String::New(env, TORCH_VERSION));
  o.Set("parallelInfo", Napi::String::New(env, at::get_parallel_info()));
  o.Set("cuda", Napi::Boolean::New(env, at::hasCUDA()));
#if defined(GOODSREC_CUDA)
  o.Set("cudaCompiled", Napi::Boolean::New(env, true));
#else
  o.Set("cudaCompiled", Napi::Boolean::New(env, false));
#endif
#if defined(GOODSREC_NCCL)
  o.Set("nccl", Napi::Boolean::New(env, true));
#else
  o.Set("nccl", Napi::Boolean::New(env, false));
#endif
  o.Set("cudaDevices", Napi::Number::New(env, at::hasCUDA() ? static_cast<double>(at::detail::getCUDAHooks().getNumGPUs()) : 0.0));
  o.Set("mkldnn", Napi::Boolean::New(env, at::hasMKLDNN()));
  return o;
})

// --- autocast (mixed precision) -------------------------------------------------------
// setAutocast returns the previous state.
// libtorch 2.4 replaced the per-device setters; both are supported.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define GR_AUTOCAST_NEW_API 1
#endif

GR_OP(setAutocast, {
  std::string dev = S(0);
  bool enabled = B(1);
  at::ScalarType dtype = DT(2);
  bool cuda = dev == "cuda";
#ifdef GR_AUTOCAST_NEW_API
  at::DeviceType dt = cuda ? at::kCUDA : at::kCPU;
  bool prevEnabled = at::autocast::is_autocast_enabled(dt);
  at::ScalarType prevDtype = at::autocast::get_autocast_dtype(dt);
  at::autocast::set_autocast_enabled(dt, enabled);
  at::autocast::set_autocast_dtype(dt, dtype);
#else
  bool prevEnabled = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
  at::ScalarType prevDtype = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
  if (cuda) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
  Napi::Object o = Napi::Object::New(env);
  o.Set("enabled", Napi::Boolean::New(env, prevEnabled));
  o.Set("dtype", Napi::Number::New(env, static_cast<int>(prevDtype)));
  return o;
})

// Leaving the outermost autocast region frees the cache of casted weights.
GR_OP(autocastEnter, { at::autocast::increment_nesting(); RETV; })
GR_OP(autocastExit, {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  RETV;
})
