// Baton: the one-shot wake-up each parked context waits on. C++20 atomic wait/notify is a futex on
// Linux (ulock on macOS, WaitOnAddress on Windows); spinning for the hand-off loses on small machines.
#pragma once

#include <atomic>
#include <cstdint>

namespace spindle {

class Baton {
 public:
  // Wakes the waiter (or lets its next wait() return at once).
  void post() noexcept {
    flag_.store(1, std::memory_order_release);
    flag_.notify_one();
  }

  // Blocks until post() was called since the last wait() returned; consumes that post.
  void wait() noexcept {
    while (flag_.exchange(0, std::memory_order_acquire) == 0) flag_.wait(0, std::memory_order_relaxed);
  }

 private:
  std::atomic<uint32_t> flag_{0};
};

}  // namespace spindle
