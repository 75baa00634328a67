// Baton: the one-shot wake-up each parked context waits on. On Linux a private futex, waited on at
// once: the next runner is already chosen when a context parks, so spinning first (as libstdc++'s
// std::atomic::wait does, with sched_yield) only adds context switches once many threads take turns.
// Elsewhere C++20 atomic wait/notify (ulock on macOS, WaitOnAddress on Windows).
#pragma once

#include <atomic>
#include <cstdint>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace spindle {

class Baton {
 public:
  // Wakes the waiter (or lets its next wait() return at once).
  void post() noexcept {
    flag_.store(1, std::memory_order_release);
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&flag_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
#else
    flag_.notify_one();
#endif
  }

  // Blocks until post() was called since the last wait() returned; consumes that post.
  void wait() noexcept {
    while (flag_.exchange(0, std::memory_order_acquire) == 0) {
#if defined(__linux__)
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(&flag_), FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
#else
      flag_.wait(0, std::memory_order_relaxed);
#endif
    }
  }

 private:
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  std::atomic<uint32_t> flag_{0};
};

}  // namespace spindle
