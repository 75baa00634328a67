/* The blocking C computation the example runs on a worker thread. */
#ifndef NATIVE_CONSUMER_COMPUTE_H_
#define NATIVE_CONSUMER_COMPUTE_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The total number of Collatz steps of 1..n, computed in 20 chunks with a pause of delay_ms / 20
 * between them (a stand-in for a slow device or a long query). should_stop(arg) is asked between
 * chunks; returns 0 with *out set when done, 1 when it stopped early.
 */
int collatz_total(uint64_t n, uint32_t delay_ms, int (*should_stop)(void* arg), void* arg, uint64_t* out);

#ifdef __cplusplus
}
#endif

#endif
