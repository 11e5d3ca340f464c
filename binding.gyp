{
  "targets": [
    {
      "target_name": "goodsrec_native",
      "sources": [
        "native/addon.cc",
        "native/args.cc",
        "native/tensor_core.cc",
        "native/cpu_cache_allocator.cc",
        "native/ops_math.cc",
        "native/ops_nn.cc",
        "native/ops_shape.cc",
        "native/ops_reduce.cc",
        "native/dist.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/find-libtorch.mjs include)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        # A worker terminated mid-call (loader/trainer close) makes napi_throw fail; without this the
        # failure is rethrown as a C++ exception out of the callback wrapper: std::terminate, abort.
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "<!@(node scripts/find-libtorch.mjs defines)"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["<!@(node scripts/find-libtorch.mjs std)", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "ldflags": ["<!@(node scripts/find-libtorch.mjs libs)"],
      "libraries": ["<!@(node scripts/find-libtorch.mjs libs)"]
    },
    {
      "target_name": "goodsrec_image",
      "sources": [
        "native/image/addon.cc",
        "native/image/jpeg.cc",
        "native/image/kernels.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_CPP_EXCEPTIONS",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-ffp-contract=off", "-Wno-unused-parameter"],
      "libraries": ["-ljpeg"]
    }
  ]
}
