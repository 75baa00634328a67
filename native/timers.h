// Park timeouts: one libuv timer per scheduler over a min-heap of deadlines. A fiber that parks with a
// timeout arms an entry; a wake-up disarms it lazily (the entry stays, its sequence number no longer
// matches). The uv timer is active, and so keeps the loop alive, only while some entry is armed.
#pragma once

#include <uv.h>

#include <cstdint>
#include <vector>

#include "context.h"

namespace spindle {

class ParkTimers {
 public:
  // expire(handle, seq) runs on the loop thread for each armed entry that comes due.
  using ExpireFn = void (*)(void* owner, uint32_t handle, uint64_t seq);
  // armed(handle, seq): whether that fiber still waits on that entry (used to drop stale entries).
  using ArmedFn = bool (*)(void* owner, uint32_t handle, uint64_t seq);

  ParkTimers(uv_loop_t* loop, ExpireFn expire, ArmedFn armed, void* owner);
  void arm(Fiber& fiber, double timeout_ms);
  void disarm(Fiber& fiber);
  // Starts closing the uv handle; close_cb(owner) runs when libuv is done with it.
  void close(void (*close_cb)(void*));

 private:
  struct Entry {
    uint64_t deadline;
    uint64_t seq;
    uint32_t handle;
  };
  static bool later(const Entry& a, const Entry& b) { return a.deadline > b.deadline; }
  static void on_timer(uv_timer_t* timer);
  void reschedule();

  uv_loop_t* loop_;
  uv_timer_t timer_;
  ExpireFn expire_;
  ArmedFn armed_fn_;
  void* owner_;
  void (*close_cb_)(void*) = nullptr;
  std::vector<Entry> heap_;
  uint64_t next_seq_ = 1;
  size_t armed_ = 0;
  uint64_t scheduled_for_ = 0;  // deadline the uv timer is set for (0: stopped)
};

}  // namespace spindle
