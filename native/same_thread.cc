// The inplace (same-thread) switch backend. Besides engine.cc, the only file in native/ that calls V8
// directly: the switch sequence needs v8::Locker/Unlocker, the stack limit and the per-thread metadata
// around each stack switch. The thread-slot offsets and the allowlist are in tls_slots.cc; the assembly in
// stack_switch_x64.cc. Design: ../shared/design/same-thread-backend.md.
//
// Switch sequence (switch_to): Unlocker (archives the leaving context's V8 thread state); save the
// leaving context's slots, load the target's; switch stacks; when switched back, the Unlocker's
// destructor re-locks under our own ThreadId (restoring our archived state), and the heap's stack
// start is refreshed from the (swapped) stack-start slot: by the relock itself from V8 12 on, else by
// a balanced Isolate::Enter/Exit (tls::Facts). The whole switch runs inside one HandleScope of the
// scheduler's (Engine::switch_frames).
// A new fiber starts with ThreadId 0 (its Locker allocates a fresh one), its stack top as stack start
// and the resumer's isolate slots; it locks, sets its stack limit, runs, and at its end unlocks and
// discards its per-thread metadata before switching away for good.
#include "same_thread.h"

#undef NAPI_VERSION
#include <node.h>
#include <sys/mman.h>
#include <unistd.h>
#include <v8.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "address_space.h"
#include "carrier.h"
#include "context.h"
#include "stack_switch.h"
#include "tls_slots.h"

namespace spindle {

#if SPINDLE_HAVE_STACK_SWITCH

namespace {

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

// Native frames below the JavaScript stack limit (V8 runtime calls, GC, N-API) need room too.
size_t stack_reserve(size_t stack_size) { return std::clamp<size_t>(stack_size / 8, 48 * 1024, 192 * 1024); }

struct Stack {
  void* map = nullptr;
  size_t map_size = 0;
  size_t size = 0;  // the size asked for (the pool key)
  uintptr_t low = 0;
  uintptr_t high = 0;
};

// Maps a stack of `size` usable bytes above one PROT_NONE guard page.
bool map_stack(size_t size, Stack* out) {
  const size_t page = page_size();
  const size_t usable = (size + page - 1) & ~(page - 1);
  const size_t total = usable + page;
  if (!address_space_allows(total)) return false;
  void* map = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
  if (map == MAP_FAILED) return false;
  if (mprotect(map, page, PROT_NONE) != 0) {
    munmap(map, total);
    return false;
  }
  out->map = map;
  out->map_size = total;
  out->size = size;
  out->low = reinterpret_cast<uintptr_t>(map) + page;
  out->high = reinterpret_cast<uintptr_t>(map) + total;
  return true;
}

void unmap_stack(Stack& s) {
  if (s.map != nullptr) munmap(s.map, s.map_size);
  s = Stack{};
}

class SameThreadBackend;

// Per-context switch state (Context::switch_state).
struct Frame {
  void* sp = nullptr;  // saved stack pointer while parked
  tls::Slots slots;    // V8's per-thread identity while parked
  Stack stack;         // fibers only
  bool started = false;
  bool probe = false;  // the self-check's native-only probe fiber
  Context* owner = nullptr;
  SameThreadBackend* backend = nullptr;
};

class SameThreadBackend final : public SwitchBackend {
 public:
  SameThreadBackend(FiberHost& host, v8::Isolate* isolate)
      : host_(host), isolate_(isolate), relock_sets_stack_start_(tls::facts().relock_sets_stack_start) {
    v8::HandleScope handles(isolate);
    context_.Reset(isolate, isolate->GetCurrentContext());
  }

  ~SameThreadBackend() override {
    for (Frame* fr : main_frames_) delete fr;  // their owners may be gone already: do not touch them
    main_frames_.clear();
    shutdown();
    context_.Reset();
  }

  void switch_to(Context& from, Context& to) override {
    Frame& f = frame(from);
    Frame& t = frame(to);
    {
      v8::Unlocker unlocker(isolate_);
      tls::save(isolate_, f.slots);
      if (!t.started) start(f.slots, t);
      tls::load(isolate_, t.slots);
      spindle_stack_switch(&f.sp, t.sp);
      // Back: whoever switched here loaded our slots; ~Unlocker re-locks as us.
    }
    if (!relock_sets_stack_start_) refresh_stack_start();
    reap();
  }

  bool reserve(Fiber& fiber) override {
    auto* fr = new Frame();
    fr->owner = &fiber;
    fr->backend = this;
    if (!take_stack(fiber.stack_size, &fr->stack)) {
      delete fr;
      return false;
    }
    fiber.switch_state = fr;
    return true;
  }

  void release(Fiber& fiber) override {
    auto* fr = static_cast<Frame*>(fiber.switch_state);
    if (fr == nullptr) return;
    give_stack(fr->stack);
    delete fr;
    fiber.switch_state = nullptr;
  }

  const char* refusal() const override {
    return "cannot map a stack for another fiber: the system's memory or memory-map limit is reached "
           "(each live fiber has its own stack mapping)";
  }

  void shutdown() override {
    reap();
    for (Pool& p : pools_) {
      for (Stack& s : p.idle) unmap_stack(s);
    }
    pools_.clear();
    for (Frame* fr : main_frames_) {
      fr->owner->switch_state = nullptr;  // a later switch (none is expected) starts a fresh frame
      delete fr;
    }
    main_frames_.clear();
  }

  // The second gate, on the loop thread with the isolate locked: the slots behave as located, then a
  // native-only probe fiber gets its own ThreadId, throws and catches, parks, finishes, and the loop
  // thread's values come back each time.
  bool self_check(std::string* reason) {
    if (!tls::check_slots(isolate_, reason)) return false;
    Context probe_main;
    probe_main.is_main = true;
    Fiber probe;
    probe.stack_size = 256 * 1024;
    auto* fr = new Frame();
    fr->owner = &probe;
    fr->backend = this;
    fr->probe = true;
    if (!take_stack(probe.stack_size, &fr->stack)) {
      delete fr;
      *reason = "self-check: cannot map a probe stack";
      return false;
    }
    probe.switch_state = fr;
    probe_return_ = &probe_main;
    tls::Slots before;
    tls::save(isolate_, before);
    probe_ = ProbeResult{};
    probe_.main_id = before.thread_id;

    switch_to(probe_main, probe);  // the probe runs, parks
    tls::Slots mid;
    tls::save(isolate_, mid);
    const bool mid_ok = same_identity(before, mid) && v8::Locker::IsLocked(isolate_) &&
                        v8::Isolate::TryGetCurrent() == isolate_;
    switch_to(probe_main, probe);  // the probe finishes
    tls::Slots after;
    tls::save(isolate_, after);
    const bool after_ok = same_identity(before, after) && v8::Locker::IsLocked(isolate_);
    forget_main(probe_main);

    if (!probe_.new_id) *reason = "self-check: the probe fiber did not get its own V8 ThreadId";
    else if (!probe_.caught) *reason = "self-check: the probe fiber could not throw and catch";
    else if (!probe_.kept_id) *reason = "self-check: the probe fiber's ThreadId did not survive a park";
    else if (!mid_ok || !after_ok) *reason = "self-check: the loop thread's V8 identity did not come back";
    else return true;
    return false;
  }

 private:
  struct Pool {
    size_t size;
    std::vector<Stack> idle;
  };
  struct ProbeResult {
    uint32_t main_id = 0;
    bool new_id = false;
    bool caught = false;
    bool kept_id = false;
  };
  // Idle stacks kept per size: mapping, guarding and faulting in a fresh stack costs more than the
  // fiber itself (perf: two thirds of a short fiber's cost went to mmap, mprotect, munmap and page faults).
  static constexpr size_t kMaxIdle = 1024;

  static bool same_identity(const tls::Slots& a, const tls::Slots& b) {
    return a.thread_id == b.thread_id && a.stack_start == b.stack_start && a.isolate == b.isolate &&
           a.thread_data == b.thread_data && a.stack_size == b.stack_size;
  }

  Frame& frame(Context& ctx) {
    if (ctx.switch_state == nullptr) {
      // The loop thread's context: its identity is whatever the thread has when it first switches.
      auto* fr = new Frame();
      fr->owner = &ctx;
      fr->backend = this;
      fr->started = true;
      ctx.switch_state = fr;
      main_frames_.push_back(fr);
    }
    return *static_cast<Frame*>(ctx.switch_state);
  }

  void forget_main(Context& ctx) {
    auto* fr = static_cast<Frame*>(ctx.switch_state);
    main_frames_.erase(std::remove(main_frames_.begin(), main_frames_.end(), fr), main_frames_.end());
    delete fr;
    ctx.switch_state = nullptr;
  }

  // A fiber's first switch: its identity starts from the resumer's, with the ThreadId of a finished
  // fiber, or none yet (its Locker then allocates one). V8's ThreadIds come from a 32-bit counter that
  // is never reset: one per fiber would run out after 2^31 spawns; a finished fiber's id has no V8
  // state left (its Locker freed the thread resources, DiscardThreadSpecificMetadata the rest), just
  // like a pooled carrier thread's between fibers.
  void start(const tls::Slots& resumer, Frame& t) {
    t.slots = resumer;
    t.slots.thread_id = 0;
    if (!free_ids_.empty()) {
      t.slots.thread_id = free_ids_.back();
      free_ids_.pop_back();
    }
    t.slots.stack_start = t.stack.high;
    t.slots.stack_size = t.stack.high - (t.stack.low + stack_reserve(t.stack.size));
    t.sp = stack_prepare(t.stack.high, &SameThreadBackend::entry, &t);
    t.started = true;
    if (!t.owner->is_main) static_cast<Fiber*>(t.owner)->started = true;
  }

  // The heap caches the stack start its conservative stack scan (cppgc) starts from; a balanced
  // Isolate::Enter/Exit refreshes it from the (swapped) stack-start slot. Needed after every lock
  // that does not do it itself (tls::Facts): without it Node 26 segfaults in IteratePointersInStack
  // under --stress-compaction.
  void refresh_stack_start() {
    isolate_->Enter();
    isolate_->Exit();
  }

  static void entry(void* arg) {
    auto* fr = static_cast<Frame*>(arg);
    fr->backend->run(*fr);
  }

  [[noreturn]] void run(Frame& fr) {
    reap();
    Context* next = nullptr;
    {
      v8::Locker locker(isolate_);
      isolate_->SetStackLimit(fr.stack.low + stack_reserve(fr.stack.size));
      refresh_stack_start();
      v8::HandleScope handles(isolate_);
      v8::Context::Scope context_scope(context_.Get(isolate_));
      if (fr.probe) {
        probe_body(fr);
        next = probe_return_;
      } else {
        auto& fiber = static_cast<Fiber&>(*fr.owner);
        host_.run_body(fiber);
        next = &host_.finished(fiber);  // frees `fiber`, not `fr`
      }
    }
    isolate_->DiscardThreadSpecificMetadata();
    // This stack is still in use until the switch below: whoever runs next returns it (reap()).
    retired_ = fr.stack;
    tls::Slots mine;
    tls::save(isolate_, mine);
    if (mine.thread_id != 0 && !fr.probe) free_ids_.push_back(mine.thread_id);
    if (fr.probe) static_cast<Fiber*>(fr.owner)->switch_state = nullptr;
    delete &fr;
    Frame& t = frame(*next);
    if (!t.started) start(mine, t);
    tls::load(isolate_, t.slots);
    void* discarded;
    spindle_stack_switch(&discarded, t.sp);
    __builtin_trap();
  }

  void probe_body(Frame& fr) {
    tls::Slots mine;
    tls::save(isolate_, mine);
    probe_.new_id = mine.thread_id != 0 && mine.thread_id != probe_.main_id;
    {
      v8::TryCatch try_catch(isolate_);
      v8::Local<v8::Context> context = context_.Get(isolate_);
      v8::Local<v8::String> source = v8::String::NewFromUtf8Literal(
          isolate_, "(function(){try{throw new Error('spindle probe')}catch(e){return 7}})()");
      v8::Local<v8::Script> script;
      v8::Local<v8::Value> result;
      bool inner = v8::Script::Compile(context, source).ToLocal(&script) && script->Run(context).ToLocal(&result) &&
                   result->IsInt32() && result.As<v8::Int32>()->Value() == 7;
      v8::Local<v8::Script> thrower;
      bool outer = v8::Script::Compile(context, v8::String::NewFromUtf8Literal(isolate_, "throw 1"))
                       .ToLocal(&thrower) &&
                   thrower->Run(context).IsEmpty() && try_catch.HasCaught();
      probe_.caught = inner && outer && !try_catch.HasTerminated();
    }
    // Park: back to the loop thread, which checks its identity and resumes us.
    switch_to(*fr.owner, *probe_return_);
    tls::Slots again;
    tls::save(isolate_, again);
    probe_.kept_id = again.thread_id == mine.thread_id && again.stack_start == mine.stack_start;
  }

  bool take_stack(size_t size, Stack* out) {
    for (Pool& p : pools_) {
      if (p.size == size && !p.idle.empty()) {
        *out = p.idle.back();
        p.idle.pop_back();
        return true;
      }
    }
    return map_stack(size, out);
  }

  void give_stack(Stack& s) {
    if (s.map == nullptr) return;
    for (Pool& p : pools_) {
      if (p.size == s.size) {
        if (p.idle.size() < kMaxIdle) {
          p.idle.push_back(s);
          s = Stack{};
        } else {
          unmap_stack(s);
        }
        return;
      }
    }
    pools_.push_back(Pool{s.size, {s}});
    s = Stack{};
  }

  void reap() {
    if (retired_.map != nullptr) give_stack(retired_);
  }

  FiberHost& host_;
  v8::Isolate* isolate_;
  const bool relock_sets_stack_start_;
  v8::Global<v8::Context> context_;
  std::vector<Pool> pools_;
  std::vector<Frame*> main_frames_;
  std::vector<uint32_t> free_ids_;  // V8 ThreadIds of finished fibers, for new ones
  Stack retired_;
  Context* probe_return_ = nullptr;
  ProbeResult probe_;
};

[[maybe_unused]] std::unique_ptr<SwitchBackend> try_same_thread(Engine& engine, FiberHost& host, std::string* reason) {
  const napi_node_version* version = nullptr;
  if (napi_get_node_version(engine.env(), &version) != napi_ok || version == nullptr) {
    *reason = "cannot read the Node version";
    return nullptr;
  }
  char node[64];
  std::snprintf(node, sizeof(node), "%u.%u.%u", version->major, version->minor, version->patch);
  if (!tls::locate(node, v8::V8::GetVersion(), reason)) return nullptr;
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr || !v8::Locker::IsLocked(isolate)) {
    *reason = "the loop thread does not hold a v8::Locker";
    return nullptr;
  }
  auto backend = std::make_unique<SameThreadBackend>(host, isolate);
  if (!backend->self_check(reason)) return nullptr;
  return backend;
}

}  // namespace

#endif  // SPINDLE_HAVE_STACK_SWITCH

std::unique_ptr<SwitchBackend> make_switch_backend(Engine& engine, FiberHost& host, const std::string& requested,
                                                   BackendChoice* choice) {
  // Where the request came from ("SPINDLE_BACKEND"), and as the user wrote it, first in every reason.
  std::string origin = "default";
  std::string source = "default (auto)";
  std::string want = "auto";
  const char* env = std::getenv("SPINDLE_BACKEND");
  if (!requested.empty()) {
    origin = "configure() option backend";
    want = requested;
    source = "configure({ backend: '" + want + "' })";
  } else if (env != nullptr && env[0] != '\0') {
    origin = "SPINDLE_BACKEND";
    want = env;
    source = "SPINDLE_BACKEND=" + want;
  }
  if (want == "carrier") want = "threads";
  if (want == "same-thread") want = "inplace";
  if (want != "threads" && want != "inplace" && want != "auto") {
    *choice = {"threads", "unknown " + origin + " value '" + want + "' (auto, inplace, threads)"};
    return std::make_unique<CarrierBackend>(engine, host);
  }
  if (want == "threads") {
    *choice = {"threads", source};
    return std::make_unique<CarrierBackend>(engine, host);
  }
  // Forced or automatic, the same gates: the allowlist (nothing is written into V8's state before it
  // passed), then the self-check.
  std::string reason;
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer would need __sanitizer_start/finish_switch_fiber around every switch.
  reason = "this addon is built with AddressSanitizer, which the inplace backend does not annotate for";
#elif SPINDLE_HAVE_STACK_SWITCH
  if (auto backend = try_same_thread(engine, host, &reason)) {
    *choice = {"inplace", source + ": allowlisted build, self-check passed"};
    return backend;
  }
#else
  reason = "the inplace backend supports only x86-64 Linux";
#endif
  *choice = {"threads", source + ": inplace refused: " + reason};
  return std::make_unique<CarrierBackend>(engine, host);
}

}  // namespace spindle
