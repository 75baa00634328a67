// spindle/fs, native half: file system operations on libuv's threadpool (uv_fs_* on the environment's
// loop), each an IoOp started for the running fiber. The callback (loop thread) records the result and
// wakes the fiber; JavaScript (src/fs/index.ts) parks in awaitIo and then reads the result: a byte
// count, a file descriptor, stat fields, directory entries or a path. Errors come back as negative
// libuv error numbers (Node's errno values); JavaScript builds the Node-style Error.
//
// Reads try the page cache first (Linux): preadv2(RWF_NOWAIT) returns what is cached and EAGAIN rather
// than waiting for the disk, so a cached read completes inline, on the thread that runs the fiber,
// with no threadpool hop and no suspension; anything else goes to the threadpool as before. See
// "Inline reads" below.
//
// Ownership: JavaScript holds each operation through a napi_external whose finalizer frees it, but only
// once libuv is done with it: a finalizer that finds it in flight (its fiber was unwound at environment
// teardown) leaves it to the callback. The buffer a read fills or a write sends is held by a strong
// reference while the operation is in flight, so the threadpool never touches memory the GC freed.
// Every started operation is tracked (io.h): teardown cancels and drains them before the scheduler goes.
#include <fcntl.h>
#include <napi.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "io.h"

#if defined(__linux__) && defined(RWF_NOWAIT) && defined(STATX_TYPE)
#define SPINDLE_INLINE_READS 1
#else
#define SPINDLE_INLINE_READS 0
#endif

namespace spindle {
namespace {

// ---------------------------------------------------------------------------------------------------
// Inline reads
//
// A read tries preadv2(fd, ..., RWF_NOWAIT) on the runner's thread first (the loop thread, or the
// fiber's carrier thread with V8 locked: the syscall touches no V8 state). The kernel then copies only
// what the page cache holds and returns EAGAIN instead of waiting for the disk, so the attempt costs
// about a microsecond when it fails and saves a threadpool round trip (and, with carrier threads, two
// thread hand-offs) when it succeeds.
//
// What a read returns stays what a blocking read returns:
// - a regular file's read is full unless it reaches the end: a short inline read is continued inline,
//   and a read that finds only part of its range cached is redone whole on the threadpool (a read at
//   the current position first moves the position back, which JavaScript allows only when no other
//   call on that file is in flight: `cursor_ok`);
// - a character device (or a FIFO, where the kernel supports RWF_NOWAIT for them: not this one) returns
//   what it has, as read(2) does; EAGAIN (nothing there yet) goes to the threadpool, which waits;
// - errors never complete inline: the threadpool repeats the read and reports its error, so errors keep
//   exactly today's shape.
//
// Which descriptors: each fd's mode is kept process-wide (fds are), set when spindle opens it (pool
// only for O_DIRECT: a direct read waits for the device even with RWF_NOWAIT) and classified at its
// first read: statx of the type (AT_STATX_DONT_SYNC: no network round trip), and for a regular file a
// one-byte RWF_NOWAIT probe, since file systems that do not support RWF_NOWAIT (tmpfs and procfs on
// Linux 6.18) refuse it with EOPNOTSUPP whatever the range. A refusal is remembered for that fd (until
// it is opened anew); a kernel without preadv2 or statx turns inline reads off for the process, and so
// does SPINDLE_FS_INLINE=0 in the environment.
//
// Fairness: the scheduler's inline budget (scheduler.h). A fiber reading a cached file in a loop never
// suspends; once it completed kInlineOps operations or kInlineBytes bytes in one turn, its next read
// returns kYield instead: JavaScript lets the event loop turn (a zero-millisecond park, as sleep(0);
// other ready fibers run first), and then asks again with a full budget. (Sending that read to the
// threadpool instead, which also parks, cost 15-20% of the cached-read throughput at 64 operations.)

enum FdMode : uint8_t {
  kUnknown = 0,  // not classified yet
  kFile = 1,     // a regular file that honours RWF_NOWAIT
  kStream = 2,   // a FIFO or character device that honours RWF_NOWAIT: short reads are final
  kPool = 3,     // threadpool only
};

constexpr int kFdModes = 1 << 16;  // descriptors beyond this use the threadpool
constexpr size_t kInlineMaxRead = 1u << 20;  // larger reads use the threadpool (they take long anyway)
constexpr int64_t kYield = -1;  // read_inline: the budget is spent, yield to the loop and ask again
constexpr int64_t kPooled = -2;  // read_inline: use the threadpool
constexpr int64_t kNotRegular = -1;  // size_inline: not a regular file (size unknown)
constexpr int64_t kAskFstat = -2;    // size_inline: use fstat on the threadpool

std::atomic<uint8_t> fd_modes[kFdModes];
std::atomic<bool> inline_off{!SPINDLE_INLINE_READS};

// Process-wide counters (tests and the benchmark prove the path with them).
struct Counters {
  std::atomic<uint64_t> inline_reads{0};   // reads completed inline
  std::atomic<uint64_t> pooled_reads{0};   // reads sent to the threadpool (for any reason)
  std::atomic<uint64_t> inline_sizes{0};   // readFile sizes read inline
  std::atomic<uint64_t> refused_fds{0};    // descriptors whose file system refused RWF_NOWAIT
  std::atomic<uint64_t> budget_spent{0};   // reads that yielded to the loop first: the budget was spent
} counters;

void bump(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

// An fd spindle just opened: forget what an earlier descriptor with that number was.
void fd_opened(int64_t fd, int flags) {
  if (fd < 0 || fd >= kFdModes) return;
#ifdef O_DIRECT
  const bool direct = (flags & O_DIRECT) != 0;
#else
  const bool direct = false;
#endif
  fd_modes[fd].store(direct ? kPool : kUnknown, std::memory_order_relaxed);
}

#if SPINDLE_INLINE_READS

// Whether `err` from preadv2/statx means the kernel cannot do this at all (turn inline reads off).
bool kernel_lacks(int err) { return err == ENOSYS; }

uint8_t refuse(int fd) {
  bump(counters.refused_fds);
  fd_modes[fd].store(kPool, std::memory_order_relaxed);
  return kPool;
}

uint8_t classify(int fd) {
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &sx) != 0) {
    if (kernel_lacks(errno)) inline_off.store(true, std::memory_order_relaxed);
    return kPool;  // not remembered: the read's own error (EBADF...) comes from the threadpool
  }
  uint8_t mode = kPool;
  switch (sx.stx_mode & S_IFMT) {
    case S_IFREG: {
      char byte;
      struct iovec iov = {&byte, 1};
      if (preadv2(fd, &iov, 1, 0, RWF_NOWAIT) >= 0 || errno == EAGAIN) {
        mode = kFile;
      } else if (kernel_lacks(errno)) {
        inline_off.store(true, std::memory_order_relaxed);
        return kPool;
      } else if (errno == EOPNOTSUPP || errno == EINVAL) {
        return refuse(fd);
      } else {
        return kPool;  // EBADF (not open for reading)...: the threadpool reports it
      }
      break;
    }
    case S_IFIFO:
    case S_IFCHR:
      mode = kStream;  // refusals show at the first read
      break;
    default:
      break;  // directories (EISDIR from the pool), sockets, block devices
  }
  fd_modes[fd].store(mode, std::memory_order_relaxed);
  return mode;
}

// The fd's mode, classifying it at first use; kPool when inline reads are off.
uint8_t mode_of(int fd) {
  if (fd < 0 || fd >= kFdModes || inline_off.load(std::memory_order_relaxed)) return kPool;
  const uint8_t mode = fd_modes[fd].load(std::memory_order_relaxed);
  return mode == kUnknown ? classify(fd) : mode;
}

// Reads `length` bytes at `position` (-1: the current position) from the page cache. Returns the bytes
// read (>= 0) when the read is complete, kYield when the budget is spent, or kPooled when it must go to
// the threadpool (nothing was consumed: a partly read range at the current position has been given
// back).
int64_t read_inline(Scheduler& scheduler, int fd, char* data, size_t length, int64_t position, bool cursor_ok) {
  if (length == 0 || length > kInlineMaxRead) return kPooled;
  const uint8_t mode = mode_of(fd);
  if (mode == kPool) return kPooled;
  if (position < 0 && mode == kFile && !cursor_ok) return kPooled;
  if (!scheduler.inline_allowed()) {
    bump(counters.budget_spent);
    return kYield;
  }
  size_t total = 0;
  while (total < length) {
    struct iovec iov = {data + total, length - total};
    const ssize_t n = preadv2(fd, &iov, 1, position < 0 ? -1 : position + static_cast<int64_t>(total), RWF_NOWAIT);
    if (n > 0) {
      total += static_cast<size_t>(n);
      if (mode == kStream) break;  // what the pipe or device had
      continue;
    }
    if (n == 0) break;  // the end of the file
    const int err = errno;
    if (err == EINTR) continue;
    if (total > 0) {
      // Part of a regular file's range was cached. Give the part back and let the threadpool read it
      // all; if the position cannot be moved back, the short read is what a read(2) may return.
      if (position >= 0 || lseek(fd, -static_cast<off_t>(total), SEEK_CUR) >= 0) return kPooled;
      break;
    }
    if (kernel_lacks(err)) {
      inline_off.store(true, std::memory_order_relaxed);
    } else if (err == EOPNOTSUPP) {
      refuse(fd);
    }
    return kPooled;  // EAGAIN: not cached (or nothing in the pipe); other errors: reported by the pool
  }
  scheduler.charge_inline(total);
  bump(counters.inline_reads);
  return static_cast<int64_t>(total);
}

// The size of the regular file `fd` from the attributes the kernel holds (AT_STATX_DONT_SYNC: no
// network round trip; an open revalidates them on network file systems, so they are current right
// after one), for a fd that honours RWF_NOWAIT; kNotRegular or kAskFstat otherwise.
int64_t size_inline(Scheduler& scheduler, int fd) {
  if (mode_of(fd) != kFile || !scheduler.inline_allowed()) return kAskFstat;
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_SIZE, &sx) != 0 || (sx.stx_mask & STATX_SIZE) == 0) {
    return kAskFstat;
  }
  scheduler.charge_inline(0);
  bump(counters.inline_sizes);
  return S_ISREG(sx.stx_mode) ? static_cast<int64_t>(sx.stx_size) : kNotRegular;
}

#else

int64_t read_inline(Scheduler&, int, char*, size_t, int64_t, bool) { return kPooled; }
int64_t size_inline(Scheduler&, int) { return kAskFstat; }

#endif

enum class Kind { kPlain, kOpen, kStat, kScandir, kRealpath };

class FsOp final : public IoOp {
 public:
  FsOp(Scheduler& scheduler, Kind kind) : IoOp(scheduler), kind_(kind) { req_.data = this; }
  ~FsOp() override {
    if (started_) uv_fs_req_cleanup(&req_);
  }

  uv_fs_t* req() { return &req_; }
  Kind kind() const { return kind_; }
  void set_open_flags(int flags) { open_flags_ = flags; }
  int64_t result() const { return result_; }

  // After the uv_fs_* call: `rc` < 0 means libuv refused it (no callback will come).
  void started(int rc) {
    if (rc < 0) {
      result_ = rc;
      done_ = true;
      return;
    }
    started_ = true;
    track();
  }

  void cancel() override {
    if (started_ && !done_) uv_cancel(reinterpret_cast<uv_req_t*>(&req_));
  }

  void hold_buffer(napi_env env, napi_value buffer) { napi_create_reference(env, buffer, 1, &buffer_); }
  void release_buffer(napi_env env) {
    if (buffer_ == nullptr) return;
    napi_delete_reference(env, buffer_);
    buffer_ = nullptr;
  }

  // The JavaScript handle was collected.
  void release(napi_env env) override {
    if (done_) {
      release_buffer(env);
      delete this;
      return;
    }
    // In flight (its fiber was unwound): the callback frees it. The buffer reference stays until the
    // environment frees its references: the threadpool may still be writing into that memory.
    orphan_ = true;
  }

  static void on_done(uv_fs_t* req) {
    auto* op = static_cast<FsOp*>(req->data);
    op->result_ = req->result;
    if (op->kind_ == Kind::kOpen) fd_opened(req->result, op->open_flags_);
    const bool orphan = op->orphan_;
    op->finish(req->result == UV_ECANCELED);  // the scheduler may be gone after this (teardown)
    if (orphan) delete op;
  }

 private:
  uv_fs_t req_{};
  const Kind kind_;
  int open_flags_ = 0;
  int64_t result_ = 0;
  bool started_ = false;
  bool orphan_ = false;
  napi_ref buffer_ = nullptr;
};

uv_loop_t* loop_of(napi_env env) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  return loop;
}

// The scheduler, when a fiber runs; otherwise nullptr with an exception pending.
Scheduler* fiber_scheduler(const Napi::CallbackInfo& info) {
  Scheduler* scheduler = scheduler_of(info.Env());
  if (scheduler == nullptr) {
    throw_error(info.Env(), "ERR_FIBER_TERMINATING", "spindle's native core is not running (not initialized, or torn down)");
    return nullptr;
  }
  if (scheduler->running_handle() == 0) {
    throw_error(info.Env(), "ERR_NOT_IN_FIBER", "file system operations suspend the current fiber and must run inside one");
    return nullptr;
  }
  return scheduler;
}

// The new operation for the running fiber, or nullptr with an exception pending.
FsOp* new_op(const Napi::CallbackInfo& info, Kind kind) {
  Scheduler* scheduler = fiber_scheduler(info);
  return scheduler == nullptr ? nullptr : new FsOp(*scheduler, kind);
}

// The operation behind argument 0, or nullptr with an exception pending.
FsOp* unwrap(const Napi::CallbackInfo& info) { return static_cast<FsOp*>(io_arg(info)); }

std::string str(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::String>().Utf8Value(); }
int32_t i32(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
int64_t i64(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }

// The bytes of an ArrayBufferView argument.
bool view(const Napi::CallbackInfo& info, size_t i, char** data, size_t* length) {
  napi_env env = info.Env();
  napi_value v = info[i];
  bool is = false;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count = 0, offset = 0;
    void* base = nullptr;
    napi_value ab;
    napi_get_typedarray_info(env, v, &type, &count, &base, &ab, &offset);
    size_t width = 1;
    switch (type) {
      case napi_int16_array:
      case napi_uint16_array:
        width = 2;
        break;
      case napi_int32_array:
      case napi_uint32_array:
      case napi_float32_array:
        width = 4;
        break;
      case napi_float64_array:
      case napi_bigint64_array:
      case napi_biguint64_array:
        width = 8;
        break;
      default:
        break;
    }
    *data = static_cast<char*>(base);
    *length = count * width;
    return true;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    void* base = nullptr;
    napi_value ab;
    size_t offset = 0;
    napi_get_dataview_info(env, v, length, &base, &ab, &offset);
    *data = static_cast<char*>(base);
    return true;
  }
  throw_error(info.Env(), "ERR_INVALID_ARG_TYPE", "expected a Buffer, TypedArray or DataView");
  return false;
}

// The JavaScript side checked the arguments' types and ranges; these start the operations.
#define START(kind, call)                        \
  FsOp* op = new_op(info, kind);                 \
  if (op == nullptr) return Napi::Value();       \
  napi_value handle = io_wrap(info.Env(), op);      \
  if (handle == nullptr) return Napi::Value();   \
  op->started(call);                             \
  return Napi::Value(info.Env(), handle)

Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  const int flags = i32(info, 1);
  START(Kind::kOpen, (op->set_open_flags(flags), uv_fs_open(loop_of(info.Env()), op->req(), path.c_str(), flags, i32(info, 2), FsOp::on_done)));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  START(Kind::kPlain, uv_fs_close(loop_of(info.Env()), op->req(), i32(info, 0), FsOp::on_done));
}

// read(fd, view, offset, length, position, cursorOk) / write(fd, view, offset, length, position):
// position -1 means the file's current position. A read returns its byte count (a number) when it
// completed inline (see "Inline reads"; `cursorOk`: no other call is in flight on this descriptor, so a
// read at the current position may move it back), -1 when the fiber must yield to the loop and call
// again (its inline budget is spent), otherwise the operation's handle.
Napi::Value ReadWrite(const Napi::CallbackInfo& info, bool write) {
  char* data = nullptr;
  size_t length = 0;
  if (!view(info, 1, &data, &length)) return Napi::Value();
  const int64_t offset = i64(info, 2);
  const int64_t count = i64(info, 3);
  if (offset < 0 || count < 0 || static_cast<uint64_t>(offset + count) > length) {
    return throw_error(info.Env(), "ERR_OUT_OF_RANGE", "offset and length exceed the buffer");
  }
  const int fd = i32(info, 0);
  const int64_t position = i64(info, 4);
  Scheduler* scheduler = fiber_scheduler(info);
  if (scheduler == nullptr) return Napi::Value();
  if (!write) {
    bool cursor_ok = false;
    napi_get_value_bool(info.Env(), info[5], &cursor_ok);  // raw: no abort in a terminating Worker
    const int64_t n = read_inline(*scheduler, fd, data + offset, static_cast<size_t>(count), position, cursor_ok);
    if (n != kPooled) return Napi::Number::New(info.Env(), static_cast<double>(n));
    bump(counters.pooled_reads);
  }
  auto* op = new FsOp(*scheduler, Kind::kPlain);
  napi_value handle = io_wrap(info.Env(), op);
  if (handle == nullptr) return Napi::Value();
  uv_buf_t buf = uv_buf_init(data + offset, static_cast<unsigned int>(count));
  const int rc = write ? uv_fs_write(loop_of(info.Env()), op->req(), fd, &buf, 1, position, FsOp::on_done)
                       : uv_fs_read(loop_of(info.Env()), op->req(), fd, &buf, 1, position, FsOp::on_done);
  op->started(rc);
  if (rc >= 0) op->hold_buffer(info.Env(), info[1]);
  return Napi::Value(info.Env(), handle);
}

Napi::Value Read(const Napi::CallbackInfo& info) { return ReadWrite(info, false); }
Napi::Value Write(const Napi::CallbackInfo& info) { return ReadWrite(info, true); }

Napi::Value Stat(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kStat, uv_fs_stat(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

Napi::Value Lstat(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kStat, uv_fs_lstat(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

Napi::Value Fstat(const Napi::CallbackInfo& info) {
  START(Kind::kStat, uv_fs_fstat(loop_of(info.Env()), op->req(), i32(info, 0), FsOp::on_done));
}

Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  START(Kind::kPlain, uv_fs_ftruncate(loop_of(info.Env()), op->req(), i32(info, 0), i64(info, 1), FsOp::on_done));
}

Napi::Value Fsync(const Napi::CallbackInfo& info) {
  START(Kind::kPlain, uv_fs_fsync(loop_of(info.Env()), op->req(), i32(info, 0), FsOp::on_done));
}

Napi::Value Scandir(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kScandir, uv_fs_scandir(loop_of(info.Env()), op->req(), path.c_str(), 0, FsOp::on_done));
}

Napi::Value Mkdir(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kPlain, uv_fs_mkdir(loop_of(info.Env()), op->req(), path.c_str(), i32(info, 1), FsOp::on_done));
}

Napi::Value Rmdir(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kPlain, uv_fs_rmdir(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

Napi::Value Unlink(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kPlain, uv_fs_unlink(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

Napi::Value Rename(const Napi::CallbackInfo& info) {
  std::string from = str(info, 0), to = str(info, 1);
  START(Kind::kPlain, uv_fs_rename(loop_of(info.Env()), op->req(), from.c_str(), to.c_str(), FsOp::on_done));
}

Napi::Value Copyfile(const Napi::CallbackInfo& info) {
  std::string from = str(info, 0), to = str(info, 1);
  START(Kind::kPlain, uv_fs_copyfile(loop_of(info.Env()), op->req(), from.c_str(), to.c_str(), i32(info, 2), FsOp::on_done));
}

Napi::Value Access(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kPlain, uv_fs_access(loop_of(info.Env()), op->req(), path.c_str(), i32(info, 1), FsOp::on_done));
}

Napi::Value Realpath(const Napi::CallbackInfo& info) {
  std::string path = str(info, 0);
  START(Kind::kRealpath, uv_fs_realpath(loop_of(info.Env()), op->req(), path.c_str(), FsOp::on_done));
}

#undef START

double ms(const uv_timespec_t& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6; }

// result(op, out?): once done. A negative number is the libuv error (errno). Otherwise: stat
// operations fill `out` (a Float64Array of 14, in fs.Stats' constructor order) and return 0; scandir
// returns the names (and pushes each entry's uv_dirent_type_t onto `out` when it is an Array); realpath
// returns the path; the others return the result (fd, bytes, 0). Releases the buffer reference.
Napi::Value Result(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FsOp* op = unwrap(info);
  if (op == nullptr) return Napi::Value();
  if (!op->done()) return throw_error(env, "ERR_FIBER_STATE", "the file system operation is still in flight");
  op->release_buffer(env);
  const int64_t result = op->result();
  if (result < 0) return Napi::Number::New(env, static_cast<double>(result));
  switch (op->kind()) {
    case Kind::kPlain:
    case Kind::kOpen:
      return Napi::Number::New(env, static_cast<double>(result));
    case Kind::kStat: {
      if (info.Length() < 2 || !info[1].IsTypedArray()) return throw_error(env, "ERR_INVALID_ARG_TYPE", "expected a Float64Array");
      Napi::TypedArray arr = info[1].As<Napi::TypedArray>();
      if (arr.TypedArrayType() != napi_float64_array || arr.ElementLength() < 14) {
        return throw_error(env, "ERR_INVALID_ARG_TYPE", "expected a Float64Array of 14");
      }
      double* out = arr.As<Napi::Float64Array>().Data();
      const uv_stat_t& s = op->req()->statbuf;
      out[0] = static_cast<double>(s.st_dev);
      out[1] = static_cast<double>(s.st_mode);
      out[2] = static_cast<double>(s.st_nlink);
      out[3] = static_cast<double>(s.st_uid);
      out[4] = static_cast<double>(s.st_gid);
      out[5] = static_cast<double>(s.st_rdev);
      out[6] = static_cast<double>(s.st_blksize);
      out[7] = static_cast<double>(s.st_ino);
      out[8] = static_cast<double>(s.st_size);
      out[9] = static_cast<double>(s.st_blocks);
      out[10] = ms(s.st_atim);
      out[11] = ms(s.st_mtim);
      out[12] = ms(s.st_ctim);
      out[13] = ms(s.st_birthtim);
      return Napi::Number::New(env, 0);
    }
    case Kind::kScandir: {
      Napi::Array names = Napi::Array::New(env);
      Napi::Array types = info.Length() > 1 && info[1].IsArray() ? info[1].As<Napi::Array>() : Napi::Array();
      uv_dirent_t ent;
      uint32_t i = 0;
      while (uv_fs_scandir_next(op->req(), &ent) != UV_EOF) {
        napi_value name, type;
        napi_create_string_utf8(env, ent.name, NAPI_AUTO_LENGTH, &name);
        napi_set_element(env, names, i, name);  // raw: no abort if the environment is terminating
        if (!types.IsEmpty()) {
          napi_create_int32(env, ent.type, &type);
          napi_set_element(env, types, i, type);
        }
        ++i;
      }
      return names;
    }
    case Kind::kRealpath:
      return Napi::String::New(env, static_cast<const char*>(op->req()->ptr));
  }
  return Napi::Value();
}

// closeSync(fd): a synchronous close on the calling thread (File disposal outside fibers, and the close
// of a File the GC collected unclosed). Returns 0 or the negative libuv error.
Napi::Value CloseSync(const Napi::CallbackInfo& info) {
  uv_fs_t req;
  const int rc = uv_fs_close(loop_of(info.Env()), &req, i32(info, 0), nullptr);
  uv_fs_req_cleanup(&req);
  return Napi::Number::New(info.Env(), rc);
}

// size(fd): the size of the regular file `fd` read inline (see size_inline): >= 0, -1 when it is not a
// regular file, -2 when the caller must use fstat. Inside fibers only (it spends the inline budget).
Napi::Value Size(const Napi::CallbackInfo& info) {
  Scheduler* scheduler = fiber_scheduler(info);
  if (scheduler == nullptr) return Napi::Value();
  return Napi::Number::New(info.Env(), static_cast<double>(size_inline(*scheduler, i32(info, 0))));
}

// counters(): the process-wide inline-read counters (tests, benchmarks).
Napi::Value Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  auto set = [&](const char* name, const std::atomic<uint64_t>& c) {
    out.Set(name, Napi::Number::New(env, static_cast<double>(c.load(std::memory_order_relaxed))));
  };
  set("inlineReads", counters.inline_reads);
  set("pooledReads", counters.pooled_reads);
  set("inlineSizes", counters.inline_sizes);
  set("refusedFds", counters.refused_fds);
  set("budgetSpent", counters.budget_spent);
  out.Set("inlineOff", Napi::Boolean::New(env, inline_off.load(std::memory_order_relaxed)));
  return out;
}

Napi::Value InFlight(const Napi::CallbackInfo& info) {
  Scheduler* scheduler = scheduler_of(info.Env());
  return Napi::Number::New(info.Env(), scheduler == nullptr ? 0 : static_cast<double>(io_in_flight(scheduler)));
}

}  // namespace

void register_fs(Napi::Env env, Napi::Object exports) {
  // SPINDLE_FS_INLINE=0: every read through the threadpool (to measure without inline reads).
  const char* knob = std::getenv("SPINDLE_FS_INLINE");
  if (knob != nullptr && knob[0] == '0') inline_off.store(true, std::memory_order_relaxed);
  Napi::Object fs = Napi::Object::New(env);
  fs.Set("open", Napi::Function::New(env, Open, "open"));
  fs.Set("close", Napi::Function::New(env, Close, "close"));
  fs.Set("closeSync", Napi::Function::New(env, CloseSync, "closeSync"));
  fs.Set("read", Napi::Function::New(env, Read, "read"));
  fs.Set("write", Napi::Function::New(env, Write, "write"));
  fs.Set("stat", Napi::Function::New(env, Stat, "stat"));
  fs.Set("lstat", Napi::Function::New(env, Lstat, "lstat"));
  fs.Set("fstat", Napi::Function::New(env, Fstat, "fstat"));
  fs.Set("ftruncate", Napi::Function::New(env, Ftruncate, "ftruncate"));
  fs.Set("fsync", Napi::Function::New(env, Fsync, "fsync"));
  fs.Set("scandir", Napi::Function::New(env, Scandir, "scandir"));
  fs.Set("mkdir", Napi::Function::New(env, Mkdir, "mkdir"));
  fs.Set("rmdir", Napi::Function::New(env, Rmdir, "rmdir"));
  fs.Set("unlink", Napi::Function::New(env, Unlink, "unlink"));
  fs.Set("rename", Napi::Function::New(env, Rename, "rename"));
  fs.Set("copyfile", Napi::Function::New(env, Copyfile, "copyfile"));
  fs.Set("access", Napi::Function::New(env, Access, "access"));
  fs.Set("realpath", Napi::Function::New(env, Realpath, "realpath"));
  io_define_common(env, fs);
  fs.Set("result", Napi::Function::New(env, Result, "result"));
  fs.Set("inFlight", Napi::Function::New(env, InFlight, "inFlight"));
  fs.Set("size", Napi::Function::New(env, Size, "size"));
  fs.Set("counters", Napi::Function::New(env, Counters, "counters"));
  exports.Set("fs", fs);
}

}  // namespace spindle
