#include "streamrec/logger.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace streamrec {

namespace {

class SpdlogLogger : public Logger {
 public:
  explicit SpdlogLogger(LogLevel min_level)
      : logger_(std::make_shared<spdlog::logger>(
            "streamrec", std::make_shared<spdlog::sinks::stderr_color_sink_mt>())) {
    logger_->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    logger_->set_level(ToSpd(min_level));
  }
  void Log(LogLevel level, std::string_view message) override {
    logger_->log(ToSpd(level), "{}", message);
  }

 private:
  static spdlog::level::level_enum ToSpd(LogLevel level) {
    switch (level) {
      case LogLevel::kDebug: return spdlog::level::debug;
      case LogLevel::kInfo: return spdlog::level::info;
      case LogLevel::kWarn: return spdlog::level::warn;
      case LogLevel::kError: return spdlog::level::err;
    }
    return spdlog::level::info;
  }
  std::shared_ptr<spdlog::logger> logger_;
};

class NullLogger : public Logger {
 public:
  void Log(LogLevel, std::string_view) override {}
};

}  // namespace

std::shared_ptr<Logger> NewStderrLogger(LogLevel min_level) {
  return std::make_shared<SpdlogLogger>(min_level);
}

std::shared_ptr<Logger> NewNullLogger() { return std::make_shared<NullLogger>(); }

}  // namespace streamrec
