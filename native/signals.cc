// Signals for fibers: signalWait(signums) starts a wait of the running fiber on any of those signals,
// as an IoOp (src/io/wait.ts waits on it; src/signals.ts is the public side).
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
  Napi::FunctionReference constructor;
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

class SignalWait final : public Napi::ObjectWrap<SignalWait> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SignalWait",
                       {
                           InstanceMethod<&SignalWait::Done>("done"),
                           InstanceMethod<&SignalWait::Cancel>("cancel"),
                           InstanceMethod<&SignalWait::Cancelled>("cancelled"),
                           InstanceMethod<&SignalWait::Signal>("signal"),
                       });
  }

  explicit SignalWait(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SignalWait>(info) {
    if (info.Length() > 0 && info[0].IsExternal()) op_ = info[0].As<Napi::External<SignalOp>>().Data();
  }
  ~SignalWait() override { delete op_; }

 private:
  Napi::Value Done(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), op_ == nullptr || op_->done()); }
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    if (op_ != nullptr) op_->cancel();
    return info.Env().Undefined();
  }
  Napi::Value Cancelled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), op_ != nullptr && op_->cancelled()); }
  Napi::Value Signal(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), op_ == nullptr ? 0 : op_->signum()); }

  SignalOp* op_ = nullptr;
};

Napi::Value Throw(Napi::Env env, const char* code, const char* message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.ThrowAsJavaScriptException();
  return Napi::Value();
}

// signalWait([signum, ...]): a SignalWait for the running fiber (or the loop thread: nobody to wake),
// or a negative libuv error number (UV_EINVAL for SIGKILL, SIGSTOP or an unknown number).
Napi::Value SignalWaitStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto& state = *static_cast<std::shared_ptr<SignalState>*>(info.Data());
  Scheduler* scheduler = scheduler_of(env);
  if (scheduler == nullptr || !state->alive) return Throw(env, "ERR_FIBER_STATE", "spindle's native core is not initialized");
  if (info.Length() < 1 || !info[0].IsArray()) return Throw(env, "ERR_INVALID_ARG_TYPE", "signalWait(signums)");
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<int> signums;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value v = list.Get(i);
    if (!v.IsNumber()) return Throw(env, "ERR_INVALID_ARG_TYPE", "signal numbers must be numbers");
    int signum = v.As<Napi::Number>().Int32Value();
    if (signum <= 0 || signum >= 65) return Napi::Number::New(env, UV_EINVAL);
    if (std::find(signums.begin(), signums.end(), signum) == signums.end()) signums.push_back(signum);
  }
  if (signums.empty()) return Throw(env, "ERR_INVALID_ARG_VALUE", "at least one signal is needed");
  if (state->loop == nullptr) napi_get_uv_event_loop(env, &state->loop);
  auto* op = new SignalOp(*scheduler, state);
  int rc = op->start(signums);
  if (rc != 0) {
    delete op;
    return Napi::Number::New(env, rc);
  }
  return state->constructor.New({Napi::External<SignalOp>::New(env, op)});
}

void teardown(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* boxed = static_cast<std::shared_ptr<SignalState>*>(arg);
  std::shared_ptr<SignalState> state = *boxed;
  delete boxed;
  state->alive = false;
  state->cleanup = handle;
  state->constructor.Reset();
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
  (*state)->constructor = Napi::Persistent(SignalWait::Define(env));
  exports.Set("signalWait", Napi::Function::New(env, SignalWaitStart, "signalWait", state));
  napi_add_async_cleanup_hook(env, teardown, state, nullptr);
}

}  // namespace spindle
