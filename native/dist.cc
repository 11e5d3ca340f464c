// Data-parallel communication on libtorch's own c10d: a TCPStore rendezvous and
// a ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA, when libtorch has it).
// Collectives are launched on the group's threads and waited for with a timeout
// on the calling thread (the training loop runs in a
// worker thread, so the JS main thread never blocks on them).
// The c10d headers declare the Gloo group only under these (libtorch itself is built with them).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#ifndef USE_DISTRIBUTED
#define USE_DISTRIBUTED 1
#endif
// Before common.h: its one-letter argument macros (T, S, ...) would rewrite these headers.
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(GOODSREC_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/version.h>

#include "common.h"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <type_traits>

namespace {

using Millis = std::chrono::milliseconds;
// libtorch 2.x: the Gloo and NCCL groups are c10d::Backend implementations (c10d::ProcessGroup wraps them);
// in 1.13 they derive from c10d::ProcessGroup. The collectives used here exist on both.
#if TORCH_VERSION_MAJOR >= 2
using GroupImpl = c10d::Backend;
#else
using GroupImpl = c10d::ProcessGroup;
#endif

// One process group of this process: the store (kept for rendezvous keys and
// heartbeats) and the Gloo or NCCL group over it.
struct DistGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<GroupImpl> pg;
  std::string backend;
  int rank = 0;
  int world = 1;
  Millis timeout{0};
};

DistGroup& group(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsExternal()) throw Napi::TypeError::New(info.Env(), "expected a process group handle");
  DistGroup* g = info[i].As<Napi::External<DistGroup>>().Data();
  if (!g->pg) throw Napi::Error::New(info.Env(), "the process group was destroyed");
  return *g;
}

c10d::ReduceOp reduceOp(const std::string& name) {
  if (name == "sum") return c10d::ReduceOp::SUM;
  if (name == "max") return c10d::ReduceOp::MAX;
  if (name == "min") return c10d::ReduceOp::MIN;
  throw std::invalid_argument("unknown reduce op '" + name + "' (sum, max, min)");
}

// Waits for one collective; a timeout or a peer's failure becomes an exception.
void waitWork(const c10::intrusive_ptr<c10d::Work>& work, Millis timeout, const char* what) {
  try {
    work->wait(timeout);
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string(what) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(what) + ": " + e.what());
  }
}

std::shared_ptr<::gloo::transport::Device> makeDevice(const std::string& host) {
  // As torch.distributed: GLOO_SOCKET_IFNAME names the interface; otherwise the
  // host's own name, and loopback when the job is local.
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (host == "127.0.0.1" || host == "localhost" || host == "::1") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// Flattens tensors into one contiguous buffer (each scaled by `scale`).
at::Tensor flatten(const std::vector<at::Tensor>& ts, double scale) {
  std::vector<at::Tensor> flat;
  flat.reserve(ts.size());
  for (const auto& t : ts) flat.push_back(t.reshape({-1}));
  at::Tensor buf = at::cat(flat);
  if (scale != 1.0) buf.mul_(scale);
  return buf;
}

void unflattenInto(const at::Tensor& buf, std::vector<at::Tensor>& ts) {
  int64_t off = 0;
  for (auto& t : ts) {
    int64_t n = t.numel();
    t.copy_(buf.narrow(0, off, n).view(t.sizes()));
    off += n;
  }
}

// Gradient all-reduce overlapped with backward, as DDP's Reducer: a post-hook on each
// parameter's grad accumulator counts the bucket's ready gradients; the bucket's
// all-reduce starts as soon as its last gradient is accumulated, while backward
// continues with earlier layers. finish() waits and copies the means back.
using AccumulatorPtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

struct Overlap {
  c10::intrusive_ptr<GroupImpl> pg;
  Millis timeout{0};
  double scale = 1.0;
  std::vector<at::Tensor> params;               // all-reduce order
  std::vector<size_t> bucketOf;                 // param -> bucket
  std::vector<std::vector<size_t>> members;     // bucket -> params
  std::vector<AccumulatorPtr> accumulators;     // kept alive: the hooks live on them
  std::vector<size_t> remaining;
  std::vector<at::Tensor> bufs;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  bool armed = false;
  std::string error;

  void ready(size_t i) {
    if (!armed) return;
    size_t b = bucketOf[i];
    if (remaining[b] == 0 || --remaining[b] != 0) return;
    try {
      std::vector<at::Tensor> gs;
      for (size_t m : members[b]) {
        at::Tensor g = params[m].grad();
        if (!g.defined()) throw std::runtime_error("a parameter has no gradient after backward");
        gs.push_back(g);
      }
      std::vector<at::Tensor> one{flatten(gs, scale)};
      c10d::AllreduceOptions o;
      o.timeout = timeout;
      works[b] = pg->allreduce(one, o);
      bufs[b] = one[0];
    } catch (const std::exception& e) {
      if (error.empty()) error = e.what();
    }
  }
};

struct ReadyHook : torch::autograd::FunctionPostHook {
  Overlap* o;
  size_t i;
  ReadyHook(Overlap* o, size_t i) : o(o), i(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    at::NoGradGuard noGrad;
    o->ready(i);
    return outputs;
  }
};

// Backward of a summing all-reduce (torch.distributed.nn's all_reduce): the gradient
// is summed across ranks too. Every rank's backward reaches it in the same order.
struct AllreduceSumBackward : torch::autograd::Node {
  c10::intrusive_ptr<GroupImpl> pg;
  Millis timeout{0};
  std::vector<int64_t> sizes;
  at::TensorOptions options;
  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    at::NoGradGuard noGrad;
    // An unused output still takes part, as zeros: the other ranks wait for this collective.
    at::Tensor g = grads[0].defined() ? grads[0].contiguous().clone() : at::zeros(sizes, options);
    std::vector<at::Tensor> one{g};
    c10d::AllreduceOptions o;
    o.timeout = timeout;
    waitWork(pg->allreduce(one, o), timeout, "all-reduce in backward");
    return {one[0]};
  }
  std::string name() const override { return "AllreduceSumBackward"; }
};

// Autograd nodes are held by std::shared_ptr up to libtorch 2.x's switch to intrusive_ptr.
template <typename N>
auto makeNode() {
  if constexpr (std::is_base_of_v<c10::intrusive_ptr_target, torch::autograd::Node>) return c10::make_intrusive<N>();
  else return std::make_shared<N>();
}

c10::intrusive_ptr<GroupImpl> makeGroup(const std::string& backend, const std::string& host,
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int world, Millis timeout) {
  if (backend == "gloo") {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(makeDevice(host));
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
  }
  if (backend == "nccl") {
#if defined(GOODSREC_NCCL)
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
#else
    throw std::runtime_error(std::string("the NCCL backend is not in this build: the addon was built against ") +
      "libtorch " + TORCH_VERSION + " without CUDA/NCCL. Multi-process training on CUDA devices needs a CUDA "
      "libtorch built with NCCL (a CUDA torch wheel's libtorch, or LIBTORCH=<unpacked CUDA libtorch>) "
      "and the addon rebuilt against it (npx node-gyp rebuild)");
#endif
  }
  throw std::invalid_argument("unknown process group backend '" + backend + "' (gloo, nccl)");
}

}  // namespace

// distInit(host, port, rank, worldSize, timeoutMs, prefix, backend): rank 0 hosts the
// TCPStore; every rank connects, then builds the Gloo or NCCL group (a rendezvous
// that waits up to timeoutMs for all ranks).
GR_OP(distInit, {
  std::string host = S(0);
  int64_t port = I(1);
  int rank = static_cast<int>(I(2));
  int world = static_cast<int>(I(3));
  Millis timeout(I(4));
  std::string prefix = S(5);
  std::string backend = S(6);
#if !defined(GOODSREC_NCCL)
  // Before the rendezvous, so every rank fails at once with the reason rather than waiting for the others.
  if (backend == "nccl") makeGroup(backend, host, {}, rank, world, timeout);
#endif
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = static_cast<std::size_t>(world);
  so.waitWorkers = true;
  so.timeout = timeout;
  auto tcp = c10::make_intrusive<c10d::TCPStore>(host, so);
  auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);
  auto* g = new DistGroup();
  g->store = store;
  g->backend = backend;
  g->rank = rank;
  g->world = world;
  g->timeout = timeout;
  try {
    g->pg = makeGroup(backend, host, store, rank, world, timeout);
  } catch (...) {
    delete g;
    throw;
  }
  return Napi::External<DistGroup>::New(env, g, [](Napi::Env, DistGroup* p) { delete p; });
})

// distDestroy(pg): drops the group and the store connection now.
GR_OP(distDestroy, {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(env, "expected a process group handle");
  DistGroup* g = info[0].As<Napi::External<DistGroup>>().Data();
  g->pg.reset();
  g->store.reset();
  RETV;
})

// distAllreduce(pg, tensor, op, timeoutMs): in place.
GR_OP(distAllreduce, {
  DistGroup& g = group(info, 0);
  std::vector<at::Tensor> ts{T(1)};
  c10d::AllreduceOptions o;
  o.reduceOp = reduceOp(S(2));
  o.timeout = Millis(I(3));
  waitWork(g.pg->allreduce(ts, o), o.timeout, "allreduce");
  RETV;
})

// distAllreduceSum(pg, tensor, timeoutMs) -> tensor: the sum over ranks as a new
// tensor, differentiable (its backward all-reduces the gradient): SyncBatchNorm's
// global statistics.
GR_OP(distAllreduceSum, {
  DistGroup& g = group(info, 0);
  at::Tensor x = T(1);
  Millis timeout(I(2));
  at::Tensor out;
  {
    at::NoGradGuard noGrad;
    out = x.detach().contiguous().clone();
    std::vector<at::Tensor> one{out};
    c10d::AllreduceOptions o;
    o.timeout = timeout;
    waitWork(g.pg->allreduce(one, o), timeout, "allreduce");
  }
  if (at::GradMode::is_enabled() && x.requires_grad()) {
    auto fn = makeNode<AllreduceSumBackward>();
    fn->pg = g.pg;
    fn->timeout = timeout;
    fn->sizes = x.sizes().vec();
    fn->options = x.options();
    fn->set_next_edges(torch::autograd::collect_next_edges(x));
    torch::autograd::set_history(out, fn);
  }
  RET(out);
})

// distAllreduceBuckets(pg, tensors, bucketSizes, scale, timeoutMs): sums
// tensors across ranks in buckets (each bucket one flat buffer, pre-scaled by
// `scale` as DDP divides by the world size while copying into its buckets).
// Every bucket is launched before the first is waited for, so flattening and
// copying overlap with communication.
GR_OP(distAllreduceBuckets, {
  DistGroup& g = group(info, 0);
  std::vector<at::Tensor> ts = TL(1);
  std::vector<int64_t> sizes = IL(2);
  double scale = D(3);
  Millis timeout(I(4));
  at::NoGradGuard noGrad;
  std::vector<std::vector<at::Tensor>> members;
  std::vector<at::Tensor> bufs;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  size_t next = 0;
  for (int64_t n : sizes) {
    if (n <= 0 || next + static_cast<size_t>(n) > ts.size()) throw std::invalid_argument("bucket sizes do not cover the tensors");
    std::vector<at::Tensor> m(ts.begin() + next, ts.begin() + next + n);
    next += n;
    std::vector<at::Tensor> one{flatten(m, scale)};
    c10d::AllreduceOptions o;
    o.timeout = timeout;
    works.push_back(g.pg->allreduce(one, o));
    bufs.push_back(one[0]);
    members.push_back(std::move(m));
  }
  if (next != ts.size()) throw std::invalid_argument("bucket sizes do not cover the tensors");
  for (size_t b = 0; b < works.size(); b++) {
    waitWork(works[b], timeout, "gradient all-reduce");
    unflattenInto(bufs[b], members[b]);
  }
  RETV;
})

// distOverlapCreate(pg, params, bucketSizes, scale, timeoutMs) -> handle. The
// hooks stay registered for the life of the handle; they act only while armed.
GR_OP(distOverlapCreate, {
  DistGroup& g = group(info, 0);
  auto* o = new Overlap();
  o->pg = g.pg;
  o->params = TL(1);
  std::vector<int64_t> sizes = IL(2);
  o->scale = D(3);
  o->timeout = Millis(I(4));
  for (int64_t n : sizes) {
    std::vector<size_t> m;
    for (int64_t k = 0; k < n; k++) {
      if (o->bucketOf.size() >= o->params.size()) { delete o; throw std::invalid_argument("bucket sizes do not cover the tensors"); }
      m.push_back(o->bucketOf.size());
      o->bucketOf.push_back(o->members.size());
    }
    o->members.push_back(std::move(m));
  }
  if (o->bucketOf.size() != o->params.size()) { delete o; throw std::invalid_argument("bucket sizes do not cover the tensors"); }
  for (size_t i = 0; i < o->params.size(); i++) {
    auto acc = torch::autograd::impl::grad_accumulator(o->params[i]);
    if (!acc) { delete o; throw std::invalid_argument("overlap: every tensor must be a leaf that requires grad"); }
    acc->add_post_hook(std::make_unique<ReadyHook>(o, i));
    o->accumulators.push_back(acc);
  }
  return Napi::External<Overlap>::New(env, o, [](Napi::Env, Overlap* p) {
    // Deliberately not deleted: hooks on accumulators that outlive this handle still point here. Disarmed
    // and emptied, they return at once; what stays is a few bytes per training run.
    p->armed = false;
    p->params.clear();
    p->bufs.clear();
    p->works.clear();
    p->accumulators.clear();
  });
})

// distOverlapArm(h): the next backward launches the buckets' all-reduces.
GR_OP(distOverlapArm, {
  Overlap* o = info[0].As<Napi::External<Overlap>>().Data();
  o->armed = true;
  o->error.clear();
  o->remaining.assign(o->members.size(), 0);
  for (size_t b = 0; b < o->members.size(); b++) o->remaining[b] = o->members[b].size();
  o->bufs.assign(o->members.size(), at::Tensor());
  o->works.assign(o->members.size(), c10::intrusive_ptr<c10d::Work>());
  RETV;
})

// distOverlapFinish(h): after backward, waits for every bucket and writes the means
// into the gradients. Returns the number of buckets launched during backward.
GR_OP(distOverlapFinish, {
  Overlap* o = info[0].As<Napi::External<Overlap>>().Data();
  o->armed = false;
  at::NoGradGuard noGrad;
  int64_t early = 0;
  for (size_t b = 0; b < o->members.size(); b++) if (o->works[b]) early++;
  if (!o->error.empty()) throw std::runtime_error("gradient all-reduce: " + o->error);
  // Buckets whose gradients never became ready (unused parameters) are an error, as in DDP.
  for (size_t b = 0; b < o->members.size(); b++) {
    if (!o->works[b]) throw std::runtime_error("gradient all-reduce: bucket " + std::to_string(b) +
      " was not ready after backward (a parameter took no part in the loss)");
  }
  for (size_t b = 0; b < o->members.size(); b++) {
    waitWork(o->works[b], o->timeout, "gradient all-reduce");
    std::vector<at::Tensor> gs;
    for (size_t m : o->members[b]) gs.push_back(o->params[m].grad());
    unflattenInto(o->bufs[b], gs);
    o->works[b].reset();
    o->bufs[b] = at::Tensor();
  }
  return Napi::Number::New(env, static_cast<double>(early));
})

// distBroadcast(pg, tensors, root, timeoutMs): coalesced into one buffer.
GR_OP(distBroadcast, {
  DistGroup& g = group(info, 0);
  std::vector<at::Tensor> ts = TL(1);
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> one{flatten(ts, 1.0)};
  c10d::BroadcastOptions o;
  o.rootRank = I(2);
  o.timeout = Millis(I(3));
  waitWork(g.pg->broadcast(one, o), o.timeout, "broadcast");
  unflattenInto(one[0], ts);
  RETV;
})

// distBarrier(pg, timeoutMs).
GR_OP(distBarrier, {
  DistGroup& g = group(info, 0);
  c10d::BarrierOptions o;
  o.timeout = Millis(I(1));
  waitWork(g.pg->barrier(o), o.timeout, "barrier");
  RETV;
})

// distStoreSet(pg, key, value) / distStoreGet(pg, key) -> string | null (no
// waiting: null when the key is not set) / distStoreWait(pg, key, timeoutMs).
GR_OP(distStoreSet, {
  DistGroup& g = group(info, 0);
  std::string v = S(2);
  g.store->set(S(1), std::vector<uint8_t>(v.begin(), v.end()));
  RETV;
})

GR_OP(distStoreGet, {
  DistGroup& g = group(info, 0);
  std::string key = S(1);
  if (!g.store->check({key})) return env.Null();
  std::vector<uint8_t> v = g.store->get(key);
  return Napi::String::New(env, std::string(v.begin(), v.end()));
})

GR_OP(distStoreWait, {
  DistGroup& g = group(info, 0);
  g.store->wait({S(1)}, Millis(I(2)));
  std::vector<uint8_t> v = g.store->get(S(1));
  return Napi::String::New(env, std::string(v.begin(), v.end()));
})

// distInfo(pg) -> { rank, worldSize, backend, torchVersion }.
GR_OP(distInfo, {
  DistGroup& g = group(info, 0);
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", g.rank);
  o.Set("worldSize", g.world);
  o.Set("backend", g.backend);
  o.Set("torchVersion", TORCH_VERSION);
  return o;
})
