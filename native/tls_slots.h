// V8's per-thread identity, as the same-thread backend swaps it per fiber: four C++ thread_local slots
// in the static TLS block of the node executable (ThreadId, v8::base::Stack's cached stack start, the
// current isolate, the current per-isolate thread data) and, on V8 >= 13, the Isolate's stack_size_
// field. Their offsets are located at run time from exported V8 functions (tls_slots.cc) and accepted
// only when they match the allowlist entry of the running build (exact Node version, V8 version,
// executable build id). Nothing is written before that check passed. x86-64 Linux only.
#pragma once

#include <cstdint>
#include <string>

namespace spindle::tls {

struct Offsets {
  intptr_t thread_id = 0;    // %fs-relative, 4 bytes
  intptr_t stack_start = 0;  // %fs-relative, 8 bytes
  intptr_t isolate = 0;      // %fs-relative, 8 bytes
  intptr_t thread_data = 0;  // %fs-relative, 8 bytes
  intptr_t stack_size = 0;   // offset in the Isolate object; 0: this V8 has no such field
};

// What the switch sequence may rely on in this build's V8 (not decoded: facts about the exact builds
// of the allowlist, which the test suite exercises on each).
struct Facts {
  // ~Unlocker's relock sets the heap's stack start from the (already swapped) stack-start slot:
  // Debug::RestoreDebug enters the isolate (V8 >= 12), and Isolate::Enter refreshes it. A fiber's
  // first lock restores nothing, so the switch still refreshes it itself then.
  bool relock_sets_stack_start = false;
};

// One context's values of the swapped state.
struct Slots {
  uint64_t stack_start = 0;
  uint64_t isolate = 0;
  uint64_t thread_data = 0;
  uint64_t stack_size = 0;
  uint32_t thread_id = 0;
};

// Process-wide, computed once: checks the allowlist, then locates the offsets and compares them with
// the allowlist entry. `node_version` is the running Node's "major.minor.patch". False with a reason
// when the build is not supported; `out` is then unusable.
bool locate(const char* node_version, const char* v8_version, std::string* reason);
const Offsets& offsets();
const Facts& facts();

inline uintptr_t thread_pointer() {
  uintptr_t tp;
  asm("movq %%fs:0, %0" : "=r"(tp));
  return tp;
}

inline void save(void* isolate, Slots& s) {
  const Offsets& o = offsets();
  const uintptr_t tp = thread_pointer();
  s.thread_id = *reinterpret_cast<uint32_t*>(tp + o.thread_id);
  s.stack_start = *reinterpret_cast<uint64_t*>(tp + o.stack_start);
  s.isolate = *reinterpret_cast<uint64_t*>(tp + o.isolate);
  s.thread_data = *reinterpret_cast<uint64_t*>(tp + o.thread_data);
  if (o.stack_size != 0) s.stack_size = *reinterpret_cast<uint64_t*>(static_cast<char*>(isolate) + o.stack_size);
}

inline void load(void* isolate, const Slots& s) {
  const Offsets& o = offsets();
  const uintptr_t tp = thread_pointer();
  *reinterpret_cast<uint32_t*>(tp + o.thread_id) = s.thread_id;
  *reinterpret_cast<uint64_t*>(tp + o.stack_start) = s.stack_start;
  *reinterpret_cast<uint64_t*>(tp + o.isolate) = s.isolate;
  *reinterpret_cast<uint64_t*>(tp + o.thread_data) = s.thread_data;
  if (o.stack_size != 0) *reinterpret_cast<uint64_t*>(static_cast<char*>(isolate) + o.stack_size) = s.stack_size;
}

// The first half of the load-time self-check, on the loop thread with the isolate locked and entered:
// read-only plausibility checks, then sentinels written (signals blocked) and seen through V8's own
// accessors, then every value restored. False with a reason on any mismatch.
bool check_slots(void* isolate, std::string* reason);

}  // namespace spindle::tls
