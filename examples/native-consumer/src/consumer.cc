// An addon built separately from spindle, using only include/spindle.h (no link against spindle):
// compute(n, delayMs, timeoutMs?) runs a blocking C computation on its own thread and parks the
// calling fiber until it is done; other fibers and the event loop go on meanwhile.
//
//   const addon = require('./build/native_consumer.node');
//   addon.init(require('spindle'));        // once per thread (main, each Worker)
//   spawn(() => addon.compute(100000, 50)); // inside a fiber
//
// Interruption keeps "delivered or not at all": the cancel callback asks the worker to stop; the park
// returns only once the worker has signalled, and then the result is either returned (it completed)
// or the call throws FiberInterruptedError (it was cancelled), never both and never neither.
#include <node_api.h>
#include <spindle.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include "compute.h"

namespace {

const spindle_api* api = nullptr;  // the same table for every environment (and every Worker)

// Process-wide counters, for the tests.
std::atomic<int64_t> started{0}, completed{0}, cancelled{0}, delivered{0}, discarded{0}, cancel_calls{0},
    double_deliveries{0}, jobs_alive{0}, woken{0}, interrupted{0}, timed_out{0}, errors{0};

struct Job {
  std::atomic<int> refs{2};  // the calling fiber and the worker thread
  uint64_t n = 0;
  uint32_t delay_ms = 0;
  std::atomic<bool> stop{false};
  spindle_token* token = nullptr;
  // Written by the worker before it signals; read by the fiber after park() returned.
  bool done = false;
  uint64_t result = 0;
  int deliveries = 0;
};

void unref(Job* job) {
  if (job->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    delete job;
    jobs_alive--;
  }
}

int should_stop(void* arg) { return static_cast<Job*>(arg)->stop.load(std::memory_order_relaxed) ? 1 : 0; }

void worker(Job* job) {
  uint64_t result = 0;
  if (collatz_total(job->n, job->delay_ms, should_stop, job, &result) == 0) {
    job->result = result;
    job->done = true;
    completed++;
  } else {
    cancelled++;
  }
  spindle_token* token = job->token;
  unref(job);  // after this, only the token is ours
  api->signal_threadsafe(token);  // -1 if the environment is gone: nothing to do then
  api->token_release(token);
}

// Runs in the interrupted fiber, on the JS thread.
void on_cancel(spindle_token*, void* data) {
  cancel_calls++;
  static_cast<Job*>(data)->stop.store(true, std::memory_order_relaxed);
}

napi_value throw_error(napi_env env, const char* message) {
  napi_throw_error(env, "ERR_NATIVE_CONSUMER", message);
  return nullptr;
}

bool number_arg(napi_env env, napi_value value, double* out) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && type == napi_number && napi_get_value_double(env, value, out) == napi_ok;
}

void count(spindle_status s) {
  switch (s) {
    case SPINDLE_WOKEN: woken++; break;
    case SPINDLE_INTERRUPTED: interrupted++; break;
    case SPINDLE_TIMED_OUT: timed_out++; break;
    default: errors++; break;
  }
}

// init(spindleExports): fetch and check the table.
napi_value Init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 1) return throw_error(env, "init(require('spindle'))");
  const spindle_api* table = nullptr;
  if (spindle_api_get(env, argv[0], SPINDLE_API_VERSION, &table) != napi_ok) return nullptr;  // thrown
  api = table;
  napi_value version;
  napi_create_uint32(env, api->version, &version);
  return version;
}

// compute(n, delayMs, timeoutMs = -1): the total Collatz steps of 1..n, computed on another thread.
napi_value Compute(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double n = 0, delay = 0, timeout = -1;
  if (api == nullptr) return throw_error(env, "call init(require('spindle')) first");
  if (argc < 2 || !number_arg(env, argv[0], &n) || !number_arg(env, argv[1], &delay) || n < 1 || delay < 0) {
    return throw_error(env, "compute(n >= 1, delayMs >= 0, timeoutMs?)");
  }
  if (argc >= 3 && !number_arg(env, argv[2], &timeout)) return throw_error(env, "timeoutMs must be a number");

  // Not in a fiber: refuse before starting any work.
  if (api->current_fiber(env) == 0) {
    api->throw_status(env, SPINDLE_NOT_IN_FIBER, "native-consumer compute()");
    return nullptr;
  }
  spindle_token* token = api->token_create(env, "native-consumer compute()");
  if (token == nullptr) return throw_error(env, "spindle refused a wake token (shutting down?)");
  auto* job = new Job();
  jobs_alive++;
  started++;
  job->n = static_cast<uint64_t>(n);
  job->delay_ms = static_cast<uint32_t>(delay);
  job->token = token;
  api->token_set_cancel(token, on_cancel, job);
  api->token_retain(token);  // the worker's reference
  std::thread(worker, job).detach();

  spindle_status status = api->park(env, token, timeout);
  count(status);
  bool timed_out_once = false;
  if (status == SPINDLE_TIMED_OUT) {
    // The work still runs and will signal: cancel it ourselves and wait for it to finish (an
    // interruption meanwhile just ends up as INTERRUPTED below).
    timed_out_once = true;
    job->stop.store(true, std::memory_order_relaxed);
    status = api->park(env, token, -1);
    count(status);
  }

  napi_value out = nullptr;
  if (status == SPINDLE_WOKEN || status == SPINDLE_INTERRUPTED) {
    // The worker signalled: it is finished with the job, whichever way.
    if (job->done && !timed_out_once) {
      if (++job->deliveries > 1) double_deliveries++;
      delivered++;
      napi_create_double(env, static_cast<double>(job->result), &out);  // delivered (an interruption stays pending)
    } else {
      discarded++;
      api->throw_status(env, timed_out_once && status == SPINDLE_WOKEN ? SPINDLE_TIMED_OUT : status,
                        "native-consumer compute()");
    }
  } else {
    // NOT_IN_FIBER cannot happen here (checked above); ERROR: the environment is shutting down.
    // The worker may still run: it holds its own references, so dropping ours is safe.
    discarded++;
    api->throw_status(env, status, "native-consumer compute()");
  }
  api->token_release(token);
  unref(job);
  return out;
}

// parkOutsideFiber(): park called where no fiber runs; returns the status (SPINDLE_NOT_IN_FIBER).
napi_value ParkStatus(napi_env env, napi_callback_info info) {
  if (api == nullptr) return throw_error(env, "call init(require('spindle')) first");
  spindle_token* token = api->token_create(env, "native-consumer parkStatus()");
  if (token == nullptr) return throw_error(env, "no token");
  spindle_status status = api->park(env, token, 0);
  api->token_release(token);
  napi_value out;
  napi_create_int32(env, status, &out);
  return out;
}

// parkOrThrow(): parks outside fibers too, and raises what spindle says (NotInFiberError there).
napi_value ParkOrThrow(napi_env env, napi_callback_info info) {
  if (api == nullptr) return throw_error(env, "call init(require('spindle')) first");
  spindle_token* token = api->token_create(env, "native-consumer parkOrThrow()");
  spindle_status status = api->park(env, token, 0);
  api->token_release(token);
  api->throw_status(env, status, "native-consumer parkOrThrow()");
  return nullptr;
}

// signalLater(): a token signalled from the JS thread (loop-thread signal) by the next call of
// signalPending(); parks until then. For the loop-thread path of the API.
spindle_token* pending_token = nullptr;
napi_value WaitLoopSignal(napi_env env, napi_callback_info info) {
  if (api == nullptr) return throw_error(env, "call init(require('spindle')) first");
  if (pending_token != nullptr) return throw_error(env, "one waiter at a time");
  spindle_token* token = api->token_create(env, "native-consumer waitLoopSignal()");
  api->token_retain(token);
  pending_token = token;
  spindle_status status = api->park(env, token, -1);
  count(status);
  if (pending_token == token) {
    pending_token = nullptr;
    api->token_release(token);
  }
  api->token_release(token);
  napi_value out = nullptr;
  if (status == SPINDLE_WOKEN) napi_create_int32(env, status, &out);
  else api->throw_status(env, status, "native-consumer waitLoopSignal()");
  return out;
}

napi_value SignalPending(napi_env env, napi_callback_info info) {
  napi_value out;
  int result = -2;
  if (pending_token != nullptr) {
    spindle_token* token = pending_token;
    pending_token = nullptr;
    result = api->signal(token);
    api->signal(token);  // coalesces
    api->token_release(token);
  }
  napi_create_int32(env, result, &out);
  return out;
}

napi_value CurrentFiber(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_double(env, api ? static_cast<double>(api->current_fiber(env)) : 0, &out);
  return out;
}

napi_value IsInterrupted(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_get_boolean(env, api != nullptr && api->is_interrupted(env) != 0, &out);
  return out;
}

napi_value Stats(napi_env env, napi_callback_info info) {
  napi_value out, v;
  napi_create_object(env, &out);
  auto set = [&](const char* name, double value) {
    napi_create_double(env, value, &v);
    napi_set_named_property(env, out, name, v);
  };
  set("started", static_cast<double>(started));
  set("completed", static_cast<double>(completed));
  set("cancelled", static_cast<double>(cancelled));
  set("delivered", static_cast<double>(delivered));
  set("discarded", static_cast<double>(discarded));
  set("cancelCalls", static_cast<double>(cancel_calls));
  set("doubleDeliveries", static_cast<double>(double_deliveries));
  set("jobsAlive", static_cast<double>(jobs_alive));
  set("woken", static_cast<double>(woken));
  set("interrupted", static_cast<double>(interrupted));
  set("timedOut", static_cast<double>(timed_out));
  set("errors", static_cast<double>(errors));
  set("liveTokens", api ? static_cast<double>(api->live_tokens()) : 0);
  set("apiVersion", api ? api->version : 0);
  set("apiSize", api ? api->size : 0);
  return out;
}

napi_value ModuleInit(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"compute", nullptr, Compute, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"parkStatus", nullptr, ParkStatus, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"parkOrThrow", nullptr, ParkOrThrow, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"waitLoopSignal", nullptr, WaitLoopSignal, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"signalPending", nullptr, SignalPending, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"currentFiber", nullptr, CurrentFiber, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"isInterrupted", nullptr, IsInterrupted, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, ModuleInit)
