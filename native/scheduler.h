// Scheduler: the fiber table, the ready queue and the dispatch pass. One per JavaScript environment
// (the main thread and each Worker). Completions (timers, IO, a settled promise) only mark a fiber
// ready; one dispatch pass, driven from the libuv loop (idle and check phases), hands the runner role
// from fiber to fiber directly and returns to the loop thread only when no fiber is ready.
//
// On top of that sits the asymmetric coroutine primitive: resume(fiber) runs a fiber from the caller
// until it yields, parks or finishes; suspend() yields back to whoever resumed it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "context.h"
#include "engine.h"
#include "same_thread.h"
#include "switch.h"
#include "timers.h"

namespace spindle {

enum class Status {
  kOk,
  kNotInFiber,   // a fiber-only operation called from the loop thread
  kBadHandle,    // no such live fiber
  kBadState,     // the fiber is not in a state that allows this
  kTerminating,  // the environment is going away
};

class Scheduler final : public FiberHost {
 public:
  // Loop thread, inside a N-API call. `backend`: the switch backend asked for by configure() ("auto",
  // "inplace", "threads"), or empty for SPINDLE_BACKEND's choice (see make_switch_backend).
  Scheduler(napi_env env, napi_value trampoline, uv_loop_t* loop, const std::string& backend);
  ~Scheduler();

  // Memory shared with JavaScript (an ArrayBuffer's), so reading the current fiber costs no call:
  // [0] = the running fiber's handle, or 0 on the loop thread.
  void share_state(int32_t* state) {
    shared_ = state;
    shared_[0] = 0;
  }

  // A new fiber, not started; 0 when the system refuses the thread it will need.
  uint32_t create(size_t stack_size);
  Status spawn(uint32_t handle);       // queue a created fiber to start
  Status wake(uint32_t handle, bool* woke);  // a parked fiber becomes ready; false if it was not parked
  Status park(double timeout_ms, WakeReason* reason);  // suspend the running fiber until woken
  Status yield_now();
  Status resume(uint32_t handle);  // run a created or suspended fiber until it yields, parks or ends
  Status suspend();                // yield the running fiber to its resumer

  // The running fiber's handle, or 0 when the loop thread runs. Runner only.
  uint32_t running_handle() const { return running_->is_main ? 0 : static_cast<Fiber*>(running_)->handle; }
  size_t live_fibers() const { return live_; }
  size_t threads_alive() const;
  const char* create_refusal() const;  // why create() returned 0, as an error message
  // Cooperative budget for IO completed inline (a file read served from the page cache without
  // suspending; native/fs.cc): a fiber doing only such IO would never leave the runner role, and no
  // other fiber, timer or IO callback would run. inline_allowed() says whether the runner may complete
  // one more operation inline; charge_inline() books one. The budget is per turn: it refills whenever
  // the runner role moves (the fiber parked, yielded to another or finished). Once it is spent, the
  // fiber lets the event loop turn before its next inline operation, so the others run. 64 operations
  // (or 4 MiB): about half a millisecond of 64 KiB cached reads; with the yield, measured to cost
  // nothing beyond the benchmark's noise (32 did not either). Runner only.
  static constexpr uint32_t kInlineOps = 64;
  static constexpr size_t kInlineBytes = 4u << 20;
  bool inline_allowed() const { return inline_ops_ < kInlineOps && inline_bytes_ < kInlineBytes; }
  void charge_inline(size_t bytes) {
    ++inline_ops_;
    inline_bytes_ += bytes;
  }

  // The switch backend in use ("threads" or "inplace") and why it was chosen.
  const BackendChoice& backend_choice() const { return backend_choice_; }

  // The environment is going away before teardown (its loop was asked to stop; N-API refuses to make
  // values): no fiber runs any more, and a running one is terminated. An error it could catch would let
  // a fiber that retries in a loop spin forever, and the environment would never finish stopping.
  void environment_stopping();

  // Environment teardown, on the loop thread: unwind every live fiber, stop the threads, close the
  // libuv handles; done(arg) runs when libuv is finished with them and the scheduler can be deleted.
  void teardown(void (*done)(void*), void* arg);

  // FiberHost
  void run_body(Fiber& fiber) override;
  Context& finished(Fiber& fiber) override;

 private:
  static constexpr uint32_t kSlotBits = 22;
  static constexpr uint32_t kSlotMask = (1u << kSlotBits) - 1;
  static constexpr int kPassBudget = 256;  // switches per dispatch pass
  static constexpr int kPassesPerTurn = 8;  // passes per loop phase before the loop gets a turn

  Fiber* lookup(uint32_t handle) const;
  Fiber* running_fiber() const { return running_->is_main ? nullptr : static_cast<Fiber*>(running_); }
  void push_ready(Fiber& fiber);
  Fiber& pop_ready();
  Context& next_after(Context& leaving);
  void transfer(Context& from, Context& to);
  void set_running(Context& ctx);
  void request_dispatch();
  void dispatch();
  void dispatch_pass();
  void unwind(Fiber& fiber);
  void free_fiber(Fiber& fiber);
  static void on_expire(void* self, uint32_t handle, uint64_t seq);
  static bool is_armed(void* self, uint32_t handle, uint64_t seq);
  static void handle_closed(void* self);

  Engine engine_;
  BackendChoice backend_choice_;
  std::unique_ptr<SwitchBackend> backend_;
  uv_loop_t* loop_;
  ParkTimers timers_;
  uv_idle_t idle_;    // active while fibers are ready: keeps the loop alive and its poll from blocking
  uv_check_t check_;  // after IO callbacks: run what they made ready in the same loop iteration
  int closing_ = 0;
  void (*teardown_done_)(void*) = nullptr;
  void* teardown_arg_ = nullptr;

  Context main_;
  Context* running_ = &main_;
  Fiber* ready_head_ = nullptr;
  Fiber* ready_tail_ = nullptr;
  bool idle_active_ = false;
  bool dispatching_ = false;
  bool terminating_ = false;      // no more switching: a fiber was terminated, or teardown
  bool fiber_terminated_ = false;
  bool unwinding_ = false;
  int budget_ = 0;
  uint32_t inline_ops_ = 0;  // inline IO since the runner role last moved (see inline_allowed)
  size_t inline_bytes_ = 0;

  std::vector<Fiber*> slots_;
  std::vector<uint16_t> generations_;
  std::vector<uint32_t> free_slots_;
  size_t live_ = 0;
  int32_t own_state_[1] = {0};
  int32_t* shared_ = own_state_;
};

}  // namespace spindle
