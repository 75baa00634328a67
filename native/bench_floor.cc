#include "bench_floor.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "baton.h"

namespace spindle {

namespace {

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

}  // namespace

double baton_round_trip_ns(uint32_t iterations, uint32_t rounds, bool same_core) {
  Baton ping, pong;
  const int cpu = sched_getcpu();
  cpu_set_t saved;
  pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved);
  if (same_core && cpu >= 0) pin_to(cpu);
  const uint64_t total = static_cast<uint64_t>(iterations) * rounds;
  std::thread peer([&] {
    if (same_core && cpu >= 0) pin_to(cpu);
    for (uint64_t i = 0; i < total; ++i) {
      ping.wait();
      pong.post();
    }
  });
  std::vector<double> samples;
  for (uint32_t r = 0; r < rounds; ++r) {
    auto start = std::chrono::steady_clock::now();
    for (uint32_t i = 0; i < iterations; ++i) {
      ping.post();
      pong.wait();
    }
    std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
    samples.push_back(elapsed.count() / iterations);
  }
  peer.join();
  pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

}  // namespace spindle
