// The hand-written context switch for x86-64 System V (Linux). See stack_switch.h.
#include "stack_switch.h"

#if SPINDLE_HAVE_STACK_SWITCH

// Frame left on a parked stack, from its saved stack pointer up:
//   [sp+0]  MXCSR (4 bytes), x87 control word (2 bytes), padding
//   [sp+8]  r15, r14, r13, r12, rbx, rbp
//   [sp+56] return address
asm(R"(
  .text
  .globl spindle_stack_switch
  .hidden spindle_stack_switch
  .type spindle_stack_switch, @function
  .align 16
spindle_stack_switch:
  .cfi_startproc
  pushq %rbp
  .cfi_adjust_cfa_offset 8
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  pushq %r12
  .cfi_adjust_cfa_offset 8
  pushq %r13
  .cfi_adjust_cfa_offset 8
  pushq %r14
  .cfi_adjust_cfa_offset 8
  pushq %r15
  .cfi_adjust_cfa_offset 8
  subq $8, %rsp
  .cfi_adjust_cfa_offset 8
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size spindle_stack_switch, .-spindle_stack_switch

  .globl spindle_stack_start
  .hidden spindle_stack_start
  .type spindle_stack_start, @function
  .align 16
spindle_stack_start:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size spindle_stack_start, .-spindle_stack_start
)");

extern "C" void spindle_stack_start();

namespace spindle {

void* stack_prepare(uintptr_t high, void (*entry)(void*), void* arg) {
  uintptr_t top = high & ~uintptr_t{15};
  // After `ret` into spindle_stack_start the stack pointer is top - 16: 16-byte aligned before its call.
  auto* frame = reinterpret_cast<uint64_t*>(top - 80);
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  frame[0] = static_cast<uint64_t>(mxcsr) | (static_cast<uint64_t>(fpucw) << 32);
  frame[1] = 0;                                        // r15
  frame[2] = 0;                                        // r14
  frame[3] = reinterpret_cast<uint64_t>(entry);        // r13
  frame[4] = reinterpret_cast<uint64_t>(arg);          // r12
  frame[5] = 0;                                        // rbx
  frame[6] = 0;                                        // rbp: ends frame-pointer walks
  frame[7] = reinterpret_cast<uint64_t>(&spindle_stack_start);  // return address
  frame[8] = 0;
  frame[9] = 0;
  return frame;
}

}  // namespace spindle

#endif
