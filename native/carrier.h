// Carrier-thread backend: every live fiber runs on its own OS thread, one thread runs at a time; the
// hand-off is v8::Unlocker on the leaving thread and v8::Locker on the next, with a Baton between them.
// Finished fibers return their thread to a pool, so spawning needs no thread creation.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <vector>

#include "engine.h"
#include "switch.h"

namespace spindle {

class CarrierBackend final : public SwitchBackend {
 public:
  CarrierBackend(Engine& engine, FiberHost& host);
  ~CarrierBackend() override;

  void switch_to(Context& from, Context& to) override;
  bool reserve(Fiber& fiber) override;
  void release(Fiber& fiber) override;
  void shutdown() override;

  // Idle carriers kept for reuse beyond those reserved; finishing carriers past this retire.
  static constexpr size_t kMaxIdle = 256;

  size_t threads_alive() const override { return alive_; }
  const char* refusal() const override {
    return "cannot create a thread for another fiber: the system's thread or memory-map limit is reached "
           "(each live fiber has a carrier thread)";
  }

 private:
  friend class Carrier;
  // Idle carriers of one stack size, and how many of them are promised to fibers not started yet.
  struct Pool {
    size_t stack_size;
    std::vector<Carrier*> idle;  // LIFO: the most recently used thread has the warmest stack and caches
    size_t reserved = 0;
  };
  Pool& pool(size_t stack_size);
  void wake(Context& to);
  void started(Fiber& fiber);        // a reserved fiber took its carrier (or ran on a finished one's)
  bool keep_idle(Carrier* carrier);  // false: the pool is full, the carrier should retire

  Engine& engine_;
  FiberHost& host_;
  std::vector<Pool> pools_;
  size_t alive_ = 0;
  bool shut_down_ = false;
  const bool follow_cpu_;
};

// The process's futex hash slots (Linux 6.16+): grown with the carrier threads (carrier.cc); 0 when
// the process uses the kernel's global hash, negative where the kernel has no per-process hash.
int futex_hash_slots();

}  // namespace spindle
