// A progress line for long work on a terminal: "[#####     ] 52% 1.2M events 180k ev/s ETA 0:07".
// On a terminal it redraws in place; otherwise it prints one line every `interval` seconds.
#ifndef STREAMREC_SRC_PROGRESS_H_
#define STREAMREC_SRC_PROGRESS_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "streamrec/clock.h"

namespace streamrec {

class ProgressBar {
 public:
  // `out` may be null (silent). `unit` names what is counted ("events").
  ProgressBar(std::FILE* out, const Clock* clock, std::string unit);
  // Reports `done` units and the fraction of the work done (0..1; < 0 when unknown).
  void Update(uint64_t done, double fraction);
  // Draws the final state and ends the line.
  void Finish(uint64_t done);

 private:
  void Draw(uint64_t done, double fraction, bool final);
  std::FILE* out_;
  const Clock* clock_;
  std::string unit_;
  bool tty_ = false;
  int64_t start_us_ = 0;
  int64_t last_draw_us_ = 0;
};

// "1.2M", "834k", "12".
std::string HumanCount(double n);

}  // namespace streamrec

#endif  // STREAMREC_SRC_PROGRESS_H_
