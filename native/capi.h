// The C API for other addons (include/spindle.h): the static function table, wake tokens, and the
// per-environment state behind them (the uv_async that carries cross-thread signals, the JavaScript
// functions of src/native-api.ts that parking goes through). Calls no V8 directly: only N-API, libuv
// and the scheduler's wake/running_handle.
//
// Parking goes through JavaScript on purpose: src/native-api.ts parks with runtime.ts's park(), so the
// fiber's status, waitingOn, interruption and its async-context leave/enter are exactly those of any
// other suspension (Node 20/22 abort if the async_hooks stack is not handed over).
#pragma once

#include <node_api.h>
#include <uv.h>

#include <memory>

struct spindle_api;

namespace spindle {

class Scheduler;
struct CApiEnv;

// Loop thread, inside the capiInit N-API call: the environment's API state. `fns` is an object with
// the functions park, current, interrupted, error (see src/native-api.ts). The environment becomes
// reachable from any addon's napi_env of the same loop. teardown(arg) starts the environment's
// teardown (idempotent): the C API calls it from a cleanup hook on each addon env that used it, which
// runs before that env is freed, so that fibers parked inside that addon's calls unwind first.
std::shared_ptr<CApiEnv> capi_attach(napi_env env, uv_loop_t* loop, Scheduler* scheduler, napi_value fns,
                                     void (*teardown)(void*), void* teardown_arg);

// Environment teardown, loop thread, before the scheduler is torn down: no new tokens or parks,
// signals are ignored from now on, queued cross-thread signals are dropped.
void capi_detach(CApiEnv& state);

// After the scheduler is deleted: close the uv_async; done(arg) runs when libuv has closed it.
void capi_close(const std::shared_ptr<CApiEnv>& state, void (*done)(void*), void* arg);

// The table published to other addons (static; the same for every environment).
const spindle_api* capi_table();

// Tokens not yet freed, process-wide.
size_t capi_live_tokens();

}  // namespace spindle
