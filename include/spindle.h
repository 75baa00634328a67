/*
 * spindle.h: the C API through which other native addons park spindle fibers on their own
 * completions (a database driver's query, a compression job, a hardware request), without going
 * through JavaScript promises and without linking against spindle.
 *
 * C99 or C++; needs only <node_api.h> (N-API 8, which spindle itself uses).
 *
 * ---------------------------------------------------------------------------------------------------
 * Discovery
 * ---------------------------------------------------------------------------------------------------
 * spindle's package entry (`require('spindle')`, or the default export of `import('spindle')`) holds,
 * under the key `Symbol.for('spindle.native.v1')` (SPINDLE_API_SYMBOL), a napi_external whose data is
 * a `const spindle_api*`. The table is static: one per loaded copy of spindle, the same for the main
 * thread and every Worker, valid until the process exits. Your addon gets it with spindle_api_get()
 * below, given spindle's exports object; the robust way is to let your JavaScript glue pass it:
 *
 *     // JS:  const addon = require('./build/my_addon.node'); addon.init(require('spindle'));
 *     // C:   static const spindle_api* api;
 *     //      napi_value Init(napi_env env, napi_callback_info info) {   // addon.init(spindle)
 *     //        ...get argv[0]...
 *     //        if (spindle_api_get(env, argv[0], 1, &api) != napi_ok) return NULL;  // JS error thrown
 *     //      }
 *
 * (An addon cannot require() by itself from N-API, and resolving 'spindle' from the addon's own
 * directory would risk picking a second copy of the package: passing the exports avoids both.)
 * Call it once per environment (the main thread and each Worker load your addon separately) or once
 * per process: the pointer is the same.
 *
 * Compatibility: fields are only ever appended. `version` grows by one with each batch of appended
 * fields and `size` is sizeof the table spindle was built with, so an addon built against this header
 * keeps working with a newer spindle. Before using a field introduced in version N, check
 * `api->version >= N` (spindle_api_get does it for the version you ask for). An incompatible change
 * would publish a new symbol ('spindle.native.v2'), never change this one.
 *
 * ---------------------------------------------------------------------------------------------------
 * Threads ("the JS thread" below)
 * ---------------------------------------------------------------------------------------------------
 * spindle runs each fiber on its own carrier OS thread, but exactly one thread runs JavaScript of an
 * environment at a time: the loop thread, or the fiber that holds the runner role. "The JS thread"
 * means whichever thread is running this environment's JavaScript right now, i.e. code called from
 * JavaScript (an N-API callback, including one called inside a fiber), or a libuv callback of this
 * environment's loop. Only signal_threadsafe, token_retain, token_release and live_tokens may be
 * called from any other thread (your worker threads).
 *
 * The napi_env argument is your own addon's env: spindle finds its environment (main thread or
 * Worker) from it. spindle must have been loaded in that environment first.
 *
 * ---------------------------------------------------------------------------------------------------
 * Wake tokens (the pattern)
 * ---------------------------------------------------------------------------------------------------
 *     spindle_token* t = api->token_create(env, "zstd.compress");     // JS thread, inside a fiber
 *     api->token_set_cancel(t, on_cancel, job);                       // optional
 *     api->token_retain(t);                                           // the worker's reference
 *     start_worker(job, t);      // worker: compute; store the result; api->signal_threadsafe(t);
 *                                //         api->token_release(t);
 *     spindle_status s = api->park(env, t, -1);                       // this fiber only sleeps
 *     api->token_release(t);
 *     if (s == SPINDLE_WOKEN) return result;    // else: api->throw_status(env, s, "compress")
 *
 * A token is a one-shot completion, like a libuv request: it is signalled at most once in effect
 * (later signals are no-ops: signalling coalesces), and park() on a signalled token returns at once.
 * Lifetime: tokens are reference-counted; token_create returns one reference; each token_release
 * drops one; the token is freed when the last goes. Every party that may touch the token holds its own
 * reference (typically: the fiber that parks, and the worker thread that signals). A park in progress
 * and a signal queued across threads hold internal references, so releasing is never unsafe, but a
 * token must not be used after its holder released it. live_tokens() counts tokens not yet freed
 * (process-wide), for leak checks.
 *
 * ---------------------------------------------------------------------------------------------------
 * Parking, interruption, cancellation ("delivered or not at all")
 * ---------------------------------------------------------------------------------------------------
 * park(env, token, timeout_ms) suspends the calling fiber only (the loop and other fibers go on) and
 * runs spindle's ordinary park path: the fiber's status, fibers()'s "waits on" (the token's label),
 * async_hooks / AsyncLocalStorage hand-over, deadlock bookkeeping. It returns:
 *   SPINDLE_WOKEN         the token is signalled (at once if it already was).
 *   SPINDLE_TIMED_OUT     timeout_ms (>= 0) elapsed first. The token is still pending: your work still
 *                         runs and will signal it; park again, or cancel it yourself and park again.
 *   SPINDLE_INTERRUPTED   the fiber was interrupted (Fiber.interrupt(), an AbortSignal, a failing
 *                         scope sibling) before or during the park, outside uninterruptible().
 *                         A park is an interruption point. On interruption spindle calls the token's
 *                         cancel callback (if set and the token is not signalled yet) once, then keeps
 *                         the fiber parked, no longer interruptible, until the token IS signalled,
 *                         and only then returns SPINDLE_INTERRUPTED. So when park returns, your worker
 *                         has finished with the job either way: it either completed or saw the
 *                         cancellation. Which one happened is yours to know: if it completed anyway
 *                         you may still deliver the result (the fiber stays interrupted: its next
 *                         interruption point throws); if it was cancelled, raise the interruption
 *                         with throw_status. A token signalled before the interruption was seen
 *                         returns SPINDLE_WOKEN (the result is delivered; the interruption stays
 *                         pending). Without a cancel callback an interrupted park still waits for
 *                         the signal, then returns SPINDLE_INTERRUPTED.
 *   SPINDLE_NOT_IN_FIBER  called outside any fiber (the loop thread, a FinalizationRegistry
 *                         callback...). Nothing was waited for. Check current_fiber() before starting
 *                         work to avoid starting it at all.
 *   SPINDLE_ERROR         parking is not possible: the environment is shutting down (the fiber is
 *                         being unwound: return to JavaScript promptly, release your references),
 *                         the token belongs to another environment or already has a fiber parked on
 *                         it, spindle is not loaded in this environment, or the park itself threw
 *                         (for example a suspension refused inside an async scope on Node 24+).
 * throw_status(env, status, operation) throws the matching spindle error in JavaScript:
 * FiberInterruptedError (with the interrupt reason), NotInFiberError, TimeoutError, or the error
 * that made the park fail; `code` as in JavaScript (ERR_FIBER_INTERRUPTED, ERR_NOT_IN_FIBER,
 * ERR_FIBER_TIMEOUT, ...). For SPINDLE_WOKEN it throws nothing.
 *
 * The cancel callback runs on the JS thread, in the interrupted fiber itself (while it is inside
 * park(), once the interruption has reached it: at its next turn, not inside interrupt()). It may
 * call signal() (if it cancelled synchronously) or signal_threadsafe(), and N-API; it must not park.
 *
 * Rules while parked (as for any suspension): do not park with an N-API handle scope or callback scope
 * of your own open (napi_open_handle_scope, Napi::HandleScope: other fibers run N-API calls into your
 * addon meanwhile, and Node checks that scopes are balanced per call), nor with an exception pending.
 * Values you need after the park must be kept in references, or be values the calling frame owns
 * (arguments, locals of the current callback: those stay valid; the fiber's stack is preserved).
 *
 * ---------------------------------------------------------------------------------------------------
 * Lifetime of the process and of Workers
 * ---------------------------------------------------------------------------------------------------
 * - A fiber parked on a token keeps its event loop alive (like a pending libuv request): the process
 *   (or Worker) does not exit, and spindle's deadlock detection does not fire, while your work is
 *   pending. A token nobody ever signals therefore hangs the process, as a libuv request that never
 *   completes would.
 * - The one uv_async_t that carries signal_threadsafe to the loop is owned by spindle, one per
 *   environment; it is closed when the environment is torn down.
 * - Environment teardown (a Worker terminated or exiting, the main thread's environment freed): parked
 *   fibers are unwound before your addon's napi_env is freed (spindle adds a cleanup hook to each env
 *   that creates a token or parks, which runs before Node frees that env); their park() calls return
 *   SPINDLE_ERROR (no cancel callback is called): return to JavaScript promptly. From
 *   then on signal() and signal_threadsafe() are accepted and ignored (they return -1), park returns
 *   SPINDLE_ERROR, token_create returns NULL. Tokens stay valid until their last reference is
 *   released (from any thread), so a worker thread that finishes after its Worker was terminated can
 *   still signal and release safely; make sure your own job data outlives it the same way.
 * - process.exit() on the main thread does not tear environments down: pending tokens are simply
 *   abandoned with the process; worker threads still running may signal until the process is gone.
 */
#ifndef SPINDLE_H_
#define SPINDLE_H_

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The key of the table on spindle's exports: Symbol.for(SPINDLE_API_SYMBOL). */
#define SPINDLE_API_SYMBOL "spindle.native.v1"
/* The version this header describes. */
#define SPINDLE_API_VERSION 1

typedef struct spindle_token spindle_token;

typedef enum spindle_status {
  SPINDLE_WOKEN = 0,
  SPINDLE_INTERRUPTED = 1,
  SPINDLE_NOT_IN_FIBER = 2,
  SPINDLE_TIMED_OUT = 3,
  SPINDLE_ERROR = 4
} spindle_status;

/* Called once when the fiber parked on `token` is interrupted before the token was signalled. */
typedef void (*spindle_cancel_cb)(spindle_token* token, void* data);

typedef struct spindle_api {
  uint32_t version; /* SPINDLE_API_VERSION of the spindle that made the table (>= 1) */
  uint32_t size;    /* sizeof(spindle_api) in that spindle */

  /* ---- version 1 ---- */

  /* JS thread. The running fiber's id (Fiber.id in JavaScript), or 0 outside fibers. */
  uint64_t (*current_fiber)(napi_env env);

  /* JS thread. A new unsignalled token with one reference, or NULL (spindle not loaded in this
   * environment, or it is shutting down). `label` (may be NULL; copied) is what fibers() shows the
   * fiber waiting on. */
  spindle_token* (*token_create)(napi_env env, const char* label);
  /* Any thread. Add a reference / drop one (the last frees the token). */
  void (*token_retain)(spindle_token* token);
  void (*token_release)(spindle_token* token);
  /* JS thread, before parking. Sets the callback an interruption invokes (NULL: none). 0 on success. */
  int (*token_set_cancel)(spindle_token* token, spindle_cancel_cb cancel, void* data);
  /* JS thread. Whether the token has been signalled (a threadsafe signal counts once the loop has
   * received it). */
  int (*token_is_signalled)(const spindle_token* token);

  /* JS thread, inside a fiber. Suspends the calling fiber until `token` is signalled, the fiber is
   * interrupted (see above), or timeout_ms elapses (timeout_ms < 0: no timeout). */
  spindle_status (*park)(napi_env env, spindle_token* token, double timeout_ms);

  /* JS thread. Signals the token: the fiber parked on it (if any) becomes ready. 0 when accepted
   * (also when it was already signalled), -1 when the environment has shut down (ignored). */
  int (*signal)(spindle_token* token);
  /* Any thread (thread-safe). Same, through spindle's uv_async for the environment: the token is
   * signalled on the loop thread shortly after. Calls coalesce. 0 when accepted, -1 when the
   * environment has shut down (ignored). Does not touch the token after it returns. */
  int (*signal_threadsafe)(spindle_token* token);

  /* JS thread. 1 if the running fiber has an interruption pending that an interruption point would
   * raise now (not inside uninterruptible()), else 0 (also outside fibers). */
  int (*is_interrupted)(napi_env env);

  /* JS thread. Throws, in `env`, the JavaScript error for `status` (see above); `operation` (may be
   * NULL) names the call in the message. Returns napi_ok when it threw (or status was WOKEN). */
  napi_status (*throw_status)(napi_env env, spindle_status status, const char* operation);

  /* Any thread. Tokens created and not yet freed, process-wide (diagnostics, leak tests). */
  size_t (*live_tokens)(void);
} spindle_api;

/* The table size of version 1: a newer spindle's table is at least this big. */
#define SPINDLE_API_V1_SIZE (offsetof(spindle_api, live_tokens) + sizeof(size_t (*)(void)))

/*
 * Fetches and checks the table from spindle's exports object (`require('spindle')`). JS thread.
 * On success sets *out and returns napi_ok. Otherwise throws a JavaScript Error (code
 * ERR_SPINDLE_NATIVE_API) saying what is wrong and returns its failing status.
 */
static inline napi_status spindle_api_get(napi_env env, napi_value spindle_exports, uint32_t min_version,
                                          const spindle_api** out) {
  napi_status st;
  napi_value global, symbol_ctor, symbol_for, name, key, value;
  napi_valuetype type;
  void* data = NULL;
  const spindle_api* api;
  bool has = false;
  const char* problem = NULL;
  *out = NULL;
  if ((st = napi_get_global(env, &global)) != napi_ok) return st;
  if ((st = napi_get_named_property(env, global, "Symbol", &symbol_ctor)) != napi_ok) return st;
  if ((st = napi_get_named_property(env, symbol_ctor, "for", &symbol_for)) != napi_ok) return st;
  if ((st = napi_create_string_utf8(env, SPINDLE_API_SYMBOL, NAPI_AUTO_LENGTH, &name)) != napi_ok) return st;
  if ((st = napi_call_function(env, symbol_ctor, symbol_for, 1, &name, &key)) != napi_ok) return st;
  if ((st = napi_typeof(env, spindle_exports, &type)) != napi_ok) return st;
  if (type != napi_object && type != napi_function) {
    problem = "spindle_api_get: expected spindle's exports object (require('spindle'))";
  } else if ((st = napi_has_property(env, spindle_exports, key, &has)) != napi_ok) {
    return st;
  } else if (!has) {
    problem = "spindle_api_get: this object has no Symbol.for('" SPINDLE_API_SYMBOL
              "'): pass require('spindle') (a spindle with the native API)";
  } else if ((st = napi_get_property(env, spindle_exports, key, &value)) != napi_ok) {
    return st;
  } else if ((st = napi_typeof(env, value, &type)) != napi_ok) {
    return st;
  } else if (type != napi_external) {
    problem = "spindle_api_get: Symbol.for('" SPINDLE_API_SYMBOL "') is not a napi_external";
  } else if ((st = napi_get_value_external(env, value, &data)) != napi_ok) {
    return st;
  } else {
    api = (const spindle_api*)data;
    if (api == NULL || api->version < 1 || api->size < SPINDLE_API_V1_SIZE) {
      problem = "spindle_api_get: malformed spindle native API table";
    } else if (api->version < min_version) {
      problem = "spindle_api_get: the loaded spindle's native API is older than this addon needs: upgrade spindle";
    } else {
      *out = api;
      return napi_ok;
    }
  }
  napi_throw_error(env, "ERR_SPINDLE_NATIVE_API", problem);
  return napi_invalid_arg;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SPINDLE_H_ */
