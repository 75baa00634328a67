#include "scheduler.h"

namespace spindle {

Scheduler::Scheduler(napi_env env, napi_value trampoline, uv_loop_t* loop, const std::string& backend)
    : engine_(env, trampoline),
      backend_(make_switch_backend(engine_, *this, backend, &backend_choice_)),
      loop_(loop),
      timers_(loop, &Scheduler::on_expire, &Scheduler::is_armed, this) {
  main_.is_main = true;
  uv_idle_init(loop_, &idle_);
  idle_.data = this;
  uv_check_init(loop_, &check_);
  check_.data = this;
  uv_check_start(&check_, [](uv_check_t* h) { static_cast<Scheduler*>(h->data)->dispatch(); });
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
  slots_.push_back(nullptr);  // slot 0 is never used: handle 0 means "the loop thread"
  generations_.push_back(0);
}

Scheduler::~Scheduler() = default;

size_t Scheduler::threads_alive() const {
  return backend_->threads_alive();
}

const char* Scheduler::create_refusal() const { return backend_->refusal(); }

Fiber* Scheduler::lookup(uint32_t handle) const {
  const uint32_t slot = handle & kSlotMask;
  if (slot == 0 || slot >= slots_.size()) return nullptr;
  Fiber* fiber = slots_[slot];
  return fiber != nullptr && fiber->handle == handle ? fiber : nullptr;
}

uint32_t Scheduler::create(size_t stack_size) {
  if (free_slots_.empty() && slots_.size() > kSlotMask) return 0;
  auto* fiber = new Fiber();
  fiber->stack_size = stack_size;
  if (!backend_->reserve(*fiber)) {
    delete fiber;
    return 0;
  }
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(nullptr);
    generations_.push_back(0);
  }
  const uint32_t generation = ++generations_[slot] & ((1u << (32 - kSlotBits)) - 1);
  fiber->handle = slot | (generation << kSlotBits);
  engine_.capture_frame(*fiber);  // it starts in its spawner's async context
  slots_[slot] = fiber;
  ++live_;
  return fiber->handle;
}

void Scheduler::set_running(Context& ctx) {
  running_ = &ctx;
  inline_ops_ = 0;
  inline_bytes_ = 0;
  shared_[0] = ctx.is_main ? 0 : static_cast<int32_t>(static_cast<Fiber&>(ctx).handle);
}

void Scheduler::push_ready(Fiber& fiber) {
  fiber.state = FiberState::kReady;
  fiber.next_ready = nullptr;
  if (ready_tail_ != nullptr) {
    ready_tail_->next_ready = &fiber;
  } else {
    ready_head_ = &fiber;
  }
  ready_tail_ = &fiber;
  request_dispatch();
}

Fiber& Scheduler::pop_ready() {
  Fiber& fiber = *ready_head_;
  ready_head_ = fiber.next_ready;
  if (ready_head_ == nullptr) ready_tail_ = nullptr;
  fiber.next_ready = nullptr;
  return fiber;
}

void Scheduler::request_dispatch() {
  if (idle_active_ || closing_ != 0) return;
  idle_active_ = true;
  uv_idle_start(&idle_, [](uv_idle_t* h) { static_cast<Scheduler*>(h->data)->dispatch(); });
}

// Who runs when `leaving` stops running. Fibers whose resumer is the dispatch pass hand off directly to
// the next ready fiber (which inherits that resumer); everything else returns to its resumer.
Context& Scheduler::next_after(Context& leaving) {
  Context& resumer = *leaving.resumer;
  if (&resumer == &main_ && dispatching_ && ready_head_ != nullptr && budget_ > 0 && !terminating_) {
    --budget_;
    Fiber& next = pop_ready();
    next.resumer = &main_;
    next.state = FiberState::kRunning;
    return next;
  }
  if (!resumer.is_main) static_cast<Fiber&>(resumer).state = FiberState::kRunning;
  return resumer;
}

void Scheduler::transfer(Context& from, Context& to) {
  if (&from == &to) return;
  // The async context frame is per context, the loop thread's too: a coroutine resumed from the loop
  // thread must not leave its frame (its AsyncLocalStorage stores, Node 24+) to the resumer.
  struct Hop {
    Scheduler* self;
    Context* from;
    Context* to;
  } hop{this, &from, &to};
  engine_.switch_frames(
      from,
      [](void* p) {
        auto& h = *static_cast<Hop*>(p);
        h.self->set_running(*h.to);
        h.self->backend_->switch_to(*h.from, *h.to);
      },
      &hop);
  // Back in `from`: whoever switched here has already booked it as running.
  if (from.is_main) {
    // A fiber was terminated (Worker termination reaches whichever thread runs): pass it on to the
    // loop thread's own JavaScript too.
    if (fiber_terminated_ && !unwinding_) engine_.terminate();
  } else if (unwinding_) {
    engine_.terminate();  // teardown resumed us to unwind: run no more of our code
  }
}

Status Scheduler::spawn(uint32_t handle) {
  Fiber* fiber = lookup(handle);
  if (fiber == nullptr) return Status::kBadHandle;
  if (fiber->state != FiberState::kCreated || fiber->started) return Status::kBadState;
  push_ready(*fiber);
  return Status::kOk;
}

Status Scheduler::wake(uint32_t handle, bool* woke) {
  *woke = false;
  Fiber* fiber = lookup(handle);
  if (fiber == nullptr) return Status::kBadHandle;
  if (fiber->state != FiberState::kParked) return Status::kOk;
  timers_.disarm(*fiber);
  fiber->wake_reason = kWoken;
  push_ready(*fiber);
  *woke = true;
  return Status::kOk;
}

Status Scheduler::park(double timeout_ms, WakeReason* reason) {
  Fiber* self = running_fiber();
  if (self == nullptr) return Status::kNotInFiber;
  if (terminating_) return Status::kTerminating;
  self->state = FiberState::kParked;
  if (timeout_ms >= 0) timers_.arm(*self, timeout_ms);
  transfer(*self, next_after(*self));
  *reason = static_cast<WakeReason>(self->wake_reason);
  return Status::kOk;
}

Status Scheduler::yield_now() {
  Fiber* self = running_fiber();
  if (self == nullptr) return Status::kNotInFiber;
  push_ready(*self);
  Context& next = next_after(*self);
  if (&next == self) return Status::kOk;  // it was the only one ready: keep running
  transfer(*self, next);
  return Status::kOk;
}

Status Scheduler::resume(uint32_t handle) {
  Fiber* target = lookup(handle);
  if (target == nullptr) return Status::kBadHandle;
  if (target->state != FiberState::kCreated && target->state != FiberState::kSuspended) {
    return Status::kBadState;
  }
  if (terminating_) return Status::kTerminating;
  Context& self = *running_;
  if (!self.is_main) static_cast<Fiber&>(self).state = FiberState::kResuming;
  target->resumer = &self;
  target->state = FiberState::kRunning;
  transfer(self, *target);
  return Status::kOk;
}

Status Scheduler::suspend() {
  Fiber* self = running_fiber();
  if (self == nullptr) return Status::kNotInFiber;
  self->state = FiberState::kSuspended;
  transfer(*self, next_after(*self));
  return Status::kOk;
}

void Scheduler::run_body(Fiber& fiber) {
  engine_.restore_frame(fiber);
  if (!engine_.call_trampoline(fiber.handle) && !unwinding_) fiber_terminated_ = terminating_ = true;
}

Context& Scheduler::finished(Fiber& fiber) {
  fiber.state = FiberState::kDone;
  timers_.disarm(fiber);
  Context& next = next_after(fiber);
  free_fiber(fiber);
  set_running(next);
  return next;
}

void Scheduler::free_fiber(Fiber& fiber) {
  const uint32_t slot = fiber.handle & kSlotMask;
  slots_[slot] = nullptr;
  free_slots_.push_back(slot);
  --live_;
  engine_.release_frame(fiber);
  delete &fiber;
}

void Scheduler::dispatch() {
  // The loop was asked to stop: Node stops an environment that way (a Worker being terminated), and
  // then no longer calls into JavaScript, so fibers' IO would fail at once. Node still turns the loop
  // during its cleanup, before teardown: from here on, fibers wait for teardown to unwind them.
  if (loop_->stop_flag != 0) environment_stopping();
  const bool idle = ready_head_ == nullptr || terminating_;
  if (idle || running_ != &main_ || dispatching_ || closing_ != 0) {
    if (idle && idle_active_) {
      idle_active_ = false;
      uv_idle_stop(&idle_);
    }
    return;
  }
  // Closing the callback scope runs ticks and microtasks, which may make more fibers ready: run them
  // too before the loop polls, up to a bound that keeps fibers yielding in a loop from starving IO.
  for (int pass = 0; pass < kPassesPerTurn && ready_head_ != nullptr && !terminating_; ++pass) {
    engine_.in_callback_scope([](void* self) { static_cast<Scheduler*>(self)->dispatch_pass(); }, this);
  }
  if (ready_head_ == nullptr && idle_active_) {
    idle_active_ = false;
    uv_idle_stop(&idle_);
  }
}

void Scheduler::dispatch_pass() {
  dispatching_ = true;
  budget_ = kPassBudget;
  Fiber& first = pop_ready();
  first.resumer = &main_;
  first.state = FiberState::kRunning;
  transfer(main_, first);
  dispatching_ = false;
}

void Scheduler::environment_stopping() {
  terminating_ = true;
  if (!running_->is_main) engine_.terminate();
}

void Scheduler::on_expire(void* self, uint32_t handle, uint64_t seq) {
  auto& scheduler = *static_cast<Scheduler*>(self);
  Fiber* fiber = scheduler.lookup(handle);
  if (fiber == nullptr || fiber->timer_seq != seq || fiber->state != FiberState::kParked) return;
  scheduler.timers_.disarm(*fiber);
  fiber->wake_reason = kTimedOut;
  scheduler.push_ready(*fiber);
}

bool Scheduler::is_armed(void* self, uint32_t handle, uint64_t seq) {
  Fiber* fiber = static_cast<Scheduler*>(self)->lookup(handle);
  return fiber != nullptr && fiber->timer_seq == seq;
}

// Resume a fiber one last time so that it unwinds: its switching call sees unwinding() and requests
// termination, which unwinds its JavaScript frames without running any more of its code.
void Scheduler::unwind(Fiber& fiber) {
  if (ready_head_ != nullptr && fiber.state == FiberState::kReady) {
    // Take it out of the ready queue: it is resumed directly below.
    Fiber** link = &ready_head_;
    Fiber* prev = nullptr;
    while (*link != &fiber) {
      prev = *link;
      link = &(*link)->next_ready;
    }
    *link = fiber.next_ready;
    if (ready_tail_ == &fiber) ready_tail_ = prev;
  }
  fiber.resumer = &main_;
  fiber.state = FiberState::kRunning;
  transfer(main_, fiber);
}

void Scheduler::teardown(void (*done)(void*), void* arg) {
  teardown_done_ = done;
  teardown_arg_ = arg;
  closing_ = 1;
  unwinding_ = true;
  terminating_ = true;
  // Fibers never started have no stack to unwind: drop them. Started ones are resumed to unwind.
  for (size_t slot = 1; slot < slots_.size(); ++slot) {
    Fiber* fiber = slots_[slot];
    if (fiber == nullptr) continue;
    if (fiber->started) {
      unwind(*fiber);
    } else {
      backend_->release(*fiber);
      free_fiber(*fiber);
    }
  }
  ready_head_ = ready_tail_ = nullptr;
  backend_->shutdown();
  engine_.release_frame(main_);
  // Three handles to close; the last close callback reports back.
  closing_ = 3;
  timers_.close(&Scheduler::handle_closed);
  auto on_close = [](uv_handle_t* h) { handle_closed(h->data); };
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), on_close);
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), on_close);
}

void Scheduler::handle_closed(void* self) {
  auto& scheduler = *static_cast<Scheduler*>(self);
  if (--scheduler.closing_ == 0) scheduler.teardown_done_(scheduler.teardown_arg_);
}

}  // namespace spindle
