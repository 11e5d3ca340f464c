// Module entry: exposes every registered op binding plus the dtype codes.
// No JS values are kept in statics, so the addon loads in worker threads too.
#include "common.h"

// Frees what this environment's handles still hold when it is torn down.
static void cleanupEnv(void* arg) {
  auto* owner = static_cast<std::thread::id*>(arg);
  gr::releaseThread(*owner);
  delete owner;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  napi_add_env_cleanup_hook(env, cleanupEnv, new std::thread::id(std::this_thread::get_id()));
  for (const gr::OpEntry& op : gr::opRegistry()) {
    exports.Set(op.name, Napi::Function::New(env, op.fn, op.name));
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
  return exports;
}

NODE_API_MODULE(goodsrec_native, Init)
