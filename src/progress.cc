#include "progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace streamrec {

std::string HumanCount(double n) {
  char buf[32];
  if (n >= 1e9) {
    std::snprintf(buf, sizeof(buf), "%.2fG", n / 1e9);
  } else if (n >= 1e6) {
    std::snprintf(buf, sizeof(buf), "%.2fM", n / 1e6);
  } else if (n >= 1e4) {
    std::snprintf(buf, sizeof(buf), "%.0fk", n / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%.0f", n);
  }
  return buf;
}

ProgressBar::ProgressBar(std::FILE* out, const Clock* clock, std::string unit)
    : out_(out), clock_(clock), unit_(std::move(unit)) {
  if (out_ != nullptr) tty_ = ::isatty(::fileno(out_)) != 0;
  start_us_ = clock_->NowMicros();
  last_draw_us_ = start_us_;
}

void ProgressBar::Update(uint64_t done, double fraction) {
  if (out_ == nullptr) return;
  int64_t now = clock_->NowMicros();
  const int64_t interval_us = tty_ ? 200000 : 5000000;
  if (now - last_draw_us_ < interval_us) return;
  last_draw_us_ = now;
  Draw(done, fraction, false);
}

void ProgressBar::Finish(uint64_t done) {
  if (out_ == nullptr) return;
  Draw(done, 1.0, true);
}

void ProgressBar::Draw(uint64_t done, double fraction, bool final) {
  double elapsed = std::max(1e-6, (clock_->NowMicros() - start_us_) / 1e6);
  double rate = done / elapsed;
  char eta[32] = "--:--";
  if (fraction > 0.001 && fraction < 1.0) {
    int remaining = static_cast<int>(elapsed * (1.0 - fraction) / fraction);
    std::snprintf(eta, sizeof(eta), "%d:%02d", remaining / 60, remaining % 60);
  } else if (fraction >= 1.0) {
    std::snprintf(eta, sizeof(eta), "0:00");
  }
  std::string bar;
  if (fraction >= 0) {
    int filled = static_cast<int>(std::round(std::clamp(fraction, 0.0, 1.0) * 30));
    bar = "[" + std::string(filled, '#') + std::string(30 - filled, ' ') + "] ";
    char pct[16];
    std::snprintf(pct, sizeof(pct), "%3.0f%% ", 100 * std::clamp(fraction, 0.0, 1.0));
    bar += pct;
  }
  std::fprintf(out_, "%s%s%s %s  %s %s/s  %s %s%s", tty_ ? "\r" : "", bar.c_str(),
               HumanCount(static_cast<double>(done)).c_str(), unit_.c_str(),
               HumanCount(rate).c_str(), unit_.c_str(), final ? "in" : "ETA",
               final ? "" : eta,
               final ? "" : (tty_ ? "   " : "\n"));
  if (final) std::fprintf(out_, "%.1fs\n", elapsed);
  std::fflush(out_);
}

}  // namespace streamrec
