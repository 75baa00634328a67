// The addon's surface: argument checks, status-to-exception mapping, and the environment lifetime
// (one scheduler per environment, torn down by an async cleanup hook). No switching logic. N-API
// throughout, but for the scheduler's hot calls, which engine.h's hot_function exposes.
#include <napi.h>
#include <uv.h>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <vector>

#include "../include/spindle.h"
#include "bench_floor.h"
#include "bench_load.h"
#include "capi.h"
#include "carrier.h"
#include "engine.h"
#include "io.h"
#include "scheduler.h"

namespace spindle {
namespace {

struct Runtime {
  Scheduler* scheduler = nullptr;
  napi_async_cleanup_hook_handle cleanup = nullptr;
  Napi::Reference<Napi::ArrayBuffer> shared;
  std::shared_ptr<CApiEnv> capi;  // the C API's state (include/spindle.h), once JavaScript attached it
  bool teardown_started = false;
  bool teardown_done = false;
  std::vector<HotEntry> hot;  // one per scheduler call (kHotCalls), sized once: each function points at its own
};

Runtime& runtime(const Napi::CallbackInfo& info) { return *info.Env().GetInstanceData<Runtime>(); }

}  // namespace

Scheduler* scheduler_of(napi_env env) {
  auto* rt = Napi::Env(env).GetInstanceData<Runtime>();
  return rt == nullptr ? nullptr : rt->scheduler;
}

namespace {

// The environment's teardown is done: let Node go on with its cleanup.
void teardown_finished(Runtime* rt) {
  rt->teardown_done = true;
  if (rt->cleanup != nullptr) napi_remove_async_cleanup_hook(rt->cleanup);
  rt->cleanup = nullptr;
}

// The scheduler's teardown is over and no IO operation is in flight: delete it, then the C API's part.
void release_scheduler(void* p) {
  auto* r = static_cast<Runtime*>(p);
  delete r->scheduler;
  r->scheduler = nullptr;
  if (r->capi == nullptr) {
    teardown_finished(r);
    return;
  }
  std::shared_ptr<CApiEnv> capi = std::move(r->capi);
  capi_close(capi, [](void* q) { teardown_finished(static_cast<Runtime*>(q)); }, r);
}

// Unwinds every fiber and releases the scheduler; idempotent. Runs from spindle's async cleanup hook,
// or earlier from the cleanup hook the C API puts on another addon's env (capi.cc): fibers parked
// inside that addon's calls must unwind while its napi_env still exists, and that env's own cleanup
// hook runs before ours (hooks run in reverse order of registration).
void begin_teardown(void* arg) {
  auto* rt = static_cast<Runtime*>(arg);
  if (rt->teardown_started) return;
  rt->teardown_started = true;
  if (rt->scheduler == nullptr) {
    teardown_finished(rt);
    return;
  }
  // The C API first stops taking parks and signals; the scheduler then unwinds the fibers (parked
  // ones included, whose C-API park returns an error); last, the C API closes its uv_async.
  tcp_teardown(rt->scheduler);  // spindle/net: close every socket and server first (native/tcp.cc)
  if (rt->capi != nullptr) capi_detach(*rt->capi);
  rt->scheduler->teardown(
      [](void* p) {
        // IO operations still in flight (io.h) are cancelled and drained before the scheduler goes.
        io_drain(static_cast<Runtime*>(p)->scheduler, release_scheduler, p);
      },
      rt);
}

void teardown_hook(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* rt = static_cast<Runtime*>(arg);
  if (rt->teardown_done) {
    napi_remove_async_cleanup_hook(handle);
    return;
  }
  rt->cleanup = handle;  // removed when the teardown (maybe started earlier) finishes
  begin_teardown(rt);
}

// init(trampoline, backend?): start the scheduler, on the switch backend `backend` ("auto", "inplace",
// "threads"; undefined: SPINDLE_BACKEND decides). Returns the ArrayBuffer shared with the scheduler.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Runtime& rt = runtime(info);
  if (rt.scheduler != nullptr) return rt.shared.Value();
  if (info.Length() < 1 || !info[0].IsFunction()) return throw_error(env, "ERR_INVALID_ARG_TYPE", "trampoline must be a function");
  std::string backend;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsString()) return throw_error(env, "ERR_INVALID_ARG_TYPE", "backend must be a string");
    backend = info[1].As<Napi::String>().Utf8Value();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    return throw_error(env, "ERR_FIBER_STATE", "no libuv loop for this environment");
  }
  Napi::ArrayBuffer shared = Napi::ArrayBuffer::New(env, 4 * sizeof(int32_t));
  rt.shared = Napi::Persistent(shared);
  rt.scheduler = new Scheduler(env, info[0], loop, backend);
  rt.scheduler->share_state(static_cast<int32_t*>(shared.Data()));
  napi_add_async_cleanup_hook(env, teardown_hook, &rt, nullptr);
  return shared;
}

// The scheduler's calls (create to suspend): engine.h's hot functions, with the Runtime as their data.
Scheduler* hot_scheduler(void* data, HotError* error) {
  Scheduler* scheduler = static_cast<Runtime*>(data)->scheduler;
  if (scheduler == nullptr) *error = {"ERR_FIBER_STATE", "spindle's native core is not initialized"};
  return scheduler;
}

bool hot_handle(double arg, uint32_t* handle, HotError* error) {
  if (arg >= 0 && arg <= UINT32_MAX) {
    *handle = static_cast<uint32_t>(arg);
    return true;
  }
  *error = {"ERR_INVALID_ARG_TYPE", "fiber handle must be a number"};
  return false;
}

// `value`, or the error that `status` stands for.
uint32_t hot_result(Status status, HotError* error, uint32_t value = 0) {
  switch (status) {
    case Status::kOk:
      return value;
    case Status::kNotInFiber:
      *error = {"ERR_NOT_IN_FIBER", "this operation suspends the current fiber and must run inside one"};
      break;
    case Status::kBadHandle:
      *error = {"ERR_FIBER_STATE", "no such live fiber"};
      break;
    case Status::kBadState:
      *error = {"ERR_FIBER_STATE", "the fiber is not in a state that allows this"};
      break;
    case Status::kTerminating:
      *error = {"ERR_FIBER_TERMINATING", "the environment is shutting down"};
      break;
  }
  return 0;
}

// create(stackSize): a new fiber, not started; returns its handle.
uint32_t Create(void* data, double stack, HotError* error) {
  Scheduler* scheduler = hot_scheduler(data, error);
  if (scheduler == nullptr) return 0;
  if (!(stack >= 64 * 1024 && stack <= 1024.0 * 1024 * 1024)) {
    *error = {"ERR_OUT_OF_RANGE", "stackSize must be between 64 KiB and 1 GiB"};
    return 0;
  }
  uint32_t handle = scheduler->create(static_cast<size_t>(stack));
  if (handle == 0) *error = {"ERR_FIBER_RESOURCES", scheduler->create_refusal()};
  return handle;
}

// Calls `op` on the scheduler with the handle in argument 0: spawn, resume.
template <Status (Scheduler::*op)(uint32_t)>
uint32_t WithHandle(void* data, double arg, HotError* error) {
  Scheduler* scheduler = hot_scheduler(data, error);
  uint32_t handle;
  if (scheduler == nullptr || !hot_handle(arg, &handle, error)) return 0;
  return hot_result((scheduler->*op)(handle), error);
}

// wake(handle): 1 if the fiber was parked and is now ready, else 0.
uint32_t Wake(void* data, double arg, HotError* error) {
  Scheduler* scheduler = hot_scheduler(data, error);
  uint32_t handle;
  if (scheduler == nullptr || !hot_handle(arg, &handle, error)) return 0;
  bool woke = false;
  Status status = scheduler->wake(handle, &woke);
  return hot_result(status, error, woke ? 1 : 0);
}

// park(timeoutMs): -1 or absent for no timeout. Returns 0 when woken, 1 when the timeout elapsed.
uint32_t Park(void* data, double timeout, HotError* error) {
  Scheduler* scheduler = hot_scheduler(data, error);
  if (scheduler == nullptr) return 0;
  if (std::isnan(timeout)) timeout = -1;
  WakeReason reason = kWoken;
  Status status = scheduler->park(timeout, &reason);
  return hot_result(status, error, static_cast<uint32_t>(reason));
}

// Calls `op` on the scheduler: suspend, yieldNow.
template <Status (Scheduler::*op)()>
uint32_t NoArgs(void* data, double, HotError* error) {
  Scheduler* scheduler = hot_scheduler(data, error);
  return scheduler == nullptr ? 0 : hot_result((scheduler->*op)(), error);
}

// The scheduler's calls, as JavaScript names them; `returns`: the result is the function's value.
struct HotCall {
  const char* name;
  uint32_t (*fn)(void* data, double arg, HotError* error);
  bool returns;
};
constexpr HotCall kHotCalls[] = {
    {"create", Create, true},
    {"spawn", WithHandle<&Scheduler::spawn>, false},
    {"resume", WithHandle<&Scheduler::resume>, false},
    {"wake", Wake, true},
    {"park", Park, true},
    {"yieldNow", NoArgs<&Scheduler::yield_now>, false},
    {"suspend", NoArgs<&Scheduler::suspend>, false},
};

// capiInit({ park, current, interrupted, error }): attach the C API for other addons to this
// environment (src/native-api.ts). Returns the napi_external of the function table (include/spindle.h).
Napi::Value CapiInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Runtime& rt = runtime(info);
  if (rt.scheduler == nullptr) return throw_error(env, "ERR_FIBER_STATE", "spindle's native core is not initialized");
  if (rt.capi == nullptr) {
    if (info.Length() < 1 || !info[0].IsObject()) return throw_error(env, "ERR_INVALID_ARG_TYPE", "capiInit needs the functions object");
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    rt.capi = capi_attach(env, loop, rt.scheduler, info[0], begin_teardown, &rt);
    if (rt.capi == nullptr) return throw_error(env, "ERR_INVALID_ARG_TYPE", "capiInit: park, current, interrupted and error must be functions");
  }
  // The table is static and immutable; the external needs no finalizer.
  return Napi::External<spindle_api>::New(env, const_cast<spindle_api*>(capi_table()));
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  Scheduler* s = runtime(info).scheduler;
  out.Set("liveFibers", Napi::Number::New(info.Env(), s ? static_cast<double>(s->live_fibers()) : 0));
  out.Set("carrierThreads", Napi::Number::New(info.Env(), s ? static_cast<double>(s->threads_alive()) : 0));
  out.Set("futexHashSlots", Napi::Number::New(info.Env(), futex_hash_slots()));
  out.Set("nativeTokens", Napi::Number::New(info.Env(), static_cast<double>(capi_live_tokens())));
  // The switch backend ("threads" or "inplace", see same_thread.h) and why it was chosen.
  out.Set("backend", Napi::String::New(info.Env(), s ? s->backend_choice().name : ""));
  out.Set("backendReason", Napi::String::New(info.Env(), s ? s->backend_choice().reason : ""));
  return out;
}

// benchBatonFloor(iterations, rounds, sameCore): median ns per two-thread Baton round trip.
Napi::Value BenchBatonFloor(const Napi::CallbackInfo& info) {
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber()) {
    return throw_error(info.Env(), "ERR_INVALID_ARG_TYPE", "benchBatonFloor(iterations, rounds, sameCore)");
  }
  uint32_t iterations = info[0].As<Napi::Number>().Uint32Value();
  uint32_t rounds = info[1].As<Napi::Number>().Uint32Value();
  if (iterations == 0 || rounds == 0) return throw_error(info.Env(), "ERR_OUT_OF_RANGE", "iterations and rounds must be positive");
  return Napi::Number::New(info.Env(), baton_round_trip_ns(iterations, rounds, info[2].ToBoolean()));
}

// benchEchoLoad({ host, port, connections, size, warmupMs, durationMs, markFd? }): the TCP echo benchmark's load
// generator (bench_load.h); blocks the calling thread for the run. Returns { messages, seconds }.
Napi::Value BenchEchoLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) return throw_error(env, "ERR_INVALID_ARG_TYPE", "benchEchoLoad(options)");
  Napi::Object o = info[0].As<Napi::Object>();
  auto count = [&](const char* name, double min, double max, uint32_t* out) {
    Napi::Value v = o.Get(name);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= min && d <= max) || d != static_cast<double>(static_cast<uint32_t>(d))) return false;
    *out = static_cast<uint32_t>(d);
    return true;
  };
  EchoLoad load;
  uint32_t port = 0;
  Napi::Value host = o.Get("host");
  if (!host.IsString()) return throw_error(env, "ERR_INVALID_ARG_TYPE", "benchEchoLoad: host must be a string");
  load.host = host.As<Napi::String>().Utf8Value();
  if (!count("port", 1, 65535, &port) || !count("connections", 1, 100000, &load.connections) ||
      !count("size", 1, 1 << 20, &load.size) || !count("warmupMs", 0, 3600000, &load.warmup_ms) ||
      !count("durationMs", 1, 3600000, &load.duration_ms)) {
    return throw_error(env, "ERR_OUT_OF_RANGE",
                       "benchEchoLoad: port (1-65535), connections, size, warmupMs and durationMs must be integers in range");
  }
  load.port = static_cast<uint16_t>(port);
  Napi::Value mark_fd = o.Get("markFd");
  if (mark_fd.IsNumber()) load.mark_fd = mark_fd.As<Napi::Number>().Int32Value();
  EchoLoadResult result;
  std::string error;
  if (!echo_load(load, &result, &error)) return throw_error(env, "ERR_BENCH_LOAD", error.c_str());
  Napi::Object out = Napi::Object::New(env);
  out.Set("messages", Napi::Number::New(env, static_cast<double>(result.messages)));
  out.Set("seconds", Napi::Number::New(env, result.seconds));
  return out;
}

void define_hot_calls(Napi::Env env, Napi::Object exports, Runtime* rt) {
  rt->hot.resize(std::size(kHotCalls));
  for (size_t i = 0; i < std::size(kHotCalls); ++i) {
    const HotCall& call = kHotCalls[i];
    rt->hot[i] = {call.fn, rt, call.returns};
    napi_value fn = hot_function(env, call.name, &rt->hot[i]);
    if (fn == nullptr) NAPI_THROW_VOID(Napi::Error::New(env, "cannot create the native function"));
    exports.Set(call.name, Napi::Value(env, fn));
  }
}

}  // namespace
}  // namespace spindle

namespace {

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  using namespace spindle;
  auto* rt = new Runtime();
  env.SetInstanceData<Runtime>(rt);
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  define_hot_calls(env, exports, rt);
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("capiInit", Napi::Function::New(env, CapiInit, "capiInit"));
  exports.Set("benchBatonFloor", Napi::Function::New(env, BenchBatonFloor, "benchBatonFloor"));
  exports.Set("benchEchoLoad", Napi::Function::New(env, BenchEchoLoad, "benchEchoLoad"));
  register_tcp(env, exports);
  register_fs(env, exports);
  register_dns(env, exports);
  register_signals(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(spindle, InitModule)
