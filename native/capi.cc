#include "capi.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../include/spindle.h"
#include "scheduler.h"

namespace spindle {

// What src/native-api.ts's park function returns (the same numbers as spindle_status).
enum JsPark : int32_t { kJsWoken = 0, kJsInterrupted = 1, kJsNotInFiber = 2, kJsTimedOut = 3, kJsError = 4 };

struct CApiEnv {
  napi_env env = nullptr;  // spindle's own env: the references below belong to it
  uv_loop_t* loop = nullptr;
  Scheduler* scheduler = nullptr;  // null once the scheduler is gone
  napi_ref fn_park = nullptr;
  napi_ref fn_current = nullptr;
  napi_ref fn_interrupted = nullptr;
  napi_ref fn_error = nullptr;
  uv_async_t async;
  bool detached = false;  // JS thread: teardown started
  int waiting = 0;        // JS thread: parks in progress (the async is referenced while > 0)
  // Cross-thread signals, drained by the async callback on the loop thread.
  std::mutex mu;
  bool closed = false;  // under mu: signals are ignored, the async may be closing
  std::vector<spindle_token*> queue;  // under mu; each holds a token reference
  std::shared_ptr<CApiEnv> keep_alive;  // set while libuv still owns `async` (until its close callback)
  void (*close_done)(void*) = nullptr;
  void* close_arg = nullptr;
  // JS thread: the environment's teardown, and the other addons' envs it is hooked to (see hook_env).
  void (*teardown)(void*) = nullptr;
  void* teardown_arg = nullptr;
  std::vector<napi_env> hooked;
};

}  // namespace spindle

struct spindle_token {
  std::atomic<uint32_t> refs{1};
  std::shared_ptr<spindle::CApiEnv> env;
  std::string label;
  // JS thread only:
  bool signalled = false;
  uint32_t waiter = 0;  // the fiber parked on it (scheduler handle), 0 if none
  spindle_cancel_cb cancel = nullptr;
  void* cancel_data = nullptr;
  // Under env->mu:
  bool queued = false;
};

namespace spindle {
namespace {

std::atomic<size_t> g_live_tokens{0};

// loop -> environment. Leaked on purpose: worker threads may still signal while the process exits.
struct Registry {
  std::mutex mu;
  std::vector<std::pair<uv_loop_t*, std::shared_ptr<CApiEnv>>> envs;
};
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

// The environment of an addon's napi_env: the one whose loop it runs on.
std::shared_ptr<CApiEnv> lookup(napi_env env) {
  uv_loop_t* loop = nullptr;
  if (env == nullptr || napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return nullptr;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (auto& entry : r.envs) {
    if (entry.first == loop) return entry.second;
  }
  return nullptr;
}

// A cleanup hook on another addon's env. Node frees an addon's napi_env from a cleanup hook registered
// when the addon loaded; spindle's own teardown hook was registered earlier and so runs later, too late
// for fibers parked inside that addon's calls (they resume there and use its env). A hook registered
// now, on that env, runs before both: it starts spindle's teardown early.
struct EnvHook {
  std::shared_ptr<CApiEnv> state;
  napi_env env;
};

void on_env_cleanup(void* arg) {
  auto* hook = static_cast<EnvHook*>(arg);
  CApiEnv& e = *hook->state;
  e.hooked.erase(std::remove(e.hooked.begin(), e.hooked.end(), hook->env), e.hooked.end());
  if (!e.detached && e.teardown != nullptr) e.teardown(e.teardown_arg);
  delete hook;
}

void hook_env(const std::shared_ptr<CApiEnv>& e, napi_env env) {
  if (env == e->env || e->detached) return;
  if (std::find(e->hooked.begin(), e->hooked.end(), env) != e->hooked.end()) return;
  auto* hook = new EnvHook{e, env};
  if (napi_add_env_cleanup_hook(env, on_env_cleanup, hook) != napi_ok) {
    delete hook;
    return;
  }
  e->hooked.push_back(env);
}

void begin_wait(CApiEnv& e) {
  if (e.waiting++ == 0 && !e.detached) uv_ref(reinterpret_cast<uv_handle_t*>(&e.async));
}

void end_wait(CApiEnv& e) {
  if (--e.waiting == 0 && !e.detached) uv_unref(reinterpret_cast<uv_handle_t*>(&e.async));
}

// Calls one of the registered JavaScript functions in spindle's env. False if it could not run or
// threw (termination at teardown, most likely): the pending exception is cleared so later calls work.
bool call_js(CApiEnv& e, napi_ref ref, size_t argc, const napi_value* argv, napi_value* result) {
  napi_value fn = nullptr, recv = nullptr;
  if (ref == nullptr || napi_get_reference_value(e.env, ref, &fn) != napi_ok || fn == nullptr) return false;
  napi_get_undefined(e.env, &recv);
  if (napi_call_function(e.env, recv, fn, argc, argv, result) == napi_ok) return true;
  napi_value ignored = nullptr;
  napi_get_and_clear_last_exception(e.env, &ignored);
  return false;
}

// ---- the table ----

void token_release(spindle_token* token);

uint64_t current_fiber(napi_env env) {
  std::shared_ptr<CApiEnv> e = lookup(env);
  if (e == nullptr || e->detached || e->scheduler == nullptr || e->scheduler->running_handle() == 0) return 0;
  napi_value result = nullptr;
  if (!call_js(*e, e->fn_current, 0, nullptr, &result)) return 0;
  double id = 0;
  if (napi_get_value_double(e->env, result, &id) != napi_ok || !(id > 0)) return 0;
  return static_cast<uint64_t>(id);
}

spindle_token* token_create(napi_env env, const char* label) {
  std::shared_ptr<CApiEnv> e = lookup(env);
  if (e == nullptr || e->detached) return nullptr;
  hook_env(e, env);
  auto* token = new spindle_token();
  token->env = std::move(e);
  token->label = label != nullptr && *label != '\0' ? label : "a native operation";
  g_live_tokens.fetch_add(1, std::memory_order_relaxed);
  return token;
}

void token_retain(spindle_token* token) {
  if (token != nullptr) token->refs.fetch_add(1, std::memory_order_relaxed);
}

void token_release(spindle_token* token) {
  if (token == nullptr) return;
  if (token->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  delete token;  // may drop the last reference to a torn-down environment's state: plain memory by then
  g_live_tokens.fetch_sub(1, std::memory_order_relaxed);
}

int token_set_cancel(spindle_token* token, spindle_cancel_cb cancel, void* data) {
  if (token == nullptr) return -1;
  token->cancel = cancel;
  token->cancel_data = data;
  return 0;
}

int token_is_signalled(const spindle_token* token) { return token != nullptr && token->signalled ? 1 : 0; }

int signal(spindle_token* token) {
  if (token == nullptr) return -1;
  CApiEnv& e = *token->env;
  if (e.detached || e.scheduler == nullptr) return -1;
  if (token->signalled) return 0;
  token->signalled = true;
  if (token->waiter != 0) {
    bool woke = false;
    e.scheduler->wake(token->waiter, &woke);  // false when it is the running fiber (a cancel callback)
  }
  return 0;
}

int signal_threadsafe(spindle_token* token) {
  if (token == nullptr) return -1;
  CApiEnv& e = *token->env;
  std::lock_guard<std::mutex> lock(e.mu);
  if (e.closed) return -1;
  if (!token->queued) {
    token->queued = true;
    token->refs.fetch_add(1, std::memory_order_relaxed);
    e.queue.push_back(token);
  }
  // Under the lock, so that teardown cannot close the handle between the check and the send.
  uv_async_send(&e.async);
  return 0;
}

void on_async(uv_async_t* handle) {
  auto& e = *static_cast<CApiEnv*>(handle->data);
  std::vector<spindle_token*> batch;
  {
    std::lock_guard<std::mutex> lock(e.mu);
    batch.swap(e.queue);
    for (spindle_token* token : batch) token->queued = false;
  }
  for (spindle_token* token : batch) {
    signal(token);
    token_release(token);
  }
}

spindle_status park(napi_env env, spindle_token* token, double timeout_ms) {
  if (token == nullptr) return SPINDLE_ERROR;
  std::shared_ptr<CApiEnv> found = lookup(env);
  if (found == nullptr || found != token->env) return SPINDLE_ERROR;
  CApiEnv& e = *found;
  if (e.detached || e.scheduler == nullptr) return SPINDLE_ERROR;
  hook_env(found, env);
  const uint32_t self = e.scheduler->running_handle();
  if (self == 0) return SPINDLE_NOT_IN_FIBER;
  if (token->signalled) return SPINDLE_WOKEN;
  if (token->waiter != 0) return SPINDLE_ERROR;

  token_retain(token);
  token->waiter = self;
  begin_wait(e);
  const bool timed = timeout_ms >= 0;
  const uint64_t deadline = timed ? uv_hrtime() + static_cast<uint64_t>(timeout_ms * 1e6) : 0;
  bool interrupted = false;
  spindle_status status = SPINDLE_ERROR;
  for (;;) {
    if (token->signalled) {
      status = interrupted ? SPINDLE_INTERRUPTED : SPINDLE_WOKEN;
      break;
    }
    double remaining = -1;
    if (timed && !interrupted) {
      const uint64_t now = uv_hrtime();
      remaining = now >= deadline ? 0 : static_cast<double>(deadline - now) / 1e6;
    }
    // park(timeoutMs, interruptible, label, originalTimeoutMs): once interrupted, the park waits for
    // the signal only (the cancellation must resolve the token).
    napi_value argv[4] = {nullptr, nullptr, nullptr, nullptr};
    napi_value result = nullptr;
    napi_create_double(e.env, remaining, &argv[0]);
    napi_get_boolean(e.env, !interrupted, &argv[1]);
    napi_create_string_utf8(e.env, token->label.c_str(), token->label.size(), &argv[2]);
    napi_create_double(e.env, timeout_ms, &argv[3]);
    int32_t outcome = kJsError;
    if (!call_js(e, e.fn_park, 4, argv, &result) || napi_get_value_int32(e.env, result, &outcome) != napi_ok) {
      outcome = kJsError;
    }
    if (outcome == kJsWoken) continue;
    if (outcome == kJsTimedOut) {
      if (token->signalled) continue;
      status = SPINDLE_TIMED_OUT;
      break;
    }
    if (outcome == kJsInterrupted && !interrupted) {
      interrupted = true;
      if (!token->signalled && token->cancel != nullptr) token->cancel(token, token->cancel_data);
      continue;
    }
    status = outcome == kJsNotInFiber ? SPINDLE_NOT_IN_FIBER : SPINDLE_ERROR;
    break;
  }
  token->waiter = 0;
  end_wait(e);
  token_release(token);
  return status;
}

int is_interrupted(napi_env env) {
  std::shared_ptr<CApiEnv> e = lookup(env);
  if (e == nullptr || e->detached || e->scheduler == nullptr || e->scheduler->running_handle() == 0) return 0;
  napi_value result = nullptr;
  bool interrupted = false;
  if (!call_js(*e, e->fn_interrupted, 0, nullptr, &result)) return 0;
  if (napi_get_value_bool(e->env, result, &interrupted) != napi_ok) return 0;
  return interrupted ? 1 : 0;
}

napi_status throw_status(napi_env env, spindle_status status, const char* operation) {
  if (status == SPINDLE_WOKEN) return napi_ok;
  std::shared_ptr<CApiEnv> e = lookup(env);
  if (e == nullptr || e->detached) {
    return napi_throw_error(env, "ERR_FIBER_TERMINATING",
                            "spindle is not loaded in this environment, or the environment is shutting down");
  }
  napi_value argv[2] = {nullptr, nullptr};
  napi_value error = nullptr;
  napi_create_int32(e->env, static_cast<int32_t>(status), &argv[0]);
  const char* op = operation != nullptr && *operation != '\0' ? operation : "a native operation";
  napi_create_string_utf8(e->env, op, NAPI_AUTO_LENGTH, &argv[1]);
  if (!call_js(*e, e->fn_error, 2, argv, &error)) return napi_pending_exception;
  return napi_throw(env, error);
}

size_t live_tokens() { return g_live_tokens.load(std::memory_order_relaxed); }

const spindle_api kTable = {
    SPINDLE_API_VERSION,
    static_cast<uint32_t>(sizeof(spindle_api)),
    current_fiber,
    token_create,
    token_retain,
    token_release,
    token_set_cancel,
    token_is_signalled,
    park,
    signal,
    signal_threadsafe,
    is_interrupted,
    throw_status,
    live_tokens,
};

napi_ref function_ref(napi_env env, napi_value fns, const char* name) {
  napi_value fn = nullptr;
  napi_valuetype type = napi_undefined;
  napi_ref ref = nullptr;
  if (napi_get_named_property(env, fns, name, &fn) != napi_ok || napi_typeof(env, fn, &type) != napi_ok ||
      type != napi_function) {
    return nullptr;
  }
  napi_create_reference(env, fn, 1, &ref);
  return ref;
}

}  // namespace

std::shared_ptr<CApiEnv> capi_attach(napi_env env, uv_loop_t* loop, Scheduler* scheduler, napi_value fns,
                                     void (*teardown)(void*), void* teardown_arg) {
  auto state = std::make_shared<CApiEnv>();
  state->teardown = teardown;
  state->teardown_arg = teardown_arg;
  state->env = env;
  state->loop = loop;
  state->scheduler = scheduler;
  state->fn_park = function_ref(env, fns, "park");
  state->fn_current = function_ref(env, fns, "current");
  state->fn_interrupted = function_ref(env, fns, "interrupted");
  state->fn_error = function_ref(env, fns, "error");
  if (state->fn_park == nullptr || state->fn_current == nullptr || state->fn_interrupted == nullptr ||
      state->fn_error == nullptr) {
    for (napi_ref ref : {state->fn_park, state->fn_current, state->fn_interrupted, state->fn_error}) {
      if (ref != nullptr) napi_delete_reference(env, ref);
    }
    return nullptr;
  }
  uv_async_init(loop, &state->async, on_async);
  state->async.data = state.get();
  uv_unref(reinterpret_cast<uv_handle_t*>(&state->async));  // referenced only while a fiber waits
  state->keep_alive = state;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.envs.emplace_back(loop, state);
  return state;
}

void capi_detach(CApiEnv& state) {
  if (state.detached) return;
  state.detached = true;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.envs.erase(std::remove_if(r.envs.begin(), r.envs.end(), [&](auto& entry) { return entry.second.get() == &state; }),
                 r.envs.end());
  }
  std::vector<spindle_token*> dropped;
  {
    std::lock_guard<std::mutex> lock(state.mu);
    state.closed = true;
    dropped.swap(state.queue);
    for (spindle_token* token : dropped) token->queued = false;
  }
  for (spindle_token* token : dropped) token_release(token);
  if (state.waiting > 0) uv_unref(reinterpret_cast<uv_handle_t*>(&state.async));
}

void capi_close(const std::shared_ptr<CApiEnv>& state, void (*done)(void*), void* arg) {
  CApiEnv& e = *state;
  capi_detach(e);
  e.scheduler = nullptr;
  for (napi_ref* ref : {&e.fn_park, &e.fn_current, &e.fn_interrupted, &e.fn_error}) {
    if (*ref != nullptr) napi_delete_reference(e.env, *ref);
    *ref = nullptr;
  }
  e.close_done = done;
  e.close_arg = arg;
  uv_close(reinterpret_cast<uv_handle_t*>(&e.async), [](uv_handle_t* handle) {
    auto* self = static_cast<CApiEnv*>(handle->data);
    void (*cb)(void*) = self->close_done;
    void* cb_arg = self->close_arg;
    std::shared_ptr<CApiEnv> last = std::move(self->keep_alive);  // may free self when this returns
    if (cb != nullptr) cb(cb_arg);
  });
}

const spindle_api* capi_table() { return &kTable; }

size_t capi_live_tokens() { return live_tokens(); }

}  // namespace spindle
