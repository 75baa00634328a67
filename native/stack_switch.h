// Stack switching for the same-thread backend (x86-64 System V only). Assembly in stack_switch_x64.cc.
// Knows nothing about V8: it saves the callee-saved registers, MXCSR and the x87 control word on the
// leaving stack, stores its stack pointer, and resumes the target's.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && defined(__linux__)
#define SPINDLE_HAVE_STACK_SWITCH 1
#else
#define SPINDLE_HAVE_STACK_SWITCH 0
#endif

namespace spindle {

extern "C" {
// Saves the current context on the current stack, stores the stack pointer in *save_sp, and continues
// the context whose stack pointer is `target_sp`. Returns when some context switches back to *save_sp.
void spindle_stack_switch(void** save_sp, void* target_sp);
}

// Prepares a fresh stack [low, high) so that switching to the returned stack pointer calls
// entry(arg) on it. entry must never return (it switches away for good instead).
void* stack_prepare(uintptr_t high, void (*entry)(void*), void* arg);

}  // namespace spindle
