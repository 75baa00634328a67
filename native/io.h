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

 protected:
  // From the operation's libuv callback, on the loop thread.
  void finish(bool cancelled) {
    done_ = true;
    cancelled_ = cancelled;
    bool woke = false;
    if (fiber_ != 0) scheduler_.wake(fiber_, &woke);
  }

  Scheduler& scheduler_;
  const uint32_t fiber_;  // 0 when started outside fibers (nobody to wake)
  bool done_ = false;
  bool cancelled_ = false;
};

// Each IO module adds its functions to the addon's exports (called from bindings.cc's module init).
void register_fs(Napi::Env env, Napi::Object exports);
void register_tcp(Napi::Env env, Napi::Object exports);
void register_dns(Napi::Env env, Napi::Object exports);
void register_signals(Napi::Env env, Napi::Object exports);

}  // namespace spindle
