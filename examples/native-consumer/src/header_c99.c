/* Compiled as C99 with warnings as errors: include/spindle.h must stay usable from C. */
#include <spindle.h>

const spindle_api* native_consumer_c_check(napi_env env, napi_value spindle_exports);
const spindle_api* native_consumer_c_check(napi_env env, napi_value spindle_exports) {
  const spindle_api* api = NULL;
  return spindle_api_get(env, spindle_exports, SPINDLE_API_VERSION, &api) == napi_ok ? api : NULL;
}
