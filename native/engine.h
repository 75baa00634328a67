// Engine: every raw V8 and node:: call in spindle lives behind this interface (engine.cc). Nothing
// else in native/ includes v8.h, except the inplace (same-thread) switch backend (same_thread.cc; V8's
// thread slots are located in tls_slots.cc), which locks, limits and discards around its own stacks.
// It covers what the carrier hand-off needs from V8: locking and entering the isolate on a thread,
// the stack limit, calling the JavaScript fiber trampoline, the callback scope the dispatch pass runs
// in, the async context frame, and termination; and the scheduler's calls as plain V8 functions.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>

namespace spindle {

struct Context;

// A native function that JavaScript calls as a plain V8 API callback. N-API's callback wrapper and
// its argument fetching were 4% of a resume/suspend round trip's instructions (two such calls), so
// the scheduler's calls (create to suspend, bindings.cc) skip it. `fn` gets `data` and argument 0 (NaN
// when it is absent or not a number) and returns the call's result (undefined unless `returns`), or
// fills *error to have a plain Error with that `code` and message thrown instead.
struct HotError {
  const char* code = nullptr;
  const char* message = nullptr;
};
struct HotEntry {
  uint32_t (*fn)(void* data, double arg, HotError* error);
  void* data;
  bool returns;
};
// Loop thread, inside a N-API call (module init): the function `name`, calling entry->fn with
// entry->data. The caller owns `entry`, which must live as long as the environment.
napi_value hot_function(napi_env env, const char* name, const HotEntry* entry);

class Engine {
 public:
  // Loop thread, inside a N-API call: captures the isolate, its current context and `trampoline`
  // (called on carriers with a fiber handle).
  Engine(napi_env env, napi_value trampoline);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Carrier thread: lock and enter the isolate, limit JavaScript to [stack_low + reserve, ...),
  // run body(arg) in a HandleScope with the context entered, then leave and unlock.
  void run_on_carrier(uintptr_t stack_low, size_t reserve, void (*body)(void*), void* arg);

  // Inside run_on_carrier: call the trampoline with `handle`. False if execution was terminated.
  bool call_trampoline(uint32_t handle);

  // The runner gives up the isolate around wait(arg) (v8::Unlocker; a carrier also exits the isolate,
  // whose entry stack is one LIFO for all threads) and takes it back when wait returns. Inside
  // switch_frames (relocking may create handles).
  void unlocked(bool on_loop_thread, void (*wait)(void*), void* arg);

  // The runner `from` gives up the runner role through do_switch(arg), which returns once `from` runs
  // again: its async context frame is captured before and restored after, all in one HandleScope
  // (the loop thread switches at teardown too, under Node's sealed handle scope).
  void switch_frames(Context& from, void (*do_switch)(void*), void* arg);

  // Loop thread, from a libuv callback: run body(arg) in a HandleScope and a node::CallbackScope, so
  // the nextTicks and microtasks that fibers queued run when it closes, as after any native callback.
  void in_callback_scope(void (*body)(void*), void* arg);

  // The async context frame (AsyncLocalStorage on Node 24+) belongs to whoever runs: each context
  // saves it when it gives up the runner role and restores it when it gets it back (switch_frames).
  // Both create a handle: call them inside a HandleScope (a V8 callback's, run_on_carrier's).
  void capture_frame(Context& ctx);  // take the current frame as ctx's (a new fiber inherits it)
  void restore_frame(Context& ctx);
  void release_frame(Context& ctx);

  // Request termination of the JavaScript running on this thread (unwinds it without running code).
  void terminate();
  // Carrier thread retiring while the isolate lives on: drop V8's per-thread data for this thread.
  void discard_thread_data();

  napi_env env() const { return env_; }

 private:
  struct Impl;
  napi_env env_;
  Impl* impl_;
};

}  // namespace spindle
