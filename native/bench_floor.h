// The floor the hand-off is measured against: a plain two-thread Baton round trip, no V8.
#pragma once

#include <cstdint>

namespace spindle {

// Median nanoseconds per round trip over `rounds` batches of `iterations`; same_core pins both
// threads to the caller's CPU.
double baton_round_trip_ns(uint32_t iterations, uint32_t rounds, bool same_core);

}  // namespace spindle
