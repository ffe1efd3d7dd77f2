// Shared test helpers: Status assertions, temporary directories, shared data paths.
#ifndef STREAMREC_TESTS_TESTUTIL_TEST_UTIL_H_
#define STREAMREC_TESTS_TESTUTIL_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "streamrec/event.h"
#include "streamrec/logger.h"
#include "streamrec/status.h"

#define ASSERT_OK(expr)                                              \
  do {                                                               \
    const ::streamrec::Status _s = (expr);                           \
    ASSERT_TRUE(_s.ok()) << #expr << " -> " << _s.ToString();        \
  } while (0)
#define EXPECT_OK(expr)                                              \
  do {                                                               \
    const ::streamrec::Status _s = (expr);                           \
    EXPECT_TRUE(_s.ok()) << #expr << " -> " << _s.ToString();        \
  } while (0)
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                          \
  auto lhs##_or = (expr);                                                        \
  ASSERT_TRUE(lhs##_or.ok()) << #expr << " -> " << lhs##_or.status().ToString(); \
  auto lhs = std::move(lhs##_or).value()

namespace streamrec::testing {

// A fresh, empty directory under $TMPDIR (or /tmp) removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A Logger that keeps every line (any level), for tests of what reaches the log. Thread-safe.
class CapturingLogger : public Logger {
 public:
  void Log(LogLevel level, std::string_view message) override;
  // Every line so far, one per line, each prefixed with its level ("I ", "W ", "E ", "D ").
  std::string Text() const;
  bool Contains(std::string_view text) const { return Text().find(text) != std::string::npos; }

 private:
  mutable std::mutex mu_;
  std::string text_;
};

// ../shared/data, as seen from the source tree (compiled in by CMake).
std::string SharedDataDir();
// Writes `content` to `path`; fails the test on error.
void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);
// Writes the header and the first `events` lines of ../shared/data/online_retail/events.csv.gz
// to `path` (plain CSV); fails the test on error.
void WriteRetailSlice(const std::string& path, int events);

// The events of a canonical CSV file (header first, plain or gzip), in file order. Lines that do
// not decode are left out and counted in `undecodable` (may be null).
std::vector<PurchaseEvent> ReadCsvEvents(const std::string& path, size_t* undecodable = nullptr);

// One unit of `item` bought by `customer` at `time_ms`, at `price` (nullopt: unpriced).
PurchaseEvent Purchase(const std::string& customer, const std::string& item, int64_t time_ms,
                       std::optional<double> price = 10.0);

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_TEST_UTIL_H_
