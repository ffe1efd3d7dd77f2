// Event-time parsing and formatting. Event times are int64 milliseconds since the Unix epoch, UTC.
#ifndef STREAMREC_TIME_UTIL_H_
#define STREAMREC_TIME_UTIL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "streamrec/decoder.h"
#include "streamrec/status.h"

namespace streamrec {

constexpr int64_t kMillisPerSecond = 1000;
constexpr int64_t kMillisPerDay = 86400LL * 1000;

// Parses `text` as an event time in `format`. ISO-8601 accepts "YYYY-MM-DD", "YYYY-MM-DD hh:mm",
// "YYYY-MM-DD[T ]hh:mm:ss[.fff]" followed by nothing (then default_utc_offset_minutes applies),
// "Z", or "+hh:mm" / "+hhmm" / "+hh". Errors name the value.
StatusOr<int64_t> ParseEventTime(std::string_view text, TimestampFormat format,
                                 int default_utc_offset_minutes);

// Parses a zone setting: "UTC", "Z", "+07:00", "-0530", "+7". Returns minutes east of UTC.
StatusOr<int> ParseUtcOffset(std::string_view text);

// "2011-12-09T12:50:00Z" (milliseconds shown only when non-zero: "...:00.250Z").
std::string FormatIso8601(int64_t time_ms);

// Wall-clock milliseconds since the Unix epoch (for metrics and latencies that cross processes,
// never for event time).
int64_t WallClockMillis();

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);

}  // namespace streamrec

#endif  // STREAMREC_TIME_UTIL_H_
