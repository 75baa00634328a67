// The TCP echo benchmark's load generator (bench/io-load.mjs runs it in a child process): ping-pong
// over loopback sockets from one epoll loop, so that it costs little more than the kernel's share of
// an echo. A generator made of Node `net` callbacks took as much CPU per message as the servers it
// measured, and once a server got faster than it, it measured itself.
#pragma once

#include <cstdint>
#include <string>

namespace spindle {

struct EchoLoad {
  std::string host;  // an IPv4 address
  uint16_t port = 0;
  uint32_t connections = 1;
  uint32_t size = 64;  // bytes per message
  uint32_t warmup_ms = 200;
  uint32_t duration_ms = 1000;
  // If >= 0, "measuring\n" is written there when the measured span starts and "stopped\n" when it
  // ends, so that the server's process can take its own CPU time over exactly that span.
  int mark_fd = -1;
};

struct EchoLoadResult {
  uint64_t messages = 0;  // echoed during the measured span
  double seconds = 0;     // the measured span
};

// Opens `connections` sockets (Nagle off) and on each plays ping-pong: send `size` bytes, wait until
// all `size` came back, send again. Counts the messages echoed during `duration_ms` after
// `warmup_ms`, then half-closes every socket and waits (up to 2 s) for the server to close its side.
// Blocks the calling thread throughout. False with `error` set when the address is bad, a connect
// fails, or a socket fails or is closed by the server during the run. Every socket is closed on
// every path.
bool echo_load(const EchoLoad& load, EchoLoadResult* result, std::string* error);

}  // namespace spindle
