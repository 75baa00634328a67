// Backend selection, and the same-thread backend (same_thread.cc): every fiber runs on the loop thread
// on its own mmap'd stack; V8 is made to treat each fiber as its own thread by swapping its per-thread
// identity slots (tls_slots.h) around v8::Unlocker/v8::Locker, so that Locker archives and restores
// each fiber's V8 state and the GC visits parked fibers (ThreadManager::Iterate). Used only on an
// allowlisted Node build whose load-time self-check passes; carrier threads everywhere else.
#pragma once

#include <memory>
#include <string>

#include "engine.h"
#include "switch.h"

namespace spindle {

struct BackendChoice {
  std::string name;    // "carrier" or "same-thread"
  std::string reason;  // why this one
};

// Loop thread, inside a N-API call (the scheduler's construction). SPINDLE_BACKEND selects:
// unset, "carrier" or "threads": carrier threads (the default); "same-thread" (or "inplace", "auto"):
// the same-thread backend if this build is allowlisted and the self-check passes, else carriers.
std::unique_ptr<SwitchBackend> make_switch_backend(Engine& engine, FiberHost& host, BackendChoice* choice);

}  // namespace spindle
