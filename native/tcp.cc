// spindle/net's native half: TCP and Unix-domain stream sockets and listeners on the environment's
// libuv loop (uv_tcp_t / uv_pipe_t). JavaScript (src/net/index.ts) holds one handle (a napi_external) per socket or
// server and calls into it from fibers; every call returns at once, either with a result or with
// kPending after starting an operation (an IoOp) that wakes the calling fiber when libuv completes it.
//
// Reading: a connected socket reads ahead into a bounded buffer (kReadBuffer). When the buffer is full,
// reading stops (uv_read_stop), so the kernel's receive window fills and the peer's writes slow down.
// A read takes buffered bytes without waiting. With nothing buffered it may first read the socket
// itself (a non-blocking read(2) into the caller's buffer, see direct_read: only while libuv is
// reading, so libuv's state stays what it would be); otherwise it parks, and libuv then reads
// directly into the caller's buffer (alloc_cb hands it out): zero-copy. Cancelling a parked read is
// immediate and loses nothing (bytes only ever land in the caller's buffer together with the
// completion of its read).
//
// Waiting: netWait(h, slot, timeout) parks the calling fiber until the slot's operation completes and
// returns its result in the same call (JavaScript does the park's bookkeeping around it), so a read
// that has to wait costs two calls (netRead, netWait) and a write that the kernel takes at once one.
//
// Writing: uv_try_write first (no suspension when the kernel takes everything); the rest goes to one
// uv_write that references the caller's memory (JavaScript keeps it alive: its fiber is parked until
// the write completes). At most one write is queued per socket (JavaScript serializes writes), so
// memory never grows beyond the caller's own buffer. A queued uv_write cannot be cancelled: cancelling
// it (interruption, timeout) closes the socket, the write's callback reports UV_ECANCELED, and
// `written()` tells how many bytes of it reached the kernel before that.
//
// Accepting: the connection callback only counts the connection (libuv keeps it unaccepted and stops
// polling the listener until uv_accept); accept() takes it. A cancelled accept therefore loses nothing.
//
// Lifetime: a Handle (the libuv handle and its state) is freed once libuv's close callback ran and its
// JavaScript wrapper is gone (finalized, or never made for an accepted connection nobody took). Every
// Handle is in its environment's registry; tcp_teardown() (called from bindings.cc when the environment
// goes away, before the scheduler unwinds its fibers) closes them all and marks the registry dead, so
// the callbacks that still come (UV_ECANCELED, close) never touch the scheduler.
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "io.h"

#if !defined(_WIN32)
#include <unistd.h>
#endif

namespace spindle {
namespace {

constexpr double kPending = -1000001;   // an operation was started: await it, then take its result
constexpr double kClosed = -1000002;    // the socket (or server) was closed by close()
constexpr double kReady = -1000003;     // accept(): a connection is ready, take it with acceptResult()
constexpr size_t kReadBuffer = 64 * 1024;
// Direct reads: after this many misses in a row (nothing there), only every kDirectProbe-th read
// tries, so a socket whose data always arrives later (many connections ping-ponging) pays one
// failed read(2) per kDirectProbe reads, and one whose data is often there already (a single busy
// connection) skips the park, the loop iteration and both switches.
// And after kDirectStreak direct reads in a row without a park, the next read parks (libuv reads for
// it in the loop's next turn), so a reader whose peer always has more never keeps the loop, its
// timers and the other fibers waiting: the read-ahead buffer bounds the buffered path the same way.
constexpr uint8_t kDirectMissLimit = 2;
constexpr uint8_t kDirectProbe = 16;
constexpr uint8_t kDirectStreak = 64;

enum Slot { kReadSlot = 0, kWriteSlot = 1 };
enum class OpType { kRead, kAccept, kWrite, kShutdown, kConnect };

struct Handle;

struct Registry {
  uv_loop_t* loop = nullptr;
  Handle* head = nullptr;
  size_t live = 0;
  Scheduler* scheduler = nullptr;  // set by the first open(): the scheduler exists by then
  bool dead = false;
};

// The registries of the live environments (the main thread's and each Worker's). Fibers call in from
// their carrier threads, so this is keyed by napi_env, not thread-local; environments run in parallel.
std::mutex g_registries_lock;
std::unordered_map<napi_env, Registry*>& registries() {
  static auto* map = new std::unordered_map<napi_env, Registry*>();  // never destroyed: exit-safe
  return *map;
}

Registry* registry_of(napi_env env) {
  std::lock_guard<std::mutex> lock(g_registries_lock);
  auto it = registries().find(env);
  return it == registries().end() ? nullptr : it->second;
}

void maybe_free_registry(Registry* reg) {
  if (reg->dead && reg->live == 0) delete reg;
}

class NetOp final : public IoOp {
 public:
  NetOp(Scheduler& scheduler, Handle* handle, OpType type) : IoOp(scheduler), handle_(handle), type_(type) {}
  void cancel() override;
  void complete(double result, bool cancelled);
  OpType type() const { return type_; }
  double result = 0;
  bool cancel_requested = false;

 private:
  Handle* handle_;
  OpType type_;
};

struct Handle {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;
  Registry* reg;
  Handle* prev = nullptr;
  Handle* next = nullptr;
  bool is_pipe;
  bool closing = false;
  bool close_done = false;
  bool wrapped = false;
  // Reading.
  std::unique_ptr<char[]> rbuf;
  size_t rhead = 0;
  size_t rlen = 0;
  bool reading = false;
  bool eof = false;
  int rerr = 0;
  char* rdst = nullptr;  // the parked reader's buffer (zero-copy target)
  size_t rdst_len = 0;
  uint8_t direct_misses = 0;  // direct reads in a row that found nothing (saturates)
  uint8_t direct_skips = 0;   // reads that did not try since the last try
  uint8_t direct_streak = 0;  // direct reads that returned bytes since the last park
  // Listening.
  int waiting_conns = 0;
  int accept_err = 0;
  Handle* accepted = nullptr;
  // Operations in flight (or completed, result not yet taken): one per slot, in place (a read that
  // waits allocates nothing).
  std::optional<NetOp> ops[2];
  uv_write_t wreq;
  uv_shutdown_t sreq;
  uv_connect_t creq;
  size_t wimmediate = 0;   // bytes of the current write that uv_try_write took
  size_t wqueued = 0;      // bytes of it given to uv_write
  double wpartial = -1;    // bytes of it that reached the kernel, fixed when the socket closed under it

  NetOp* op(int slot) { return ops[slot] ? &*ops[slot] : nullptr; }

  Handle(Registry* r, bool pipe) : reg(r), is_pipe(pipe) {
    if (pipe) uv_pipe_init(r->loop, &u.pipe, 0);
    else uv_tcp_init(r->loop, &u.tcp);
    u.handle.data = this;
    next = r->head;
    if (next != nullptr) next->prev = this;
    r->head = this;
    r->live++;
  }
};

void free_handle(Handle* h) {
  Registry* reg = h->reg;
  if (h->prev != nullptr) h->prev->next = h->next;
  else reg->head = h->next;
  if (h->next != nullptr) h->next->prev = h->prev;
  reg->live--;
  delete h;
  maybe_free_registry(reg);
}

void on_closed(uv_handle_t* handle) {
  auto* h = static_cast<Handle*>(handle->data);
  h->close_done = true;
  if (!h->wrapped) free_handle(h);
}

void NetOp::complete(double r, bool cancelled) {
  result = r;
  if (handle_->reg->dead) {
    done_ = true;
    cancelled_ = cancelled;
  } else {
    finish(cancelled);
  }
}

// Bytes of the queued write that libuv handed to the kernel so far.
double write_progress(Handle* h) {
  size_t left = uv_stream_get_write_queue_size(&h->u.stream);
  size_t sent = h->wqueued > left ? h->wqueued - left : 0;
  return static_cast<double>(h->wimmediate + sent);
}

void close_handle(Handle* h) {
  if (h->closing) return;
  h->closing = true;
  NetOp* w = h->op(kWriteSlot);
  if (w != nullptr && !w->done() && w->type() == OpType::kWrite) h->wpartial = write_progress(h);
  NetOp* r = h->op(kReadSlot);
  if (r != nullptr && !r->done()) {
    h->rdst = nullptr;
    r->complete(kClosed, false);
  }
  // A connection accepted for an accept() that completed stays with it (acceptResult() hands it out);
  // if nobody takes it, it is closed at teardown like every registered handle.
  // Pending write / shutdown / connect requests get UV_ECANCELED from libuv before on_closed.
  uv_close(&h->u.handle, on_closed);
}

void NetOp::cancel() {
  if (done_) return;
  cancel_requested = true;
  switch (type_) {
    case OpType::kRead:
      handle_->rdst = nullptr;
      complete(0, true);
      break;
    case OpType::kAccept:
      complete(0, true);
      break;
    case OpType::kWrite:
    case OpType::kShutdown:
    case OpType::kConnect:
      // libuv cannot take back a queued write, shutdown or connect: the socket is closed, and the
      // request's callback (UV_ECANCELED) completes the operation.
      close_handle(handle_);
      break;
  }
}

// ---- reading ----

void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* h = static_cast<Handle*>(handle->data);
  if (h->rdst != nullptr) {
    *buf = uv_buf_init(h->rdst, static_cast<unsigned int>(h->rdst_len));
    return;
  }
  if (!h->rbuf) h->rbuf.reset(new char[kReadBuffer]);
  if (h->rlen == 0) h->rhead = 0;
  if (h->rhead > 0 && h->rhead + h->rlen == kReadBuffer) {
    std::memmove(h->rbuf.get(), h->rbuf.get() + h->rhead, h->rlen);
    h->rhead = 0;
  }
  size_t tail = h->rhead + h->rlen;
  *buf = uv_buf_init(h->rbuf.get() + tail, static_cast<unsigned int>(kReadBuffer - tail));
}

void stop_reading(Handle* h) {
  if (!h->reading) return;
  h->reading = false;
  if (!h->closing) uv_read_stop(&h->u.stream);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* h = static_cast<Handle*>(stream->data);
  NetOp* op = h->op(kReadSlot);
  bool reader = op != nullptr && !op->done() && op->type() == OpType::kRead && h->rdst != nullptr;
  if (nread > 0) {
    if (reader && buf->base == h->rdst) {
      h->rdst = nullptr;
      op->complete(static_cast<double>(nread), false);
    } else {
      h->rlen += static_cast<size_t>(nread);
    }
  } else if (nread == UV_EOF) {
    h->eof = true;
    h->reading = false;  // libuv stopped reading
    if (reader) {
      h->rdst = nullptr;
      op->complete(0, false);
    }
  } else if (nread == UV_ENOBUFS) {
    stop_reading(h);
  } else if (nread < 0) {
    h->rerr = static_cast<int>(nread);
    stop_reading(h);
    if (reader) {
      h->rdst = nullptr;
      op->complete(static_cast<double>(nread), false);
    }
  }
  // Backpressure: nobody reads and the buffer is full. Reading resumes when a read makes room.
  if (h->rdst == nullptr && h->rlen == kReadBuffer) stop_reading(h);
}

void start_reading(Handle* h) {
  if (h->reading || h->eof || h->rerr != 0 || h->closing) return;
  if (h->rdst == nullptr && h->rlen == kReadBuffer) return;
  int err = uv_read_start(&h->u.stream, on_alloc, on_read);
  if (err != 0) h->rerr = err;
  else h->reading = true;
}

// A non-blocking read(2) into `dst` before parking: the bytes (> 0), an error (< 0, then reading
// stops as libuv would stop it), or UV_EAGAIN when it did not try or found nothing. Only while libuv
// reads the socket (so it is open, connected, not at EOF) and nothing is buffered, so the order of
// the bytes is kept; libuv keeps no count of what the socket holds, so reading it here leaves its
// state as it was (its next read of the socket gets EAGAIN, or the bytes that came after). EOF is
// left to libuv: the read returns 0 again there, and libuv's EOF handling (its read stop and flags)
// runs as usual, completing the parked read with 0.
ssize_t direct_read(Handle* h, char* dst, size_t length) {
#if defined(_WIN32)
  (void)h, (void)dst, (void)length;
  return UV_EAGAIN;
#else
  if (!h->reading || h->closing || h->rlen > 0 || h->direct_streak >= kDirectStreak) return UV_EAGAIN;
  if (h->direct_misses >= kDirectMissLimit && ++h->direct_skips < kDirectProbe) return UV_EAGAIN;
  h->direct_skips = 0;
  uv_os_fd_t fd;
  if (uv_fileno(&h->u.handle, &fd) != 0) return UV_EAGAIN;
  ssize_t n;
  do n = ::read(fd, dst, length);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    h->direct_misses = 0;
    h->direct_streak++;
    return n;
  }
  if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
    if (h->direct_misses < UINT8_MAX) h->direct_misses++;
    return UV_EAGAIN;
  }
  h->rerr = uv_translate_sys_error(errno);
  stop_reading(h);
  return h->rerr;
#endif
}

// ---- requests ----

void on_write(uv_write_t* req, int status) {
  auto* h = static_cast<Handle*>(req->data);
  NetOp* op = h->op(kWriteSlot);
  if (op == nullptr || op->done()) return;
  if (status == 0) {
    op->complete(static_cast<double>(h->wimmediate + h->wqueued), false);
  } else if (status == UV_ECANCELED && op->cancel_requested) {
    op->complete(status, true);
  } else {
    op->complete(status == UV_ECANCELED && h->closing ? kClosed : status, false);
  }
}

void on_shutdown(uv_shutdown_t* req, int status) {
  auto* h = static_cast<Handle*>(req->data);
  NetOp* op = h->op(kWriteSlot);
  if (op == nullptr || op->done()) return;
  if (status == UV_ECANCELED && op->cancel_requested) op->complete(status, true);
  else op->complete(status == UV_ECANCELED && h->closing ? kClosed : status, false);
}

void on_connect(uv_connect_t* req, int status) {
  auto* h = static_cast<Handle*>(req->data);
  NetOp* op = h->op(kWriteSlot);
  if (op == nullptr || op->done()) return;
  if (status == 0) {
    start_reading(h);
    op->complete(0, false);
  } else if (status == UV_ECANCELED && op->cancel_requested) {
    op->complete(status, true);
  } else {
    op->complete(status == UV_ECANCELED && h->closing ? kClosed : status, false);
  }
}

// A new Handle for a pending connection of `server`, accepted and reading ahead; or an error.
int accept_one(Handle* server, Handle** out) {
  auto* client = new Handle(server->reg, server->is_pipe);
  int err = uv_accept(&server->u.stream, &client->u.stream);
  if (err != 0) {
    close_handle(client);
    return err;
  }
  start_reading(client);
  *out = client;
  return 0;
}

void on_connection(uv_stream_t* stream, int status) {
  auto* h = static_cast<Handle*>(stream->data);
  if (h->closing) return;
  NetOp* op = h->op(kReadSlot);
  bool waiting = op != nullptr && !op->done() && op->type() == OpType::kAccept;
  if (status < 0) {
    if (waiting) op->complete(status, false);
    else h->accept_err = status;
    return;
  }
  if (!waiting) {
    h->waiting_conns++;
    return;
  }
  Handle* client = nullptr;
  int err = accept_one(h, &client);
  if (err == 0) h->accepted = client;
  op->complete(err, false);
}

// ---- addresses ----

bool parse_addr(const std::string& ip, int port, sockaddr_storage* ss) {
  std::memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(ss)) == 0) return true;
  return uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(ss)) == 0;
}

// ---- the JavaScript surface ----
// Plain functions over a napi_external (not an ObjectWrap): while a Worker terminates, JavaScript may
// still make a call or two, and napi_unwrap (like every call that needs to run JavaScript) then fails;
// node-addon-api would turn that failure into a fatal error. The calls below only use N-API functions
// that work during termination, and the one that may not (creating an external) is checked by hand.

Napi::Number num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

Handle* handle_arg(const Napi::CallbackInfo& info) {
  void* data = nullptr;
  if (info.Length() < 1 || napi_get_value_external(info.Env(), info[0], &data) != napi_ok) return nullptr;
  return static_cast<Handle*>(data);
}

// The external's finalizer: the JavaScript object is gone.
void handle_collected(napi_env, void* data, void*) {
  auto* h = static_cast<Handle*>(data);
  h->wrapped = false;
  if (h->close_done) free_handle(h);
  else if (!h->closing) close_handle(h);  // collected without close(): close it now
}

// A JavaScript value owning `h`, or undefined if the environment cannot make one (then `h` is closed).
Napi::Value wrap(Napi::Env env, Handle* h) {
  napi_value out = nullptr;
  if (napi_create_external(env, h, handle_collected, nullptr, &out) != napi_ok) {
    close_handle(h);
    return env.Undefined();
  }
  h->wrapped = true;
  return Napi::Value(env, out);
}

// A boolean argument (napi_get_value_bool works during termination; coercion would not).
bool bool_arg(const Napi::CallbackInfo& info, size_t i) {
  bool value = false;
  if (info.Length() > i) napi_get_value_bool(info.Env(), info[i], &value);
  return value;
}

size_t size_arg(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<size_t>(info[i].As<Napi::Number>().DoubleValue());
}

char* bytes_arg(const Napi::CallbackInfo& info, size_t i) {
  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(info.Env(), info[i], &type, &length, &data, &ab, &offset) != napi_ok) return nullptr;
  return static_cast<char*>(data);
}

NetOp* start(Napi::Env env, Handle* h, Slot slot, OpType type) {
  return &h->ops[slot].emplace(*scheduler_of(env), h, type);
}

#define HANDLE_OR_RETURN()                               \
  Handle* h = handle_arg(info);                          \
  Napi::Env env = info.Env();                            \
  if (h == nullptr) return num(env, UV_EINVAL);          \
  (void)env

// netOpen(isPipe): a new, unconnected handle.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Registry* reg = registry_of(info.Env());
  Scheduler* scheduler = scheduler_of(info.Env());
  if (reg == nullptr || reg->dead || scheduler == nullptr) return info.Env().Undefined();
  reg->scheduler = scheduler;
  return wrap(info.Env(), new Handle(reg, bool_arg(info, 0)));
}

// netRead(h, u8, offset, length): bytes copied (0 at EOF), a negative errno, kClosed, or kPending.
Napi::Value Read(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  if (h->closing) return num(env, kClosed);
  char* base = bytes_arg(info, 1);
  if (base == nullptr) return num(env, UV_EINVAL);
  char* dst = base + size_arg(info, 2);
  size_t length = size_arg(info, 3);
  if (h->rlen > 0) {
    size_t n = length < h->rlen ? length : h->rlen;
    std::memcpy(dst, h->rbuf.get() + h->rhead, n);
    h->rhead += n;
    h->rlen -= n;
    if (h->rlen == 0) h->rhead = 0;
    start_reading(h);
    return num(env, static_cast<double>(n));
  }
  if (h->rerr != 0) return num(env, h->rerr);
  if (h->eof || length == 0) return num(env, 0);
  ssize_t n = direct_read(h, dst, length);
  if (n != UV_EAGAIN) return num(env, static_cast<double>(n));
  h->direct_streak = 0;
  start(env, h, kReadSlot, OpType::kRead);
  h->rdst = dst;
  h->rdst_len = length;
  start_reading(h);
  if (h->rerr != 0 && h->rdst != nullptr) {
    h->rdst = nullptr;
    h->ops[kReadSlot].reset();
    return num(env, h->rerr);
  }
  return num(env, kPending);
}

// netWrite(h, u8, offset, length): all bytes written at once (length), a negative errno, kClosed, or
// kPending (the rest is queued; netOpResult(h, 1) gives the total or an error).
Napi::Value Write(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  if (h->closing) return num(env, kClosed);
  char* base = bytes_arg(info, 1);
  if (base == nullptr) return num(env, UV_EINVAL);
  char* src = base + size_arg(info, 2);
  size_t length = size_arg(info, 3);
  uv_buf_t buf = uv_buf_init(src, static_cast<unsigned int>(length));
  int n = uv_try_write(&h->u.stream, &buf, 1);
  if (n == static_cast<int>(length)) return num(env, n);
  if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
  if (n < 0) return num(env, n);
  h->wimmediate = static_cast<size_t>(n);
  h->wqueued = length - static_cast<size_t>(n);
  h->wpartial = -1;
  buf = uv_buf_init(src + n, static_cast<unsigned int>(length - n));
  h->wreq.data = h;
  int err = uv_write(&h->wreq, &h->u.stream, &buf, 1, on_write);
  if (err != 0) return num(env, err);
  start(env, h, kWriteSlot, OpType::kWrite);
  return num(env, kPending);
}

// netWritten(h): bytes of the last queued write that reached the kernel (fixed when close cut it short).
Napi::Value Written(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  if (h->wpartial >= 0) return num(env, h->wpartial);
  if (h->closing) return num(env, 0);
  return num(env, write_progress(h));
}

Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  if (h->closing) return num(env, kClosed);
  h->sreq.data = h;
  int err = uv_shutdown(&h->sreq, &h->u.stream, on_shutdown);
  if (err != 0) return num(env, err);
  start(env, h, kWriteSlot, OpType::kShutdown);
  return num(env, kPending);
}

// netConnect(h, ip, port) for TCP, netConnect(h, path) for a Unix socket: kPending or a negative errno.
Napi::Value Connect(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  if (h->closing) return num(env, kClosed);
  h->creq.data = h;
  if (h->is_pipe) {
    std::string path = info[1].As<Napi::String>().Utf8Value();
    uv_pipe_connect(&h->creq, &h->u.pipe, path.c_str(), on_connect);
  } else {
    sockaddr_storage ss;
    if (!parse_addr(info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Number>().Int32Value(), &ss)) {
      return num(env, UV_EINVAL);
    }
    int err = uv_tcp_connect(&h->creq, &h->u.tcp, reinterpret_cast<sockaddr*>(&ss), on_connect);
    if (err != 0) return num(env, err);
  }
  start(env, h, kWriteSlot, OpType::kConnect);
  return num(env, kPending);
}

// netListen(h, ip, port, backlog, ipv6Only) for TCP, netListen(h, path, backlog) for a Unix socket:
// 0 or a negative errno (bind errors surface here too).
Napi::Value Listen(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  if (h->closing) return num(env, kClosed);
  int backlog;
  int err;
  if (h->is_pipe) {
    std::string path = info[1].As<Napi::String>().Utf8Value();
    backlog = info[2].As<Napi::Number>().Int32Value();
    err = uv_pipe_bind(&h->u.pipe, path.c_str());
  } else {
    sockaddr_storage ss;
    if (!parse_addr(info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Number>().Int32Value(), &ss)) {
      return num(env, UV_EINVAL);
    }
    backlog = info[3].As<Napi::Number>().Int32Value();
    unsigned flags = bool_arg(info, 4) ? UV_TCP_IPV6ONLY : 0;
    err = uv_tcp_bind(&h->u.tcp, reinterpret_cast<sockaddr*>(&ss), flags);
  }
  if (err == 0) err = uv_listen(&h->u.stream, backlog, on_connection);
  return num(env, err);
}

// netAccept(h): kReady (take it with netAcceptResult), kPending, kClosed or a negative errno.
Napi::Value Accept(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  if (h->closing) return num(env, kClosed);
  if (h->accept_err != 0) {
    int err = h->accept_err;
    h->accept_err = 0;
    return num(env, err);
  }
  if (h->waiting_conns > 0) {
    h->waiting_conns--;
    Handle* client = nullptr;
    int err = accept_one(h, &client);
    if (err != 0) return num(env, err);
    h->accepted = client;
    return num(env, kReady);
  }
  start(env, h, kReadSlot, OpType::kAccept);
  return num(env, kPending);
}

// netAcceptResult(h): the accepted connection as a new handle, or null.
Napi::Value AcceptResult(const Napi::CallbackInfo& info) {
  Handle* h = handle_arg(info);
  if (h == nullptr || h->accepted == nullptr) return info.Env().Null();
  Handle* client = h->accepted;
  h->accepted = nullptr;
  return wrap(info.Env(), client);
}

NetOp* op_arg(const Napi::CallbackInfo& info, Handle* h) {
  uint32_t slot = info[1].As<Napi::Number>().Uint32Value();
  return slot < 2 ? h->op(slot) : nullptr;
}

Napi::Value OpDone(const Napi::CallbackInfo& info) {
  Handle* h = handle_arg(info);
  NetOp* o = h == nullptr ? nullptr : op_arg(info, h);
  return Napi::Boolean::New(info.Env(), o == nullptr || o->done());
}

Napi::Value OpCancel(const Napi::CallbackInfo& info) {
  Handle* h = handle_arg(info);
  NetOp* o = h == nullptr ? nullptr : op_arg(info, h);
  if (o != nullptr) o->cancel();
  return info.Env().Undefined();
}

Napi::Value OpCancelled(const Napi::CallbackInfo& info) {
  Handle* h = handle_arg(info);
  NetOp* o = h == nullptr ? nullptr : op_arg(info, h);
  return Napi::Boolean::New(info.Env(), o != nullptr && o->cancelled());
}

// netOpResult(h, slot): the finished operation's result; the slot is free again.
Napi::Value OpResult(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  uint32_t slot = info[1].As<Napi::Number>().Uint32Value();
  if (slot >= 2 || !h->ops[slot]) return num(env, kClosed);
  double r = h->ops[slot]->result;
  h->ops[slot].reset();
  return num(env, r);
}

// netWait(h, slot, timeoutMs): parks the calling fiber until the slot's operation is done, then takes
// its result as netOpResult does. kPending when the fiber was woken before that (an interruption, a
// deadlock report, the timeout) or could not park: the operation is still in flight, and JavaScript
// goes on with the general wait (awaitIo), which cancels it if it must.
Napi::Value Wait(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  uint32_t slot = info[1].As<Napi::Number>().Uint32Value();
  if (slot >= 2 || !h->ops[slot]) return num(env, kClosed);
  if (!h->ops[slot]->done()) {
    // While parked, `h` stays alive: info[0] holds its external, so it cannot be finalized. The
    // operation stays in its slot: only this fiber's calls (serialized per slot) take or replace it.
    Scheduler* scheduler = scheduler_of(env);
    WakeReason reason = kWoken;
    double timeout = info[2].As<Napi::Number>().DoubleValue();
    if (scheduler == nullptr || scheduler->park(timeout, &reason) != Status::kOk) return num(env, kPending);
    if (!h->ops[slot] || !h->ops[slot]->done()) return num(env, kPending);
  }
  double r = h->ops[slot]->result;
  h->ops[slot].reset();
  return num(env, r);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  Handle* h = handle_arg(info);
  if (h != nullptr) close_handle(h);
  return info.Env().Undefined();
}

Napi::Value SetNoDelay(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  if (h->closing || h->is_pipe) return num(env, 0);
  return num(env, uv_tcp_nodelay(&h->u.tcp, bool_arg(info, 1) ? 1 : 0));
}

Napi::Value SetKeepAlive(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  if (h->closing || h->is_pipe) return num(env, 0);
  unsigned delay = info[2].As<Napi::Number>().Uint32Value();
  return num(env, uv_tcp_keepalive(&h->u.tcp, bool_arg(info, 1) ? 1 : 0, delay));
}

// netSockName(h) / netPeerName(h): "family port address" for TCP ("IPv4 80 127.0.0.1"), the path for a
// Unix socket, or a negative errno.
Napi::Value Name(const Napi::CallbackInfo& info, bool peer) {
  HANDLE_OR_RETURN();
  if (h->closing) return num(env, kClosed);
  if (h->is_pipe) {
    char path[1024];
    size_t len = sizeof path;
    int err = peer ? uv_pipe_getpeername(&h->u.pipe, path, &len) : uv_pipe_getsockname(&h->u.pipe, path, &len);
    if (err != 0) return num(env, err);
    return Napi::String::New(env, path, len);
  }
  sockaddr_storage ss;
  int len = sizeof ss;
  int err = peer ? uv_tcp_getpeername(&h->u.tcp, reinterpret_cast<sockaddr*>(&ss), &len)
                 : uv_tcp_getsockname(&h->u.tcp, reinterpret_cast<sockaddr*>(&ss), &len);
  if (err != 0) return num(env, err);
  char ip[INET6_ADDRSTRLEN + 1] = {0};
  int port = 0;
  const char* family;
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    uv_ip6_name(a, ip, sizeof ip);
    port = ntohs(a->sin6_port);
    family = "IPv6";
  } else if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    uv_ip4_name(a, ip, sizeof ip);
    port = ntohs(a->sin_port);
    family = "IPv4";
  } else {
    return num(env, UV_EAFNOSUPPORT);
  }
  return Napi::String::New(env, std::string(family) + " " + std::to_string(port) + " " + ip);
}

Napi::Value SockName(const Napi::CallbackInfo& info) { return Name(info, false); }
Napi::Value PeerName(const Napi::CallbackInfo& info) { return Name(info, true); }

// netBuffered(h): bytes read ahead and not yet taken (tests and diagnostics).
Napi::Value Buffered(const Napi::CallbackInfo& info) {
  HANDLE_OR_RETURN();
  return num(env, static_cast<double>(h->rlen));
}

#undef HANDLE_OR_RETURN

}  // namespace

void register_tcp(Napi::Env env, Napi::Object exports) {
  auto* reg = new Registry();
  napi_get_uv_event_loop(env, &reg->loop);
  {
    std::lock_guard<std::mutex> lock(g_registries_lock);
    registries()[env] = reg;  // a new environment at a dead one's address replaces its entry
  }
  Napi::Object net = Napi::Object::New(env);
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"open", Open},         {"read", Read},           {"write", Write},           {"written", Written},
      {"shutdown", Shutdown}, {"connect", Connect},     {"listen", Listen},         {"accept", Accept},
      {"acceptResult", AcceptResult}, {"opDone", OpDone}, {"opCancel", OpCancel}, {"opCancelled", OpCancelled},
      {"opResult", OpResult}, {"wait", Wait},           {"close", Close},         {"setNoDelay", SetNoDelay}, {"setKeepAlive", SetKeepAlive},
      {"sockname", SockName}, {"peername", PeerName},   {"buffered", Buffered},
  };
  for (const auto& [name, fn] : fns) net.Set(name, Napi::Function::New(env, fn, name));
  net.Set("pending", Napi::Number::New(env, kPending));
  net.Set("closed", Napi::Number::New(env, kClosed));
  net.Set("ready", Napi::Number::New(env, kReady));
  exports.Set("net", net);
}

void tcp_teardown(Scheduler* scheduler) {
  Registry* reg = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_registries_lock);
    for (auto it = registries().begin(); it != registries().end(); ++it) {
      if (it->second->scheduler == scheduler) {
        reg = it->second;
        registries().erase(it);
        break;
      }
    }
  }
  if (reg == nullptr || reg->dead) return;
  reg->dead = true;
  for (Handle* h = reg->head; h != nullptr; h = h->next) close_handle(h);
  maybe_free_registry(reg);
}

}  // namespace spindle
