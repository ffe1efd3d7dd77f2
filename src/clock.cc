#include "streamrec/clock.h"

#include <chrono>

namespace streamrec {

namespace {
class SteadyClock : public Clock {
 public:
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};
}  // namespace

const Clock* SystemClock() {
  static const SteadyClock clock;
  return &clock;
}

}  // namespace streamrec
