#include "address_space.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace spindle {

namespace {

// The limit, read once: a process sets it before it starts, not while it runs fibers.
uint64_t as_limit() {
  static const uint64_t limit = [] {
    rlimit r{};
    if (getrlimit(RLIMIT_AS, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return uint64_t{0};
    return static_cast<uint64_t>(r.rlim_cur);
  }();
  return limit;
}

// The process's mapped address space, bytes; 0 when it cannot be read.
uint64_t mapped_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "re");
  if (f == nullptr) return 0;
  unsigned long long pages = 0;
  const bool ok = std::fscanf(f, "%llu", &pages) == 1;
  std::fclose(f);
  return ok ? pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace

bool address_space_allows(size_t bytes) {
  const uint64_t limit = as_limit();
  if (limit == 0) return true;
  const uint64_t used = mapped_bytes();
  if (used == 0) return true;
  const uint64_t headroom = std::max<uint64_t>(uint64_t{512} << 20, limit / 8);
  return used + bytes + headroom <= limit;
}

}  // namespace spindle
