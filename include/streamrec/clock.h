// Clock: the only way streamrec reads wall time (progress, rates, latency metrics). Features and
// models run on event time and never read a clock. Tests inject a fake.
#ifndef STREAMREC_CLOCK_H_
#define STREAMREC_CLOCK_H_

#include <cstdint>

namespace streamrec {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic microseconds (arbitrary origin).
  virtual int64_t NowMicros() const = 0;
};

// The process-wide monotonic clock (steady_clock). Never null; not owned by the caller.
const Clock* SystemClock();

}  // namespace streamrec

#endif  // STREAMREC_CLOCK_H_
