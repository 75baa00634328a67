// The per-environment registry of IO operations in flight (io.h): environment teardown cancels them and
// waits for their callbacks before the scheduler they would wake is deleted, so no completion touches
// freed memory and no request is still active when Node closes a Worker's loop.
//
// Operations are started on the running fiber's carrier thread and complete on the loop thread; within
// one environment only the runner touches its registry, but environments (the main thread and each
// Worker) run in parallel, so the map of registries takes a lock.
//
// Also the JavaScript surface dns and signals share (io_wrap, io_arg, io_define_common), and the
// error thrower every native module uses (throw_error).
#include <mutex>
#include <unordered_map>
#include <vector>

#include "io.h"

namespace spindle {

struct IoRegistry {
  IoOp* head = nullptr;
  size_t count = 0;
  bool draining = false;
  bool cancelling = false;  // inside io_drain's cancel loop: completion is reported after it
  void (*done)(void*) = nullptr;
  void* done_arg = nullptr;

  void link(IoOp& op) {
    op.prev_ = nullptr;
    op.next_ = head;
    if (head != nullptr) head->prev_ = &op;
    head = &op;
    ++count;
  }
  void unlink(IoOp& op) {
    if (op.prev_ != nullptr) {
      op.prev_->next_ = op.next_;
    } else {
      head = op.next_;
    }
    if (op.next_ != nullptr) op.next_->prev_ = op.prev_;
    op.prev_ = op.next_ = nullptr;
    --count;
  }
};

namespace {

std::mutex registries_lock;
std::unordered_map<const Scheduler*, IoRegistry>& registries() {
  static auto* map = new std::unordered_map<const Scheduler*, IoRegistry>();  // never destroyed: exit-safe
  return *map;
}

}  // namespace

void IoOp::track() {
  std::lock_guard<std::mutex> lock(registries_lock);
  registries()[&scheduler_].link(*this);
  tracked_ = true;
}

void IoOp::untrack() {
  void (*done)(void*) = nullptr;
  void* arg = nullptr;
  {
    std::lock_guard<std::mutex> lock(registries_lock);
    auto it = registries().find(&scheduler_);
    tracked_ = false;
    if (it == registries().end()) return;
    IoRegistry& reg = it->second;
    reg.unlink(*this);
    if (reg.count == 0 && reg.draining && !reg.cancelling) {
      done = reg.done;
      arg = reg.done_arg;
      registries().erase(it);
    }
  }
  if (done != nullptr) done(arg);
}

void io_drain(Scheduler* scheduler, void (*done)(void*), void* arg) {
  std::vector<IoOp*> ops;
  {
    std::lock_guard<std::mutex> lock(registries_lock);
    auto it = registries().find(scheduler);
    if (it == registries().end() || it->second.count == 0) {
      if (it != registries().end()) registries().erase(it);
    } else {
      IoRegistry& reg = it->second;
      reg.draining = true;
      reg.cancelling = true;
      reg.done = done;
      reg.done_arg = arg;
      for (IoOp* op = reg.head; op != nullptr; op = op->next_) ops.push_back(op);
    }
  }
  if (ops.empty()) {
    done(arg);
    return;
  }
  // cancel() of a threadpool request only queues its callback; an operation whose cancel() completes
  // at once leaves the registry meanwhile, and the completion is reported below rather than mid-loop.
  for (IoOp* op : ops) {
    bool still_tracked;
    {
      std::lock_guard<std::mutex> lock(registries_lock);
      still_tracked = op->tracked_;
    }
    if (still_tracked) op->cancel();
  }
  bool finished = false;
  {
    std::lock_guard<std::mutex> lock(registries_lock);
    auto it = registries().find(scheduler);
    it->second.cancelling = false;
    if (it->second.count == 0) {
      registries().erase(it);
      finished = true;
    }
  }
  if (finished) done(arg);
}

// ---- the JavaScript surface (io.h) ----

napi_value io_wrap(napi_env env, IoOp* op) {
  napi_value external = nullptr;
  auto finalize = [](napi_env env, void* data, void*) { static_cast<IoOp*>(data)->release(env); };
  if (napi_create_external(env, op, finalize, nullptr, &external) != napi_ok) {
    // Only an environment that is going away refuses: stop the fiber rather than let it retry.
    if (Scheduler* scheduler = scheduler_of(env)) scheduler->environment_stopping();
    delete op;
    return nullptr;
  }
  return external;
}

IoOp* io_arg(const Napi::CallbackInfo& info) {
  void* data = nullptr;
  if (info.Length() < 1 || napi_get_value_external(info.Env(), info[0], &data) != napi_ok) {
    throw_error(info.Env(), "ERR_INVALID_ARG_TYPE", "expected an IO operation");
    return nullptr;
  }
  return static_cast<IoOp*>(data);
}

Napi::Value throw_error(napi_env env, const char* code, const char* message) {
  napi_value msg, code_value, error;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) == napi_ok &&
      napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value) == napi_ok &&
      napi_create_error(env, code_value, msg, &error) == napi_ok) {
    napi_throw(env, error);
  }
  return Napi::Value();
}

void io_define_common(Napi::Env env, Napi::Object target) {
  auto done = [](const Napi::CallbackInfo& info) -> Napi::Value {
    IoOp* op = io_arg(info);
    return op == nullptr ? Napi::Value() : Napi::Boolean::New(info.Env(), op->done());
  };
  auto cancel = [](const Napi::CallbackInfo& info) -> Napi::Value {
    IoOp* op = io_arg(info);
    if (op != nullptr) op->cancel();
    return info.Env().Undefined();
  };
  auto cancelled = [](const Napi::CallbackInfo& info) -> Napi::Value {
    IoOp* op = io_arg(info);
    return op == nullptr ? Napi::Value() : Napi::Boolean::New(info.Env(), op->cancelled());
  };
  target.Set("done", Napi::Function::New(env, done, "done"));
  target.Set("cancel", Napi::Function::New(env, cancel, "cancel"));
  target.Set("cancelled", Napi::Function::New(env, cancelled, "cancelled"));
}

size_t io_in_flight(Scheduler* scheduler) {
  std::lock_guard<std::mutex> lock(registries_lock);
  auto it = registries().find(scheduler);
  return it == registries().end() ? 0 : it->second.count;
}

}  // namespace spindle
