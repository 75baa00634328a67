// The switch interface: how the runner role moves between contexts. The scheduler decides who runs;
// a backend only moves the role. This file knows nothing about V8 or libuv.
#pragma once

#include <cstddef>

#include "context.h"

namespace spindle {

// Implemented by the scheduler; called by a backend on the thread or stack a fiber runs on.
class FiberHost {
 public:
  // Runs the fiber's body (its JavaScript function) to completion.
  virtual void run_body(Fiber& fiber) = 0;
  // The fiber's body returned: book it as done and return the context that runs next. That context
  // already holds the runner role in the scheduler's books; it may be a fiber never started.
  virtual Context& finished(Fiber& fiber) = 0;

 protected:
  ~FiberHost() = default;
};

class SwitchBackend {
 public:
  virtual ~SwitchBackend() = default;
  // `from`, the runner, hands the runner role to `to` (parked in an earlier switch_to, or a fiber never
  // started) and blocks until some context switches back to it. Called inside a HandleScope
  // (Engine::switch_frames): re-locking the isolate may create handles.
  virtual void switch_to(Context& from, Context& to) = 0;
  // Sets aside what a new fiber needs to start (a carrier thread, a stack), so that starting it later
  // cannot fail. False when the system refuses (thread or memory-map limits).
  virtual bool reserve(Fiber& fiber) = 0;
  // A fiber that reserved is dropped without ever starting.
  virtual void release(Fiber& fiber) = 0;
  // Environment teardown: release idle resources (threads, stacks). No fiber is live any more.
  virtual void shutdown() = 0;
  // What a refused reserve() ran out of, as the error message of the spawn it failed.
  virtual const char* refusal() const = 0;
  // OS threads this backend keeps (carrier threads); 0 for a backend that runs on the loop thread.
  virtual size_t threads_alive() const { return 0; }
};

}  // namespace spindle
