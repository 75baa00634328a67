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
  void shutdown() override;

  // Idle carriers kept for reuse; finishing carriers beyond this retire.
  static constexpr size_t kMaxIdle = 256;

  size_t threads_alive() const { return alive_; }

 private:
  friend class Carrier;
  void wake(Context& to);
  Carrier* take_idle(size_t stack_size);
  bool keep_idle(Carrier* carrier);  // false: the pool is full, the carrier should retire

  Engine& engine_;
  FiberHost& host_;
  std::vector<Carrier*> idle_;  // LIFO: the most recently used thread has the warmest stack and caches
  size_t alive_ = 0;
  bool shut_down_ = false;
  const bool follow_cpu_;
};

}  // namespace spindle
