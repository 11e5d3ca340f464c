// Module entry: exposes every registered op binding, the dtype codes and the
// libtorch versions (compiled against / loaded), which src/tensor/native.ts compares.
// No JS values are kept in statics, so the addon loads in worker threads too.
#include "common.h"

#include <ATen/Version.h>
#include <torch/version.h>
#include <dlfcn.h>

#include <regex>

// Found by src/tensor/native.ts in the file's bytes when the addon cannot even be loaded
// (a libtorch of another version lacks the symbols it links against).
extern "C" __attribute__((used)) const char goodsrec_libtorch_marker[] = "GOODSREC_LIBTORCH_VERSION=" TORCH_VERSION ";";

// The loaded libtorch reports its own version in its build settings ("TORCH_VERSION=1.13.0, ...").
static std::string runtimeTorchVersion() {
  static const std::regex re("TORCH_VERSION=([0-9A-Za-z.+_-]+)");
  std::smatch m;
  const std::string config = at::show_config();
  return std::regex_search(config, m, re) ? m[1].str() : std::string("unknown");
}

// The file of the libtorch the process loaded (the one that defines at::show_config).
static std::string runtimeTorchLibrary() {
  Dl_info dl;
  if (dladdr(reinterpret_cast<void*>(&at::show_config), &dl) != 0 && dl.dli_fname) return dl.dli_fname;
  return "unknown";
}

// Frees what this environment's handles still hold when it is torn down.
static void cleanupEnv(void* arg) {
  auto* owner = static_cast<std::thread::id*>(arg);
  gr::releaseThread(*owner);
  delete owner;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  napi_add_env_cleanup_hook(env, cleanupEnv, new std::thread::id(std::this_thread::get_id()));
  for (const gr::OpEntry& op : gr::opRegistry()) {
    // The name is the function's data too, so argument errors can name the op.
    exports.Set(op.name, Napi::Function::New(env, op.fn, op.name, const_cast<char*>(op.name)));
  }
  Napi::Object dtypes = Napi::Object::New(env);
  dtypes.Set("float32", static_cast<int>(at::kFloat));
  dtypes.Set("float64", static_cast<int>(at::kDouble));
  dtypes.Set("float16", static_cast<int>(at::kHalf));
  dtypes.Set("bfloat16", static_cast<int>(at::kBFloat16));
  dtypes.Set("int64", static_cast<int>(at::kLong));
  dtypes.Set("int32", static_cast<int>(at::kInt));
  dtypes.Set("int16", static_cast<int>(at::kShort));
  dtypes.Set("int8", static_cast<int>(at::kChar));
  dtypes.Set("uint8", static_cast<int>(at::kByte));
  dtypes.Set("bool", static_cast<int>(at::kBool));
  exports.Set("dtypeCodes", dtypes);
  Napi::Object libtorch = Napi::Object::New(env);
  libtorch.Set("compiled", TORCH_VERSION);
  libtorch.Set("runtime", runtimeTorchVersion());
  libtorch.Set("library", runtimeTorchLibrary());
  exports.Set("libtorch", libtorch);
  return exports;
}

NODE_API_MODULE(goodsrec_native, Init)
