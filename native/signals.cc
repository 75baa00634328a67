// Signals for fibers: signals.wait(signums) starts a wait of the running fiber on any of those signals,
// as an IoOp held by JavaScript as a napi_external (io.h; src/io/wait.ts waits on it, signal(op) tells
// which one arrived; src/signals.ts is the public side). The op is freed when JavaScript lets go of it.
//
// One uv_signal_t per signal number and environment, made on first use. It is started (so it catches
// the signal and keeps the loop alive) only while at least one fiber waits on that signal, and stopped
// when the last waiter leaves: between waits the signal has its usual effect (the default action, or
// Node's process.on listeners), as with `events.once(process, 'SIGINT')`. A delivery wakes every fiber
// waiting on that signal. Cancelling a wait (interruption, timeout) just unregisters it: it completes
// at once. The handles are closed at environment teardown (an async cleanup hook, so Node waits for
// their close callbacks); the module's state is marked dead first, so nothing touches the scheduler
// afterwards.
#include <napi.h>
#include <uv.h>

#include <algorithm>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "io.h"

namespace spindle {
namespace {

class SignalOp;

struct SignalState;

struct Watch {
  uv_signal_t handle{};
  std::vector<SignalOp*> waiters;
  bool started = false;
  std::shared_ptr<SignalState> closing;  // set while the handle closes at teardown
};

struct SignalState {
  bool alive = true;
  uv_loop_t* loop = nullptr;
  std::map<int, Watch*> watches;
  napi_async_cleanup_hook_handle cleanup = nullptr;
  int closing = 0;
};

class SignalOp final : public IoOp {
 public:
  SignalOp(Scheduler& scheduler, std::shared_ptr<SignalState> state) : IoOp(scheduler), state_(std::move(state)) {}
  ~SignalOp() override { unregister(); }

  // Registers with each signal's watch (starting it if needed); a libuv error number on failure.
  int start(const std::vector<int>& signums) {
    for (int signum : signums) {
      Watch*& watch = state_->watches[signum];
      if (watch == nullptr) {
        watch = new Watch();
        watch->handle.data = watch;
        uv_signal_init(state_->loop, &watch->handle);
      }
      if (!watch->started) {
        int rc = uv_signal_start(&watch->handle, &SignalOp::on_signal, signum);
        if (rc != 0) {
          unregister();
          return rc;
        }
        watch->started = true;
      }
      watch->waiters.push_back(this);
      signums_.push_back(signum);
    }
    return 0;
  }

  void cancel() override {
    if (done_) return;
    unregister();
    finish(true);  // from the waiting fiber itself: nobody parked to wake, just done
  }

  int signum() const { return fired_; }

 private:
  // Leaves every watch it is on; stops the watches left without waiters.
  void unregister() {
    for (int signum : signums_) {
      auto it = state_->watches.find(signum);
      if (it == state_->watches.end()) continue;
      Watch* watch = it->second;
      auto& w = watch->waiters;
      w.erase(std::remove(w.begin(), w.end(), this), w.end());
      if (w.empty() && watch->started && state_->alive) {
        uv_signal_stop(&watch->handle);
        watch->started = false;
      }
    }
    signums_.clear();
  }

  static void on_signal(uv_signal_t* handle, int signum) {
    auto* watch = static_cast<Watch*>(handle->data);
    std::vector<SignalOp*> waiters = watch->waiters;
    for (SignalOp* op : waiters) {
      op->unregister();
      op->fired_ = signum;
      if (op->state_->alive) op->finish(false);
    }
  }

  std::shared_ptr<SignalState> state_;
  std::vector<int> signums_;
  int fired_ = 0;
};

// ---- the JavaScript surface: plain functions over an io_wrap external (io.h) ----

// wait([signum, ...]): the operation for the running fiber (or the loop thread: nobody to wake), a
// negative libuv error number (UV_EINVAL for SIGKILL, SIGSTOP or an unknown number), or undefined when
// the environment is going away. Raw N-API for the array: no abort while a Worker terminates.
Napi::Value SignalWaitStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // Freed by the teardown hook, which runs after the scheduler is gone: check the scheduler first.
  auto* state = static_cast<std::shared_ptr<SignalState>*>(info.Data());
  Scheduler* scheduler = scheduler_of(env);
  if (scheduler == nullptr || !(*state)->alive) return throw_error(env, "ERR_FIBER_STATE", "spindle's native core is not initialized");
  uint32_t length = 0;
  if (info.Length() < 1 || napi_get_array_length(env, info[0], &length) != napi_ok) {
    return throw_error(env, "ERR_INVALID_ARG_TYPE", "wait(signums)");
  }
  std::vector<int> signums;
  for (uint32_t i = 0; i < length; ++i) {
    napi_value v = nullptr;
    int32_t signum = 0;
    if (napi_get_element(env, info[0], i, &v) != napi_ok) return env.Undefined();  // terminating
    if (napi_get_value_int32(env, v, &signum) != napi_ok) return throw_error(env, "ERR_INVALID_ARG_TYPE", "signal numbers must be numbers");
    if (signum <= 0 || signum >= 65) return Napi::Number::New(env, UV_EINVAL);
    if (std::find(signums.begin(), signums.end(), signum) == signums.end()) signums.push_back(signum);
  }
  if (signums.empty()) return throw_error(env, "ERR_INVALID_ARG_VALUE", "at least one signal is needed");
  if ((*state)->loop == nullptr) napi_get_uv_event_loop(env, &(*state)->loop);
  auto* op = new SignalOp(*scheduler, *state);
  napi_value handle = io_wrap(env, op);
  if (handle == nullptr) return env.Undefined();
  int rc = op->start(signums);
  if (rc != 0) return Napi::Number::New(env, rc);  // the external frees it
  return Napi::Value(env, handle);
}

Napi::Value Signal(const Napi::CallbackInfo& info) {
  auto* op = static_cast<SignalOp*>(io_arg(info));
  return op == nullptr ? Napi::Value() : Napi::Number::New(info.Env(), op->signum());
}

void teardown(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* boxed = static_cast<std::shared_ptr<SignalState>*>(arg);
  std::shared_ptr<SignalState> state = *boxed;
  delete boxed;
  state->alive = false;
  state->cleanup = handle;
  // Waits still registered (their fibers were unwound without running JavaScript) forget their watches.
  std::map<int, Watch*> watches = std::move(state->watches);
  state->watches.clear();
  state->closing = 1;
  for (auto& [signum, watch] : watches) {
    state->closing++;
    watch->closing = state;
    uv_close(reinterpret_cast<uv_handle_t*>(&watch->handle), [](uv_handle_t* h) {
      auto* w = static_cast<Watch*>(h->data);
      std::shared_ptr<SignalState> s = std::move(w->closing);
      delete w;
      if (--s->closing == 0) napi_remove_async_cleanup_hook(s->cleanup);
    });
  }
  if (--state->closing == 0) napi_remove_async_cleanup_hook(state->cleanup);
}

}  // namespace

void register_signals(Napi::Env env, Napi::Object exports) {
  auto* state = new std::shared_ptr<SignalState>(std::make_shared<SignalState>());
  Napi::Object signals = Napi::Object::New(env);
  signals.Set("wait", Napi::Function::New(env, SignalWaitStart, "wait", state));
  io_define_common(env, signals);
  signals.Set("signal", Napi::Function::New(env, Signal, "signal"));
  exports.Set("signals", signals);
  napi_add_async_cleanup_hook(env, teardown, state, nullptr);
}

}  // namespace spindle
