// IO operations fibers wait on (fs, tcp, pipes, dns, signals): the shape they share, and how an IO
// module reaches the scheduler. An operation is started for the running fiber; libuv completes it on
// the loop thread, where the operation records its result and wakes that fiber through the scheduler
// (completions only mark fibers ready). JavaScript holds the operation and reads its state: done,
// cancelled, result; src/io/wait.ts is the waiting side. A fiber never moves on while its operation
// is in flight (an interrupted or timed-out wait cancels, then waits for the cancellation), so a
// completion always wakes the wait it belongs to.
#pragma once

#include <napi.h>

#include <cstdint>

#include "scheduler.h"

namespace spindle {

// The scheduler of `env`'s environment, or nullptr before init / after teardown (bindings.cc).
Scheduler* scheduler_of(napi_env env);

class IoOp {
 public:
  explicit IoOp(Scheduler& scheduler) : scheduler_(scheduler), fiber_(scheduler.running_handle()) {}
  virtual ~IoOp() = default;
  IoOp(const IoOp&) = delete;
  IoOp& operator=(const IoOp&) = delete;

  bool done() const { return done_; }
  bool cancelled() const { return cancelled_; }
  // Asks libuv to stop the operation; its callback still runs (with UV_ECANCELED, or its result if it
  // was too late), and calls finish().
  virtual void cancel() = 0;
  // JavaScript let go of the operation (the finalizer of io_wrap's external): frees it, or leaves that
  // to the libuv callback of an operation still in flight (those override this).
  virtual void release(napi_env) { delete this; }

 protected:
  // From the operation's libuv callback, on the loop thread. A tracked operation leaves the registry
  // last: that may complete an environment's teardown (io_drain), after which the scheduler is gone,
  // so the caller must not touch scheduler_ after finish().
  void finish(bool cancelled) {
    done_ = true;
    cancelled_ = cancelled;
    bool woke = false;
    if (fiber_ != 0) scheduler_.wake(fiber_, &woke);
    if (tracked_) untrack();
  }

  // Opt-in: once libuv accepted the operation, track() enters it in its environment's registry of
  // operations in flight, which environment teardown cancels and drains (io_drain) before deleting
  // the scheduler. Use it for operations that may outlive their fiber's unwinding (threadpool
  // requests: fs, getaddrinfo) and whose cancel() is guaranteed to lead to a callback.
  void track();

  Scheduler& scheduler_;
  const uint32_t fiber_;  // 0 when started outside fibers (nobody to wake)
  bool done_ = false;
  bool cancelled_ = false;

 private:
  friend struct IoRegistry;
  friend void io_drain(Scheduler* scheduler, void (*done)(void*), void* arg);
  void untrack();
  bool tracked_ = false;
  IoOp* prev_ = nullptr;  // the registry's intrusive list (io.cc)
  IoOp* next_ = nullptr;
};

// Environment teardown (bindings.cc), on the loop thread, after scheduler->teardown() unwound the
// fibers and before the scheduler is deleted: cancels every tracked operation of `scheduler`'s
// environment and calls done(arg) once all of them have completed (at once when none is in flight).
// Their completions meanwhile find no fiber to wake (all were unwound). Threadpool requests already
// running cannot be cancelled: the drain waits for them to finish.
void io_drain(Scheduler* scheduler, void (*done)(void*), void* arg);
// How many tracked operations of `scheduler` are in flight (tests, diagnostics).
size_t io_in_flight(Scheduler* scheduler);

// The JavaScript surface of an operation (dns.cc, signals.cc): JavaScript holds it as a napi_external
// and passes that to plain functions (done, cancel, cancelled, then the module's own result getters).
// Not an ObjectWrap: while a Worker terminates, JavaScript may still make a call or two, and napi_unwrap
// (like every N-API call that first checks that JavaScript may run) then fails, which node-addon-api
// turns into a fatal error. These only use N-API calls that work during termination, and check the
// results of those that may not.
//
// The external owning `op` (its finalizer calls op->release()), or nullptr when the environment
// refuses to make one (a terminating Worker): `op` is then deleted at once, so wrap it before starting it.
napi_value io_wrap(napi_env env, IoOp* op);
// The operation behind argument 0 (an io_wrap external), or nullptr with an exception pending.
IoOp* io_arg(const Napi::CallbackInfo& info);
// Sets done(op), cancel(op) and cancelled(op) on `target`.
void io_define_common(Napi::Env env, Napi::Object target);
// Throws an Error with `code` through raw N-API, ignoring failures (the environment may no longer let
// native code throw; node-addon-api's throwing helpers abort then). Returns an empty value. Every
// error the addon throws goes through here but for the scheduler's calls, which are no N-API
// callbacks (engine.cc's hot_callback throws the same kind of Error itself).
Napi::Value throw_error(napi_env env, const char* code, const char* message);

// Each IO module adds its functions to the addon's exports (called from bindings.cc's module init).
void register_fs(Napi::Env env, Napi::Object exports);
void register_tcp(Napi::Env env, Napi::Object exports);
// Environment teardown (bindings.cc, before the scheduler unwinds): closes every socket and server of
// `scheduler`'s environment; their remaining libuv callbacks no longer wake fibers.
void tcp_teardown(Scheduler* scheduler);
void register_dns(Napi::Env env, Napi::Object exports);
void register_signals(Napi::Env env, Napi::Object exports);

}  // namespace spindle
