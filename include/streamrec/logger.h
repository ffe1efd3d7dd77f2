// Logger: where components report what an operator should read. Injected, never global.
#ifndef STREAMREC_LOGGER_H_
#define STREAMREC_LOGGER_H_

#include <memory>
#include <string_view>

namespace streamrec {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError };

class Logger {
 public:
  virtual ~Logger() = default;
  virtual void Log(LogLevel level, std::string_view message) = 0;
  void Info(std::string_view m) { Log(LogLevel::kInfo, m); }
  void Warn(std::string_view m) { Log(LogLevel::kWarn, m); }
  void Error(std::string_view m) { Log(LogLevel::kError, m); }
  void Debug(std::string_view m) { Log(LogLevel::kDebug, m); }
};

// Timestamped lines on stderr (spdlog), from `min_level` up.
std::shared_ptr<Logger> NewStderrLogger(LogLevel min_level = LogLevel::kInfo);
// Discards everything.
std::shared_ptr<Logger> NewNullLogger();

}  // namespace streamrec

#endif  // STREAMREC_LOGGER_H_
