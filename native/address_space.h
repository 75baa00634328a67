// Address-space headroom for fiber stacks. Under a finite RLIMIT_AS (`ulimit -v`), mapping stacks (or
// carrier threads) until mmap fails leaves V8 no room to grow its heap, and V8 aborts the process
// when it cannot: new stacks stop while that headroom remains, so a spawn fails with a clear error
// and the program goes on. Without a limit this costs one cached check.
#pragma once

#include <cstddef>

namespace spindle {

// Whether `bytes` more of address space leave the headroom (the larger of 512 MiB and an eighth of
// the limit) below RLIMIT_AS. True when there is no limit, or when the usage cannot be read (then mmap
// decides). Any thread.
bool address_space_allows(size_t bytes);

}  // namespace spindle
