// Execution contexts: the loop thread and the fibers. Plain data shared by the scheduler (which decides
// who runs next) and the switch backend (which moves the runner role). Touched only by the runner.
#pragma once

#include <cstddef>
#include <cstdint>

#include "baton.h"

namespace spindle {

class Carrier;

enum class FiberState : uint8_t {
  kCreated,    // not started, not queued (a coroutine waiting for its first resume)
  kReady,      // in the ready queue
  kRunning,    // holds the runner role
  kParked,     // waiting for wake(): a scheduler suspension
  kSuspended,  // waiting for resume(): yielded to its resumer
  kResuming,   // waiting inside resume() for the fiber it resumed to yield or finish
  kDone,
};

// Anything that can hold the runner role.
struct Context {
  Baton baton;
  // The context to return to when this one yields, parks with nothing else ready, or finishes.
  Context* resumer = nullptr;
  // Engine-owned per-context state saved across switches (the async context frame); see engine.h.
  void* saved_frame = nullptr;
  // Switch-backend-owned per-context state (the same-thread backend's saved stack and V8 identity).
  void* switch_state = nullptr;
  bool is_main = false;
};

struct Fiber : Context {
  uint32_t handle = 0;  // slot | generation << kSlotBits, the id JavaScript holds
  FiberState state = FiberState::kCreated;
  bool started = false;
  uint8_t wake_reason = 0;  // WakeReason of the last wake
  size_t stack_size = 0;
  Carrier* carrier = nullptr;  // carrier-thread backend: the thread this fiber runs on
  uint64_t timer_seq = 0;      // nonzero while a park timeout is armed
  Fiber* next_ready = nullptr;  // intrusive ready queue link
};

enum WakeReason : uint8_t { kWoken = 0, kTimedOut = 1 };

}  // namespace spindle
