// Backend selection, and the inplace (same-thread) backend (same_thread.cc): every fiber runs on the
// loop thread on its own mmap'd stack; V8 is made to treat each fiber as its own thread by swapping its
// per-thread identity slots (tls_slots.h) around v8::Unlocker/v8::Locker, so that Locker archives and
// restores each fiber's V8 state and the GC visits parked fibers (ThreadManager::Iterate). Used only on an
// allowlisted Node build whose load-time self-check passes; carrier threads everywhere else.
#pragma once

#include <memory>
#include <string>

#include "engine.h"
#include "switch.h"

namespace spindle {

struct BackendChoice {
  std::string name;    // "threads" (carrier threads) or "inplace" (same-thread)
  std::string reason;  // why this one
};

// Loop thread, inside a N-API call (the scheduler's construction). `requested` is the backend passed
// to configure() ("auto", "inplace" or "threads"), or empty: then SPINDLE_BACKEND decides ("auto",
// "inplace", "threads"; "same-thread" and "carrier" are aliases), and unset means "auto". "auto" and
// "inplace" take the same-thread backend only if this build is allowlisted and the self-check passes,
// else carrier threads, with the refusal in `choice->reason`; an unknown value means carrier threads.
std::unique_ptr<SwitchBackend> make_switch_backend(Engine& engine, FiberHost& host, const std::string& requested,
                                                   BackendChoice* choice);

}  // namespace spindle
