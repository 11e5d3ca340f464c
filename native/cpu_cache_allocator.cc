// A caching CPU allocator for tensor storage (the 'retain' malloc policy).
//
// Why: a training step frees and re-allocates the same large activation buffers every step. glibc returns
// them to the kernel in two ways that mallopt cannot stop: blocks over 32 MiB are mmapped, and in any thread
// but the main one (the trainer runs in a worker thread, libtorch's OpenMP threads allocate too) a per-thread
// arena deletes whole 64 MiB heaps as soon as they are empty. Either way the next step page-faults every
// activation in afresh (ResNet-50, batch 32: ~2x the faults and ~+15% CPU time in a worker thread). This
// allocator keeps freed blocks of >= 64 KiB in exact-size free lists and hands them back on the next request of
// that size, up to a byte budget; smaller blocks go straight to c10's alloc_cpu/free_cpu.
#include "common.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/version.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace gr {
namespace {

constexpr size_t kMinCached = 64 << 10;
constexpr size_t kRound = 4096;

struct CacheState {
  std::mutex mu;
  std::unordered_map<void*, size_t> sizes;                   // every live or cached large block -> its size
  std::unordered_map<size_t, std::vector<void*>> freeLists;  // size -> cached blocks
  size_t cachedBytes = 0;
  size_t limitBytes = 0;
  uint64_t hits = 0, misses = 0;
};

CacheState& state() {
  static CacheState* s = new CacheState();  // never destroyed: deleters may run during static destruction
  return *s;
}

void cachedFree(void* p) {
  if (p == nullptr) return;
  CacheState& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.sizes.find(p);
    if (it != s.sizes.end()) {
      const size_t n = it->second;
      if (s.cachedBytes + n <= s.limitBytes) {
        s.freeLists[n].push_back(p);
        s.cachedBytes += n;
        return;
      }
      s.sizes.erase(it);
    }
  }
  c10::free_cpu(p);
}

class CachingCPUAllocator final : public c10::Allocator {
 public:
#if TORCH_VERSION_MAJOR >= 2
  c10::DataPtr allocate(size_t n) override { return alloc(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#else
  c10::DataPtr allocate(size_t n) const override { return alloc(n); }
#endif
  c10::DeleterFnPtr raw_deleter() const override { return &cachedFree; }

 private:
  static c10::DataPtr alloc(size_t n) {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n < kMinCached) {
      void* p = c10::alloc_cpu(n);
      return {p, p, &c10::free_cpu, cpu};
    }
    const size_t rounded = (n + kRound - 1) / kRound * kRound;
    CacheState& s = state();
    {
      std::lock_guard<std::mutex> lock(s.mu);
      auto it = s.freeLists.find(rounded);
      if (it != s.freeLists.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        s.cachedBytes -= rounded;
        s.hits++;
        return {p, p, &cachedFree, cpu};
      }
      s.misses++;
    }
    void* p = c10::alloc_cpu(rounded);
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.sizes[p] = rounded;
    }
    return {p, p, &cachedFree, cpu};
  }
};

}  // namespace

// Installs the allocator for CPU tensors (once; later calls only change the budget). Tensors allocated before
// keep their own deleters, so switching is safe at any time.
void installCachingCPUAllocator(size_t limitBytes) {
  static CachingCPUAllocator* allocator = nullptr;
  CacheState& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.limitBytes = limitBytes;
  }
  if (allocator == nullptr) {
    allocator = new CachingCPUAllocator();
    c10::SetCPUAllocator(allocator, /*priority=*/1);
  }
}

// Frees every cached block (the memory goes back to malloc); returns the bytes released.
size_t releaseCachedCPUMemory() {
  CacheState& s = state();
  std::vector<void*> blocks;
  size_t released = 0;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& [size, list] : s.freeLists) {
      for (void* p : list) { blocks.push_back(p); s.sizes.erase(p); }
      list.clear();
    }
    released = s.cachedBytes;
    s.cachedBytes = 0;
  }
  for (void* p : blocks) c10::free_cpu(p);
  return released;
}

void cachedCPUStats(int64_t& cachedBytes, int64_t& hits, int64_t& misses) {
  CacheState& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  cachedBytes = static_cast<int64_t>(s.cachedBytes);
  hits = static_cast<int64_t>(s.hits);
  misses = static_cast<int64_t>(s.misses);
}

}  // namespace gr
