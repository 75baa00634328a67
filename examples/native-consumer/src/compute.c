/* Plain C, no Node, no spindle: the kind of blocking code a native library has. */
#define _POSIX_C_SOURCE 199309L
#include "compute.h"

#include <time.h>

static uint64_t steps(uint64_t x) {
  uint64_t count = 0;
  while (x != 1) {
    x = (x & 1) ? 3 * x + 1 : x / 2;
    ++count;
  }
  return count;
}

int collatz_total(uint64_t n, uint32_t delay_ms, int (*should_stop)(void* arg), void* arg, uint64_t* out) {
  const uint64_t chunks = 20;
  const long pause_ns = (long)delay_ms * 1000000L / (long)chunks;
  uint64_t total = 0, i = 1;
  for (uint64_t c = 1; c <= chunks; ++c) {
    const uint64_t end = n * c / chunks;
    for (; i <= end; ++i) total += steps(i);
    if (should_stop != 0 && should_stop(arg)) return 1;
    if (pause_ns > 0) {
      struct timespec ts;
      ts.tv_sec = pause_ns / 1000000000L;
      ts.tv_nsec = pause_ns % 1000000000L;
      nanosleep(&ts, 0);
    }
  }
  *out = total;
  return 0;
}
