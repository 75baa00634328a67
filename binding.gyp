{
  "targets": [
    {
      "target_name": "spindle",
      "sources": [
        "native/address_space.cc",
        "native/bench_floor.cc",
        "native/bench_load.cc",
        "native/bindings.cc",
        "native/capi.cc",
        "native/carrier.cc",
        "native/dns.cc",
        "native/engine.cc",
        "native/fs.cc",
        "native/io.cc",
        "native/same_thread.cc",
        "native/scheduler.cc",
        "native/stack_switch_x64.cc",
        "native/tcp.cc",
        "native/signals.cc",
        "native/timers.cc",
        "native/tls_slots.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=c++17"],
      "cflags_cc": ["-std=c++20", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "libraries": ["-lpthread"]
    }
  ]
}
