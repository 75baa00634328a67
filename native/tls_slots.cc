// Locating V8's per-thread identity slots in the running node executable, the allowlist of Node
// builds they were tested on, and the first half of the load-time self-check. See tls_slots.h and
// ../shared/design/same-thread-backend.md. Every offset is decoded from exported V8 functions at run
// time and must then equal the allowlist entry of this exact build: a decoded value alone is never
// trusted, and neither is a table value alone.
#include "tls_slots.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace spindle::tls {

namespace {

// The builds the same-thread backend was tested on (official linux-x64 binaries from nodejs.org).
// Offsets as in the design note's table; any other build falls back to carrier threads.
struct Build {
  const char* node;      // exact process.versions.node
  const char* v8;        // exact process.versions.v8
  const char* build_id;  // the executable's NT_GNU_BUILD_ID, hex
  Offsets offsets;
  Facts facts;
};

constexpr Build kAllowlist[] = {
    {"20.20.2", "11.3.244.8-node.38", "ebeaf2df364d5eeb7096f0f7722a69eec6efdf3b", {-0x40, -0x10, -0x50, -0x48, 0}, {false}},
    {"22.23.3", "12.4.254.21-node.57", "a9b42ba41811e1291145304b7c278c5d3fbaca71", {-0x68, -0x18, -0x78, -0x70, 0}, {true}},
    {"24.21.0", "13.6.233.17-node.53", "bd05d6407047594fc3d31dd4ed4a37fe48c01f93",
     {-0x98, -0x18, -0xa0, -0xa8, 0x11208}, {true}},
    {"26.10.0", "14.6.202.34-node.34", "932be857167040020b78138ec919fd51bad0441e",
     {-0x170, -0x98, -0x178, -0x180, 0x115a0}, {true}},
};

Offsets g_offsets;
Facts g_facts;

// --- the executable: build id and executable segments --------------------------------------------

struct ExeInfo {
  std::string build_id;
  uintptr_t text_lo[8] = {};
  uintptr_t text_hi[8] = {};
  int text_count = 0;
};

int collect_exe(struct dl_phdr_info* info, size_t, void* data) {
  auto& exe = *static_cast<ExeInfo*>(data);
  // The first object is the main program (empty name).
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0 && exe.text_count < 8) {
      exe.text_lo[exe.text_count] = info->dlpi_addr + ph.p_vaddr;
      exe.text_hi[exe.text_count] = info->dlpi_addr + ph.p_vaddr + ph.p_memsz;
      ++exe.text_count;
    }
    if (ph.p_type == PT_NOTE && exe.build_id.empty()) {
      auto* p = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
      const uint8_t* end = p + ph.p_memsz;
      while (p + sizeof(ElfW(Nhdr)) <= end) {
        auto* nh = reinterpret_cast<const ElfW(Nhdr)*>(p);
        const uint8_t* name = p + sizeof(ElfW(Nhdr));
        const uint8_t* desc = name + ((nh->n_namesz + 3) & ~3u);
        if (desc + nh->n_descsz > end) break;
        if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
          char hex[3];
          for (uint32_t k = 0; k < nh->n_descsz; ++k) {
            std::snprintf(hex, sizeof(hex), "%02x", desc[k]);
            exe.build_id += hex;
          }
          break;
        }
        p = desc + ((nh->n_descsz + 3) & ~3u);
      }
    }
  }
  return 1;  // only the main program
}

bool in_text(const ExeInfo& exe, uintptr_t addr, size_t len) {
  for (int i = 0; i < exe.text_count; ++i) {
    if (addr >= exe.text_lo[i] && addr + len <= exe.text_hi[i]) return true;
  }
  return false;
}

// --- a tiny decoder for the few instruction forms the offsets are read from -----------------------

int32_t read_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// `mov %fs:disp32, reg` (64 [REX] 8B modrm=00 reg 100, SIB=25, disp32). wide: REX.W.
bool fs_load_at(const uint8_t* p, bool want_wide, intptr_t* disp) {
  if (p[0] != 0x64) return false;
  int i = 1;
  bool wide = false;
  if ((p[i] & 0xf0) == 0x40) {
    wide = (p[i] & 0x08) != 0;
    ++i;
  }
  if (p[i] != 0x8b || (p[i + 1] & 0xc7) != 0x04 || p[i + 2] != 0x25 || wide != want_wide) return false;
  *disp = read_i32(p + i + 3);
  return true;
}

bool first_fs_load(const ExeInfo& exe, uintptr_t fn, size_t n, bool wide, intptr_t* disp) {
  if (!in_text(exe, fn, n + 16)) return false;
  auto* p = reinterpret_cast<const uint8_t*>(fn);
  for (size_t i = 0; i < n; ++i) {
    if (fs_load_at(p + i, wide, disp)) return true;
  }
  return false;
}

// Targets of `call rel32` (E8) or `jmp rel32` (E9) in the first n bytes of fn that land in the text.
template <typename F>
bool each_branch(const ExeInfo& exe, uintptr_t fn, size_t n, uint8_t opcode, F&& f) {
  if (!in_text(exe, fn, n + 5)) return false;
  auto* p = reinterpret_cast<const uint8_t*>(fn);
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != opcode) continue;
    uintptr_t target = fn + i + 5 + static_cast<intptr_t>(read_i32(p + i + 1));
    if (in_text(exe, target, 64) && f(target, fn + i + 5)) return true;
  }
  return false;
}

void* sym(const char* name) { return dlsym(RTLD_DEFAULT, name); }

const char* test_env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' ? v : nullptr;
}

bool locate_once(const char* node_version, const char* v8_version, std::string* reason) {
#if !(defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__))
  *reason = "the inplace backend supports only x86-64 Linux with glibc";
  return false;
#else
  // 1. The allowlist, before anything else: the exact build must be one this project tested.
  if (const char* forced = test_env("SPINDLE_TEST_NODE_VERSION")) node_version = forced;  // tests only
  const Build* build = nullptr;
  for (const Build& b : kAllowlist) {
    if (std::strcmp(b.node, node_version) == 0) build = &b;
  }
  if (build == nullptr) {
    *reason = std::string("Node ") + node_version + " is not on the inplace allowlist (tested: 20.20.2, 22.23.3, 24.21.0, 26.10.0)";
    return false;
  }
  if (std::strcmp(build->v8, v8_version) != 0) {
    *reason = std::string("V8 ") + v8_version + " differs from the tested build's " + build->v8;
    return false;
  }
  ExeInfo exe;
  dl_iterate_phdr(collect_exe, &exe);
  if (exe.build_id != build->build_id) {
    *reason = "the node executable is not the tested official build (build id " +
              (exe.build_id.empty() ? std::string("missing") : exe.build_id) + ")";
    return false;
  }

  // 2. Locate every offset from exported functions.
  auto is_locked = reinterpret_cast<uintptr_t>(sym("_ZN2v86Locker8IsLockedEPNS_7IsolateE"));
  auto get_stack_start = reinterpret_cast<uintptr_t>(sym("_ZN2v84base5Stack13GetStackStartEv"));
  auto try_get_current = reinterpret_cast<uintptr_t>(sym("_ZN2v87Isolate13TryGetCurrentEv"));
  auto enter = reinterpret_cast<uintptr_t>(sym("_ZN2v87Isolate5EnterEv"));
  auto set_stack_limit = reinterpret_cast<uintptr_t>(sym("_ZN2v87Isolate13SetStackLimitEm"));
  if (!is_locked || !get_stack_start || !try_get_current || !enter || !set_stack_limit) {
    *reason = "an exported V8 function needed to locate the thread slots is missing";
    return false;
  }
  Offsets found;
  // ThreadId: Locker::IsLocked calls ThreadId::GetCurrentThreadId, whose first load is mov %fs:X,%eax.
  bool ok = each_branch(exe, is_locked, 48, 0xe8, [&](uintptr_t target, uintptr_t) {
    return fs_load_at(reinterpret_cast<const uint8_t*>(target), false, &found.thread_id);
  });
  if (!ok) {
    *reason = "cannot locate V8's ThreadId slot";
    return false;
  }
  // Stack start: the first instruction of base::Stack::GetStackStart.
  if (!in_text(exe, get_stack_start, 16) ||
      !fs_load_at(reinterpret_cast<const uint8_t*>(get_stack_start), true, &found.stack_start)) {
    *reason = "cannot locate V8's stack-start slot";
    return false;
  }
  const uintptr_t tp = thread_pointer();
  // Current isolate: the exported TLS symbol (V8 <= 12), else the load in Isolate::TryGetCurrent.
  if (void* p = sym("_ZN2v88internal18g_current_isolate_E")) {
    found.isolate = reinterpret_cast<intptr_t>(p) - static_cast<intptr_t>(tp);
  } else if (!first_fs_load(exe, try_get_current, 48, true, &found.isolate)) {
    *reason = "cannot locate V8's current-isolate slot";
    return false;
  }
  // Per-isolate thread data: the exported TLS symbol, else the first %fs load of the internal
  // Isolate::Enter that the exported one jumps to.
  if (void* p = sym("_ZN2v88internal34g_current_per_isolate_thread_data_E")) {
    found.thread_data = reinterpret_cast<intptr_t>(p) - static_cast<intptr_t>(tp);
  } else {
    ok = each_branch(exe, enter, 16, 0xe9, [&](uintptr_t target, uintptr_t) {
      return first_fs_load(exe, target, 256, true, &found.thread_data);
    });
    if (!ok) {
      *reason = "cannot locate V8's per-isolate-thread-data slot";
      return false;
    }
  }
  // Isolate::stack_size_ (V8 >= 13): the store of GetStackStart() - limit in Isolate::SetStackLimit.
  each_branch(exe, set_stack_limit, 96, 0xe8, [&](uintptr_t target, uintptr_t after) {
    if (target != get_stack_start) return false;
    auto* p = reinterpret_cast<const uint8_t*>(after);
    for (int i = 0; i < 24; ++i) {
      if ((p[i] == 0x48 || p[i] == 0x49) && p[i + 1] == 0x89) {
        uint8_t modrm = p[i + 2];
        if ((modrm >> 6) != 2 || ((modrm >> 3) & 7) != 0) continue;
        int disp_at = i + 3 + ((modrm & 7) == 4 ? 1 : 0);
        found.stack_size = read_i32(p + disp_at);
        return true;
      }
    }
    return false;
  });

  // 3. What was decoded must be what the allowlist says for this build.
  const Offsets& want = build->offsets;
  if (found.thread_id != want.thread_id || found.stack_start != want.stack_start || found.isolate != want.isolate ||
      found.thread_data != want.thread_data || found.stack_size != want.stack_size) {
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  "decoded slot offsets (%ld %ld %ld %ld %ld) differ from the allowlist's for this build",
                  static_cast<long>(found.thread_id), static_cast<long>(found.stack_start),
                  static_cast<long>(found.isolate), static_cast<long>(found.thread_data),
                  static_cast<long>(found.stack_size));
    *reason = buf;
    return false;
  }
  // Tests only: shift an offset so that the self-check (the second gate) has something to refuse.
  if (const char* shift = test_env("SPINDLE_TEST_SLOT_SHIFT")) found.isolate += std::atol(shift);
  g_offsets = found;
  g_facts = build->facts;
  return true;
#endif
}

bool read_safely(uintptr_t addr, void* out, size_t len) {
  struct iovec local{out, len};
  struct iovec remote{reinterpret_cast<void*>(addr), len};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

}  // namespace

bool locate(const char* node_version, const char* v8_version, std::string* reason) {
  static std::once_flag once;
  static bool ok = false;
  static std::string why;
  std::call_once(once, [&] { ok = locate_once(node_version, v8_version, &why); });
  *reason = why;
  return ok;
}

const Offsets& offsets() { return g_offsets; }
const Facts& facts() { return g_facts; }

bool check_slots(void* isolate, std::string* reason) {
  using IsLockedFn = bool (*)(void*);
  using TryGetCurrentFn = void* (*)();
  using GetStackStartFn = void* (*)();
  auto is_locked = reinterpret_cast<IsLockedFn>(sym("_ZN2v86Locker8IsLockedEPNS_7IsolateE"));
  auto try_get_current = reinterpret_cast<TryGetCurrentFn>(sym("_ZN2v87Isolate13TryGetCurrentEv"));
  auto get_stack_start = reinterpret_cast<GetStackStartFn>(sym("_ZN2v84base5Stack13GetStackStartEv"));
  const Offsets& o = g_offsets;
  const uintptr_t tp = thread_pointer();
  auto* tid_slot = reinterpret_cast<uint32_t*>(tp + o.thread_id);
  auto* ss_slot = reinterpret_cast<uint64_t*>(tp + o.stack_start);
  auto* iso_slot = reinterpret_cast<uint64_t*>(tp + o.isolate);
  auto* ptd_slot = reinterpret_cast<uint64_t*>(tp + o.thread_data);
  const auto sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));

  // Read-only plausibility first: a wrong offset usually fails here, before anything is written.
  if (*iso_slot != reinterpret_cast<uint64_t>(isolate) || try_get_current() != isolate) {
    *reason = "self-check: the current-isolate slot does not hold the current isolate";
    return false;
  }
  const uint32_t tid = *tid_slot;
  if (tid == 0 || tid > (1u << 24) || !is_locked(isolate)) {
    *reason = "self-check: the ThreadId slot does not hold this thread's id";
    return false;
  }
  uint64_t ptd[2] = {0, 0};
  if (*ptd_slot == 0 || !read_safely(*ptd_slot, ptd, sizeof(ptd)) || ptd[0] != reinterpret_cast<uint64_t>(isolate) ||
      static_cast<uint32_t>(ptd[1]) != tid) {
    *reason = "self-check: the per-isolate-thread-data slot does not point at {isolate, thread id}";
    return false;
  }
  const uint64_t ss = *ss_slot;
  if (!(ss > sp && ss - sp < (uint64_t{1} << 30)) || reinterpret_cast<uint64_t>(get_stack_start()) != ss) {
    *reason = "self-check: the stack-start slot does not hold this thread's stack start";
    return false;
  }
  if (o.stack_size != 0) {
    uint64_t size = 0;
    if (!read_safely(reinterpret_cast<uintptr_t>(isolate) + o.stack_size, &size, sizeof(size)) || size == 0 ||
        size > (uint64_t{1} << 30) || ss - size >= sp) {
      *reason = "self-check: the isolate's stack_size_ field is implausible";
      return false;
    }
  }

  // Sentinels, with signals blocked (a profiler's handler must not see them).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  bool ok = true;
  *tid_slot = tid + 12345;
  ok = ok && !is_locked(isolate);
  *tid_slot = tid;
  ok = ok && is_locked(isolate);
  const uint64_t iso = *iso_slot;
  *iso_slot = 0x5eed0000;
  ok = ok && reinterpret_cast<uint64_t>(try_get_current()) == 0x5eed0000;
  *iso_slot = iso;
  *ss_slot = ss + 4096;
  ok = ok && reinterpret_cast<uint64_t>(get_stack_start()) == ss + 4096;
  *ss_slot = ss;
  ok = ok && try_get_current() == isolate && reinterpret_cast<uint64_t>(get_stack_start()) == ss;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!ok) *reason = "self-check: a sentinel written to a slot did not show through V8's accessor";
  return ok;
}

}  // namespace spindle::tls
