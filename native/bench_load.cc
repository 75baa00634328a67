#include "bench_load.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

namespace spindle {

namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&&) = delete;
  Fd(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

bool fail(std::string* error, const char* what) {
  *error = std::string(what) + ": " + std::strerror(errno);
  return false;
}

struct Conn {
  Fd fd;
  uint32_t received = 0;  // bytes of the message in flight received so far
  bool eof = false;
};

bool send_message(const Conn& c, const std::vector<char>& message, std::string* error) {
  // One message in flight per socket: the send buffer is empty, so the kernel takes it whole.
  ssize_t n = send(c.fd.get(), message.data(), message.size(), MSG_NOSIGNAL);
  if (n == static_cast<ssize_t>(message.size())) return true;
  if (n >= 0) errno = EAGAIN;
  return fail(error, "send");
}

void mark(int fd, const char* line) {
  if (fd < 0) return;
  ssize_t n = write(fd, line, std::strlen(line));
  (void)n;  // a reader that went away does not stop the run
}

int ms_until(Clock::time_point t) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left + 1, 0, 1000));
}

}  // namespace

bool echo_load(const EchoLoad& load, EchoLoadResult* result, std::string* error) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(load.port);
  if (inet_pton(AF_INET, load.host.c_str(), &addr.sin_addr) != 1) {
    *error = "host must be an IPv4 address: " + load.host;
    return false;
  }
  Fd ep(epoll_create1(EPOLL_CLOEXEC));
  if (ep.get() < 0) return fail(error, "epoll_create1");

  std::vector<Conn> conns;
  conns.reserve(load.connections);
  for (uint32_t i = 0; i < load.connections; ++i) {
    Conn& c = conns.emplace_back(Conn{Fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0))});
    if (c.fd.get() < 0) return fail(error, "socket");
    if (connect(c.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return fail(error, "connect");
    int one = 1;
    setsockopt(c.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(c.fd.get(), F_SETFL, O_NONBLOCK) != 0) return fail(error, "fcntl");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = i;
    if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) return fail(error, "epoll_ctl");
  }

  const std::vector<char> message(load.size, 'x');
  std::vector<char> buf(64 * 1024);
  std::vector<epoll_event> events(256);
  for (const Conn& c : conns) {
    if (!send_message(c, message, error)) return false;
  }

  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(load.warmup_ms);
  const Clock::time_point end = start + std::chrono::milliseconds(load.duration_ms);
  uint64_t messages = 0;
  bool counting = false;
  bool stopped = false;
  Clock::time_point stopped_at;
  uint32_t open = load.connections;
  while (open > 0) {
    const Clock::time_point now = Clock::now();
    if (!counting && now >= start) {
      counting = true;
      mark(load.mark_fd, "measuring\n");
    }
    if (!stopped && now >= end) {
      stopped = true;
      stopped_at = now;
      result->messages = messages;
      result->seconds = std::chrono::duration<double>(now - start).count();
      mark(load.mark_fd, "stopped\n");
      for (const Conn& c : conns) shutdown(c.fd.get(), SHUT_WR);  // the server sees EOF
    }
    if (stopped && now - stopped_at > std::chrono::seconds(2)) break;  // a server that keeps its side open
    const Clock::time_point next = stopped ? stopped_at + std::chrono::seconds(2) : counting ? end : start;
    int n = epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), ms_until(next));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(error, "epoll_wait");
    }
    for (int k = 0; k < n; ++k) {
      Conn& c = conns[events[k].data.u32];
      if (c.eof) continue;
      for (;;) {
        ssize_t r = recv(c.fd.get(), buf.data(), buf.size(), 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && !stopped) return fail(error, "recv");
        if (r <= 0) {  // the end of the stream (or a reset after ours): this socket is done
          if (!stopped) {
            *error = "the server closed a connection during the run";
            return false;
          }
          c.eof = true;
          epoll_ctl(ep.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
          --open;
          break;
        }
        if (stopped) continue;  // the last echoes: read and dropped
        c.received += static_cast<uint32_t>(r);
        for (; c.received >= load.size; c.received -= load.size) {
          if (counting) ++messages;
          if (!send_message(c, message, error)) return false;
        }
      }
    }
  }
  return true;
}

}  // namespace spindle
