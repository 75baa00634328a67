#include "carrier.h"

#include <sched.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <mutex>

#include "address_space.h"
#include "baton.h"

namespace spindle {

namespace {

// Native frames below the JavaScript stack limit (V8 runtime calls, GC, N-API) need room too.
size_t stack_reserve(size_t stack_size) { return std::clamp<size_t>(stack_size / 8, 48 * 1024, 192 * 1024); }

// Keep a hand-off on one core: a futex wake-up that crosses vCPUs costs ten times one that stays.
// The next runner's thread is moved to the CPU of the thread waking it when they differ.
void follow_cpu(pthread_t thread, int& pinned_cpu) {
  int cpu = sched_getcpu();
  if (cpu < 0 || cpu == pinned_cpu) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(thread, sizeof(set), &set) == 0) pinned_cpu = cpu;
}

#if defined(__linux__) && !defined(PR_FUTEX_HASH)
#define PR_FUTEX_HASH 78
#define PR_FUTEX_HASH_SET_SLOTS 1
#define PR_FUTEX_HASH_GET_SLOTS 2
#endif

// Carrier threads alive in this process (every environment's).
std::atomic<size_t> process_carriers{0};

// Linux 6.16+ gives a process a private futex hash sized for its CPUs, not its threads: 16 buckets
// on this 2-vCPU machine. Every parked carrier waits on its own futex, and a wake walks its bucket:
// with 10,000 parked carriers a hand-off round trip went from 9.5 to 52 us (a C program with 10,000
// threads in FUTEX_WAIT), and back to 8.3 us with 16,384 slots. So the hash grows with the carriers,
// to about 4 buckets per thread, in steps of 8x. Left alone where the kernel has no private hash or
// the process uses the global one.
void fit_futex_hash(size_t threads) {
#if defined(__linux__)
  constexpr size_t kMaxSlots = size_t{1} << 17;
  static std::mutex mutex;
  static size_t slots = 0;  // 0: not read yet; kMaxSlots: leave it alone
  std::lock_guard<std::mutex> lock(mutex);
  if (slots == 0) {
    const int now = prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0);
    slots = now > 0 ? static_cast<size_t>(now) : kMaxSlots;
  }
  const size_t want = std::bit_ceil(threads * 4);
  if (want <= slots || slots >= kMaxSlots) return;
  const size_t grown = std::min(std::max(want, slots * 8), kMaxSlots);
  slots = prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, grown, 0, 0) == 0 ? grown : kMaxSlots;
#else
  (void)threads;
#endif
}

// SPINDLE_CPU_FOLLOW=0 turns it off (for measuring what it buys).
bool cpu_follow_enabled() {
  const char* env = std::getenv("SPINDLE_CPU_FOLLOW");
  return env == nullptr || env[0] != '0';
}

}  // namespace

class Carrier {
 public:
  Carrier(CarrierBackend& backend, size_t stack_size) : backend_(backend), stack_size_(stack_size) {}

  bool start() {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack_size_);
    int rc = pthread_create(&thread_, &attr, &Carrier::main, this);
    pthread_attr_destroy(&attr);
    return rc == 0;
  }

  // Give this idle carrier a fiber to run (nullptr: retire).
  void assign(Fiber* fiber) {
    fiber_ = fiber;
    if (fiber != nullptr) fiber->carrier = this;
    idle_baton_.post();
  }

  void join() { pthread_join(thread_, nullptr); }

  pthread_t thread() const { return thread_; }
  int& pinned_cpu() { return pinned_cpu_; }
  size_t stack_size() const { return stack_size_; }

 private:
  static void* main(void* self) {
    static_cast<Carrier*>(self)->loop();
    return nullptr;
  }

  void loop() {
    pthread_attr_t attr;
    void* stack_addr = nullptr;
    size_t stack_size = 0;
    pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &stack_addr, &stack_size);
    pthread_attr_destroy(&attr);
    const auto stack_low = reinterpret_cast<uintptr_t>(stack_addr);

    for (;;) {
      idle_baton_.wait();
      if (fiber_ == nullptr) return;  // retired by shutdown(): the isolate may be gone, touch nothing
      backend_.engine_.run_on_carrier(stack_low, stack_reserve(stack_size_), &Carrier::run_fibers, this);
      // Unlocked now, but still the runner in the scheduler's books: return to the pool (or retire),
      // then hand the role on.
      Context& next = *next_;
      next_ = nullptr;
      bool keep = backend_.keep_idle(this);
      if (!keep) backend_.engine_.discard_thread_data();
      backend_.wake(next);
      if (!keep) {
        pthread_detach(thread_);
        delete this;
        return;
      }
    }
  }

  // With the isolate locked: run our fiber, then, while the next runner is a fiber never started that
  // fits this stack, run it here too: a finishing fiber hands off to a new one with no thread switch.
  static void run_fibers(void* self) {
    auto& carrier = *static_cast<Carrier*>(self);
    FiberHost& host = carrier.backend_.host_;
    for (;;) {
      Fiber& fiber = *carrier.fiber_;
      host.run_body(fiber);
      Context& next = host.finished(fiber);  // frees `fiber`
      carrier.fiber_ = nullptr;
      if (!next.is_main) {
        auto& next_fiber = static_cast<Fiber&>(next);
        if (!next_fiber.started && next_fiber.stack_size == carrier.stack_size_) {
          carrier.backend_.started(next_fiber);  // its reserved carrier stays idle for another fiber
          carrier.fiber_ = &next_fiber;
          next_fiber.carrier = &carrier;
          continue;
        }
      }
      carrier.next_ = &next;
      return;
    }
  }

  CarrierBackend& backend_;
  const size_t stack_size_;
  pthread_t thread_{};
  Baton idle_baton_;
  Fiber* fiber_ = nullptr;
  Context* next_ = nullptr;
  int pinned_cpu_ = -1;
};

CarrierBackend::CarrierBackend(Engine& engine, FiberHost& host)
    : engine_(engine), host_(host), follow_cpu_(cpu_follow_enabled()) {}

CarrierBackend::~CarrierBackend() { shutdown(); }

CarrierBackend::Pool& CarrierBackend::pool(size_t stack_size) {
  for (Pool& p : pools_) {
    if (p.stack_size == stack_size) return p;
  }
  pools_.push_back(Pool{stack_size, {}, 0});
  return pools_.back();
}

bool CarrierBackend::reserve(Fiber& fiber) {
  Pool& p = pool(fiber.stack_size);
  if (p.idle.size() <= p.reserved) {
    if (!address_space_allows(fiber.stack_size)) return false;
    auto* carrier = new Carrier(*this, fiber.stack_size);
    if (!carrier->start()) {
      delete carrier;
      return false;
    }
    ++alive_;
    fit_futex_hash(process_carriers.fetch_add(1, std::memory_order_relaxed) + 1);
    p.idle.push_back(carrier);
  }
  ++p.reserved;
  return true;
}

void CarrierBackend::release(Fiber& fiber) { --pool(fiber.stack_size).reserved; }

void CarrierBackend::started(Fiber& fiber) {
  fiber.started = true;
  --pool(fiber.stack_size).reserved;
}

bool CarrierBackend::keep_idle(Carrier* carrier) {
  Pool& p = pool(carrier->stack_size());
  if (shut_down_ || p.idle.size() >= kMaxIdle + p.reserved) {
    --alive_;
    process_carriers.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  p.idle.push_back(carrier);
  return true;
}

void CarrierBackend::wake(Context& to) {
  if (!to.is_main) {
    auto& fiber = static_cast<Fiber&>(to);
    if (!fiber.started) {
      // First run: take the carrier reserved for it (at least one idle carrier of its size exists).
      started(fiber);
      Pool& p = pool(fiber.stack_size);
      Carrier* carrier = p.idle.back();
      p.idle.pop_back();
      if (follow_cpu_) follow_cpu(carrier->thread(), carrier->pinned_cpu());
      carrier->assign(&fiber);
      return;
    }
    if (follow_cpu_) follow_cpu(fiber.carrier->thread(), fiber.carrier->pinned_cpu());
  }
  to.baton.post();
}

void CarrierBackend::switch_to(Context& from, Context& to) {
  struct Args {
    CarrierBackend* self;
    Context* from;
    Context* to;
  } args{this, &from, &to};
  engine_.unlocked(
      from.is_main,
      [](void* p) {
        auto& a = *static_cast<Args*>(p);
        a.self->wake(*a.to);
        a.from->baton.wait();
      },
      &args);
}

void CarrierBackend::shutdown() {
  shut_down_ = true;
  std::vector<Pool> pools;
  pools.swap(pools_);
  for (Pool& p : pools) {
    for (Carrier* carrier : p.idle) {
      carrier->assign(nullptr);
      carrier->join();
      delete carrier;
      --alive_;
      process_carriers.fetch_sub(1, std::memory_order_relaxed);
    }
  }
}

int futex_hash_slots() {
#if defined(__linux__)
  return prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0);
#else
  return -1;
#endif
}

}  // namespace spindle
