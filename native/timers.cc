#include "timers.h"

#include <algorithm>
#include <cmath>

namespace spindle {

ParkTimers::ParkTimers(uv_loop_t* loop, ExpireFn expire, ArmedFn armed, void* owner)
    : loop_(loop), expire_(expire), armed_fn_(armed), owner_(owner) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

void ParkTimers::arm(Fiber& fiber, double timeout_ms) {
  // The loop's cached time is stale while fibers run: refresh it so the timeout counts from now.
  uv_update_time(loop_);
  const double ms = std::ceil(std::max(0.0, timeout_ms));
  const uint64_t deadline = uv_now(loop_) + static_cast<uint64_t>(std::min(ms, 1e15));
  fiber.timer_seq = next_seq_++;
  ++armed_;
  heap_.push_back({deadline, fiber.timer_seq, fiber.handle});
  std::push_heap(heap_.begin(), heap_.end(), later);
  if (scheduled_for_ == 0 || deadline < scheduled_for_) reschedule();
}

void ParkTimers::disarm(Fiber& fiber) {
  if (fiber.timer_seq == 0) return;
  fiber.timer_seq = 0;
  if (--armed_ == 0) {
    // Nothing armed: drop the stale entries and stop, so no timer keeps the process alive.
    heap_.clear();
    uv_timer_stop(&timer_);
    scheduled_for_ = 0;
  } else if (heap_.size() > 64 + 4 * armed_) {
    // Mostly stale (timeouts beaten by wake-ups): keep the heap proportional to what is armed.
    std::erase_if(heap_, [this](const Entry& e) { return !armed_fn_(owner_, e.handle, e.seq); });
    std::make_heap(heap_.begin(), heap_.end(), later);
  }
}

void ParkTimers::reschedule() {
  if (heap_.empty() || armed_ == 0) {
    uv_timer_stop(&timer_);
    scheduled_for_ = 0;
    return;
  }
  const uint64_t deadline = heap_.front().deadline;
  const uint64_t now = uv_now(loop_);
  uv_timer_start(&timer_, &ParkTimers::on_timer, deadline > now ? deadline - now : 0, 0);
  scheduled_for_ = deadline;
}

void ParkTimers::on_timer(uv_timer_t* timer) {
  auto& self = *static_cast<ParkTimers*>(timer->data);
  self.scheduled_for_ = 0;
  const uint64_t now = uv_now(self.loop_);
  while (!self.heap_.empty() && self.heap_.front().deadline <= now) {
    std::pop_heap(self.heap_.begin(), self.heap_.end(), later);
    Entry entry = self.heap_.back();
    self.heap_.pop_back();
    // The owner checks the entry is still armed (the fiber lives and its timer_seq matches) and
    // disarms it through disarm(), which keeps armed_ right.
    self.expire_(self.owner_, entry.handle, entry.seq);
  }
  self.reschedule();
}

void ParkTimers::close(void (*close_cb)(void*)) {
  close_cb_ = close_cb;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* handle) {
    auto& self = *static_cast<ParkTimers*>(handle->data);
    self.close_cb_(self.owner_);
  });
}

}  // namespace spindle
