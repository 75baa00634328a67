// spindle/dns: name resolution on uv_getaddrinfo (libuv's threadpool), as an IoOp a fiber waits on.
//
// getaddrinfo(host, family) starts a lookup for the running fiber and returns it as a napi_external,
// which src/dns/index.ts waits on with awaitIo (done / cancel / cancelled, io.h) and then reads with
// status(op) and addresses(op).
// The callback turns the addrinfo list into plain strings on the loop thread and frees it at once; no
// JavaScript runs there.
//
// Cancellation: uv_cancel stops a lookup that has not started on a threadpool thread yet (its callback
// then runs with UV_EAI_CANCELED). One already running cannot be stopped: getaddrinfo(3) may take the
// resolver's whole timeout. Rather than keep the fiber waiting for a result it no longer wants, such a
// lookup is abandoned: it counts as cancelled at once, and its late callback only frees it (it never
// wakes the fiber, which has moved on). Losing a lookup's result loses nothing the caller cannot redo.
//
// Lifetime: the operation is shared by its JavaScript external and libuv; whichever lets go last frees
// it. Environment teardown (an async cleanup hook, run after the scheduler's) marks the module's state
// dead, so a lookup completing during or after teardown never touches the scheduler, which may be
// gone; it cancels the lookups in flight and holds the teardown until every callback ran, so no
// request is left active when Node closes the loop (a Worker's loop must close empty).
#include <napi.h>
#include <netdb.h>
#include <sys/socket.h>
#include <uv.h>

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "io.h"

namespace spindle {
namespace {

class LookupOp;

struct DnsState {
  bool alive = true;
  std::set<LookupOp*> in_flight;  // started, callback not run yet
  napi_async_cleanup_hook_handle cleanup = nullptr;  // set while teardown waits for in_flight

  // After a callback left in_flight: the last one during teardown lets it finish.
  void landed() {
    if (in_flight.empty() && cleanup != nullptr) {
      napi_remove_async_cleanup_hook(cleanup);
      cleanup = nullptr;
    }
  }
};

class LookupOp final : public IoOp {
 public:
  LookupOp(Scheduler& scheduler, std::shared_ptr<DnsState> state) : IoOp(scheduler), state_(std::move(state)) {
    req_.data = this;
  }

  int start(uv_loop_t* loop, const std::string& host, int family) {
    struct addrinfo hints = {};
    hints.ai_family = family == 4 ? AF_INET : family == 6 ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;  // one entry per address, like Node's dns.lookup
    int rc = uv_getaddrinfo(loop, &req_, &LookupOp::on_done, host.c_str(), nullptr, &hints);
    in_flight_ = rc == 0;
    if (in_flight_) state_->in_flight.insert(this);
    return rc;
  }

  // Environment teardown: stop the request if it has not started.
  void cancel_request() { uv_cancel(reinterpret_cast<uv_req_t*>(&req_)); }

  void cancel() override {
    if (done_ || !in_flight_) return;
    if (uv_cancel(reinterpret_cast<uv_req_t*>(&req_)) == 0) return;  // the callback reports UV_EAI_CANCELED
    // Already running on a threadpool thread: abandon it (see the top of this file).
    abandoned_ = true;
    done_ = true;
    cancelled_ = true;
  }

  // JavaScript let go of it: free now, or let the callback do it.
  void release(napi_env) override {
    released_ = true;
    if (!in_flight_) delete this;
  }

  int status() const { return status_; }
  const std::vector<std::pair<std::string, int>>& addresses() const { return addresses_; }

 private:
  static void on_done(uv_getaddrinfo_t* req, int status, struct addrinfo* res) {
    auto* op = static_cast<LookupOp*>(req->data);
    op->in_flight_ = false;
    if (!op->abandoned_) {
      op->status_ = status;
      if (status == 0) {
        for (struct addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
          char text[INET6_ADDRSTRLEN] = {0};
          if (ai->ai_family == AF_INET) {
            uv_ip4_name(reinterpret_cast<const struct sockaddr_in*>(ai->ai_addr), text, sizeof text);
            op->addresses_.emplace_back(text, 4);
          } else if (ai->ai_family == AF_INET6) {
            uv_ip6_name(reinterpret_cast<const struct sockaddr_in6*>(ai->ai_addr), text, sizeof text);
            op->addresses_.emplace_back(text, 6);
          }
        }
      }
    }
    uv_freeaddrinfo(res);
    std::shared_ptr<DnsState> state = op->state_;
    state->in_flight.erase(op);
    if (op->released_) {
      delete op;
    } else if (!op->abandoned_) {
      if (state->alive) {
        op->finish(status == UV_EAI_CANCELED);
      } else {
        op->done_ = true;
        op->cancelled_ = status == UV_EAI_CANCELED;
      }
    }
    state->landed();
  }

  std::shared_ptr<DnsState> state_;
  uv_getaddrinfo_t req_{};
  bool in_flight_ = false;
  bool abandoned_ = false;
  bool released_ = false;
  int status_ = 0;
  std::vector<std::pair<std::string, int>> addresses_;
};

// ---- the JavaScript surface: plain functions over an io_wrap external (io.h) ----

LookupOp* lookup_arg(const Napi::CallbackInfo& info) { return static_cast<LookupOp*>(io_arg(info)); }

// getaddrinfo(host, family): family 0 (any), 4 or 6. Returns the operation, a negative libuv error
// number when the lookup could not even start, or undefined when the environment is going away.
Napi::Value GetAddrInfoStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // Freed by the teardown hook, which runs after the scheduler is gone: check the scheduler first.
  auto* state = static_cast<std::shared_ptr<DnsState>*>(info.Data());
  Scheduler* scheduler = scheduler_of(env);
  if (scheduler == nullptr || !(*state)->alive) return throw_error(env, "ERR_FIBER_STATE", "spindle's native core is not initialized");
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    return throw_error(env, "ERR_INVALID_ARG_TYPE", "getaddrinfo(host, family)");
  }
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int family = info[1].As<Napi::Number>().Int32Value();
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return throw_error(env, "ERR_FIBER_STATE", "no libuv loop");
  auto* op = new LookupOp(*scheduler, *state);
  napi_value handle = io_wrap(env, op);
  if (handle == nullptr) return env.Undefined();
  int rc = op->start(loop, host, family);
  if (rc != 0) return Napi::Number::New(env, rc);  // the external frees it
  return Napi::Value(env, handle);
}

Napi::Value LookupStatus(const Napi::CallbackInfo& info) {
  LookupOp* op = lookup_arg(info);
  return op == nullptr ? Napi::Value() : Napi::Number::New(info.Env(), op->status());
}

// addresses(op): [{ address, family }] once done. Raw N-API, failures ignored: no abort while a Worker
// terminates.
Napi::Value LookupAddresses(const Napi::CallbackInfo& info) {
  LookupOp* op = lookup_arg(info);
  if (op == nullptr) return Napi::Value();
  napi_env env = info.Env();
  napi_value out = nullptr;
  napi_create_array(env, &out);
  uint32_t i = 0;
  for (const auto& [address, family] : op->addresses()) {
    napi_value entry = nullptr, text = nullptr, number = nullptr;
    napi_create_object(env, &entry);
    napi_create_string_utf8(env, address.c_str(), address.size(), &text);
    napi_create_int32(env, family, &number);
    napi_set_named_property(env, entry, "address", text);
    napi_set_named_property(env, entry, "family", number);
    napi_set_element(env, out, i++, entry);
  }
  return Napi::Value(env, out);
}

}  // namespace

void register_dns(Napi::Env env, Napi::Object exports) {
  auto* state = new std::shared_ptr<DnsState>(std::make_shared<DnsState>());
  Napi::Object dns = Napi::Object::New(env);
  dns.Set("getaddrinfo", Napi::Function::New(env, GetAddrInfoStart, "getaddrinfo", state));
  io_define_common(env, dns);
  dns.Set("status", Napi::Function::New(env, LookupStatus, "status"));
  dns.Set("addresses", Napi::Function::New(env, LookupAddresses, "addresses"));
  exports.Set("dns", dns);
  napi_add_async_cleanup_hook(
      env,
      [](napi_async_cleanup_hook_handle handle, void* arg) {
        auto* boxed = static_cast<std::shared_ptr<DnsState>*>(arg);
        std::shared_ptr<DnsState> s = *boxed;
        delete boxed;
        s->alive = false;
        if (s->in_flight.empty()) {
          napi_remove_async_cleanup_hook(handle);
          return;
        }
        s->cleanup = handle;  // removed by the last callback (DnsState::landed)
        std::vector<LookupOp*> ops(s->in_flight.begin(), s->in_flight.end());
        for (LookupOp* op : ops) op->cancel_request();
      },
      state, nullptr);
}

}  // namespace spindle
