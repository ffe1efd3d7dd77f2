// Hand-written event-time parsing: no std::regex, sscanf, locale, time-zone database or
// mktime/timegm, so the result never depends on TZ or LC_* and the hot path allocates nothing
// unless it fails.
#include "streamrec/time_util.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

namespace streamrec {
namespace {

// Offsets beyond +-18:00 do not exist anywhere (the widest in use are -12:00 and +14:00).
constexpr int kMaxOffsetMinutes = 18 * 60;

// Numeric epoch values at or above this (in seconds) are taken as milliseconds by kAuto:
// 1e11 s is the year 5138, 1e11 ms is 1973-03-03.
constexpr double kAutoMillisThreshold = 1e11;

// Largest magnitude of a millisecond count we convert from a double without overflowing int64.
constexpr double kMaxAbsMillis = 9.0e18;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLowerAscii(a[i]) != ToLowerAscii(b[i])) return false;
  }
  return true;
}

bool IsLeapYear(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t year, unsigned month) {
  static constexpr unsigned kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && IsLeapYear(year)) return 29;
  return kDays[month - 1];
}

// Reads exactly `n` digits at s[*pos]; advances *pos. False when fewer than n digits follow.
bool ReadFixedDigits(std::string_view s, size_t* pos, int n, int* out) {
  if (*pos + static_cast<size_t>(n) > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[*pos + i];
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  *pos += static_cast<size_t>(n);
  *out = v;
  return true;
}

std::string TimeError(std::string_view text, std::string_view why) {
  std::string msg = "bad event time '";
  msg.append(text);
  msg.append("': ");
  msg.append(why);
  return msg;
}

std::string OutOfRange(std::string_view what, int value) {
  return std::string(what) + " " + std::to_string(value) + " out of range";
}

// Parses the body of a fixed offset after its sign: "hh", "h", "hh:mm", "hhmm", "h:mm".
// On success stores minutes (unsigned) in *minutes; on failure stores the reason in *why.
bool ParseOffsetBody(std::string_view body, int* minutes, std::string* why) {
  size_t pos = 0;
  int hours = 0;
  int mins = 0;
  size_t hour_digits = 0;
  while (hour_digits < body.size() && IsDigit(body[hour_digits])) ++hour_digits;
  if (hour_digits == 4 && body.size() == 4) {  // "hhmm"
    ReadFixedDigits(body, &pos, 2, &hours);
    ReadFixedDigits(body, &pos, 2, &mins);
  } else if (hour_digits == 1 || hour_digits == 2) {
    ReadFixedDigits(body, &pos, static_cast<int>(hour_digits), &hours);
    if (pos < body.size()) {
      if (body[pos] != ':') {
        *why = "expected hh, hh:mm or hhmm after the sign";
        return false;
      }
      ++pos;
      if (!ReadFixedDigits(body, &pos, 2, &mins) || pos != body.size()) {
        *why = "expected two minute digits after ':'";
        return false;
      }
    }
  } else {
    *why = "expected hh, hh:mm or hhmm after the sign";
    return false;
  }
  if (mins >= 60) {
    *why = "offset " + OutOfRange("minute", mins);
    return false;
  }
  int total = hours * 60 + mins;
  if (total > kMaxOffsetMinutes) {
    *why = "offset beyond 18:00";
    return false;
  }
  *minutes = total;
  return true;
}

// Converts a finite count of `unit_ms` milliseconds to int64 ms, rounding to the nearest ms.
bool ScaleToMillis(double value, double unit_ms, int64_t* out) {
  if (!std::isfinite(value)) return false;
  double ms = value * unit_ms;
  if (!(std::fabs(ms) < kMaxAbsMillis)) return false;
  *out = std::llround(ms);
  return true;
}

// Parses `text` (already trimmed) as an epoch number. `format` is kEpochSeconds, kEpochMillis or
// kAuto (seconds below 1e11, else milliseconds). Integers are converted exactly.
StatusOr<int64_t> ParseEpochNumber(std::string_view original, std::string_view text,
                                   TimestampFormat format) {
  std::string_view digits = text;
  if (!digits.empty() && digits.front() == '+') {
    digits.remove_prefix(1);  // std::from_chars takes '-' but not '+'
    if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) digits = {};
  }
  if (digits.empty()) return Status::InvalidArgument(TimeError(original, "not a number"));
  // Exact path for integers.
  int64_t integer = 0;
  auto [iend, iec] = std::from_chars(digits.data(), digits.data() + digits.size(), integer);
  if (iec == std::errc() && iend == digits.data() + digits.size()) {
    bool millis = format == TimestampFormat::kEpochMillis ||
                  (format == TimestampFormat::kAuto &&
                   std::fabs(static_cast<double>(integer)) >= kAutoMillisThreshold);
    if (millis) return integer;
    constexpr int64_t kLimit = std::numeric_limits<int64_t>::max() / kMillisPerSecond;
    if (integer > kLimit || integer < -kLimit) {
      return Status::InvalidArgument(TimeError(original, "epoch seconds out of range"));
    }
    return integer * kMillisPerSecond;
  }
  double value = 0;
  auto [dend, dec] = std::from_chars(digits.data(), digits.data() + digits.size(), value,
                                     std::chars_format::general);
  if (dec == std::errc::result_out_of_range) {
    return Status::InvalidArgument(TimeError(original, "epoch value out of range"));
  }
  if (dec != std::errc() || dend != digits.data() + digits.size()) {
    if (format == TimestampFormat::kAuto) {
      return Status::InvalidArgument(
          TimeError(original, "neither ISO-8601 (YYYY-MM-DD...) nor an epoch number"));
    }
    return Status::InvalidArgument(TimeError(original, "not a number"));
  }
  if (!std::isfinite(value)) {
    return Status::InvalidArgument(TimeError(original, "not a finite number"));
  }
  bool millis = format == TimestampFormat::kEpochMillis ||
                (format == TimestampFormat::kAuto && std::fabs(value) >= kAutoMillisThreshold);
  int64_t ms = 0;
  if (!ScaleToMillis(value, millis ? 1.0 : 1000.0, &ms)) {
    return Status::InvalidArgument(TimeError(original, "epoch value out of range"));
  }
  return ms;
}

StatusOr<int64_t> ParseIso8601(std::string_view original, std::string_view s,
                               int default_utc_offset_minutes) {
  size_t pos = 0;
  int year = 0, month = 0, day = 0;
  if (!ReadFixedDigits(s, &pos, 4, &year) || pos >= s.size() || s[pos++] != '-' ||
      !ReadFixedDigits(s, &pos, 2, &month) || pos >= s.size() || s[pos++] != '-' ||
      !ReadFixedDigits(s, &pos, 2, &day)) {
    return Status::InvalidArgument(TimeError(original, "expected YYYY-MM-DD"));
  }
  if (month < 1 || month > 12) {
    return Status::InvalidArgument(TimeError(original, OutOfRange("month", month)));
  }
  if (day < 1 || static_cast<unsigned>(day) > DaysInMonth(year, static_cast<unsigned>(month))) {
    std::string why = OutOfRange("day", day) + " for " + std::string(s.substr(0, 7));
    return Status::InvalidArgument(TimeError(original, why));
  }
  int hour = 0, minute = 0, second = 0, millis = 0;
  int offset_minutes = default_utc_offset_minutes;
  if (pos < s.size()) {
    char sep = s[pos];
    if (sep != 'T' && sep != 't' && sep != ' ') {
      return Status::InvalidArgument(
          TimeError(original, "expected 'T' or ' ' between date and time"));
    }
    ++pos;
    if (!ReadFixedDigits(s, &pos, 2, &hour) || pos >= s.size() || s[pos++] != ':' ||
        !ReadFixedDigits(s, &pos, 2, &minute)) {
      return Status::InvalidArgument(TimeError(original, "expected hh:mm after the date"));
    }
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!ReadFixedDigits(s, &pos, 2, &second)) {
        return Status::InvalidArgument(TimeError(original, "expected two second digits"));
      }
      if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        ++pos;
        size_t first = pos;
        int scale = 100;
        while (pos < s.size() && IsDigit(s[pos])) {
          millis += (s[pos] - '0') * scale;  // digits beyond milliseconds are truncated
          scale /= 10;
          ++pos;
        }
        if (pos == first) {
          return Status::InvalidArgument(
              TimeError(original, "expected digits after the decimal point"));
        }
      }
    }
    if (hour > 23) return Status::InvalidArgument(TimeError(original, OutOfRange("hour", hour)));
    if (minute > 59) {
      return Status::InvalidArgument(TimeError(original, OutOfRange("minute", minute)));
    }
    if (second > 60) {  // 60: a leap second
      return Status::InvalidArgument(TimeError(original, OutOfRange("second", second)));
    }
    if (pos < s.size()) {
      char z = s[pos];
      if ((z == 'Z' || z == 'z') && pos + 1 == s.size()) {
        offset_minutes = 0;
      } else if (z == '+' || z == '-') {
        std::string why;
        int minutes = 0;
        if (!ParseOffsetBody(s.substr(pos + 1), &minutes, &why)) {
          return Status::InvalidArgument(TimeError(original, "bad UTC offset: " + why));
        }
        offset_minutes = z == '-' ? -minutes : minutes;
      } else {
        std::string why = "unexpected '";
        why.append(s.substr(pos));
        why.append("' after the time (expected nothing, Z or +hh:mm)");
        return Status::InvalidArgument(TimeError(original, why));
      }
    }
  }
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t seconds =
      days * 86400 + hour * 3600 + minute * 60 + second - static_cast<int64_t>(offset_minutes) * 60;
  return seconds * kMillisPerSecond + millis;
}

}  // namespace

int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day) {
  // Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms", days_from_civil.
  const int64_t y = year - (month <= 2 ? 1 : 0);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;                                       // [0, 399]
  const int64_t mp = month > 2 ? month - 3 : month + 9;                    // [0, 11]
  const int64_t doy = (153 * mp + 2) / 5 + static_cast<int64_t>(day) - 1;  // [0, 365]
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;               // [0, 146096]
  return era * 146097 + doe - 719468;
}

StatusOr<int64_t> ParseEventTime(std::string_view text, TimestampFormat format,
                                 int default_utc_offset_minutes) {
  std::string_view s = Trim(text);
  if (s.empty()) return Status::InvalidArgument(TimeError(text, "empty"));
  switch (format) {
    case TimestampFormat::kIso8601:
      return ParseIso8601(text, s, default_utc_offset_minutes);
    case TimestampFormat::kEpochSeconds:
    case TimestampFormat::kEpochMillis:
      return ParseEpochNumber(text, s, format);
    case TimestampFormat::kAuto:
      if (s.size() > 4 && s[4] == '-') return ParseIso8601(text, s, default_utc_offset_minutes);
      return ParseEpochNumber(text, s, format);
  }
  return Status::InvalidArgument(TimeError(text, "unknown timestamp format"));
}

StatusOr<int> ParseUtcOffset(std::string_view text) {
  std::string_view s = Trim(text);
  auto error = [&](std::string_view why) {
    std::string msg = "bad UTC offset '";
    msg.append(text);
    msg.append("': ");
    msg.append(why);
    return Status::InvalidArgument(msg);
  };
  // "UTC+07:00" and "GMT-5" are accepted as their offsets.
  if (s.size() >= 3 &&
      (EqualsIgnoreCase(s.substr(0, 3), "UTC") || EqualsIgnoreCase(s.substr(0, 3), "GMT")) &&
      (s.size() == 3 || s[3] == '+' || s[3] == '-')) {
    s.remove_prefix(3);
  }
  if (s.empty() || EqualsIgnoreCase(s, "Z")) return 0;
  int sign = 1;
  if (s.front() == '+' || s.front() == '-') {
    sign = s.front() == '-' ? -1 : 1;
    s.remove_prefix(1);
  }
  for (char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '/') {
      return error(
          "only fixed offsets such as 'UTC', '+07:00', '-0530' or '+7' are supported, "
          "not time-zone names");
    }
  }
  int minutes = 0;
  std::string why;
  if (!ParseOffsetBody(s, &minutes, &why)) return error(why);
  return sign * minutes;
}

int64_t WallClockMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatIso8601(int64_t time_ms) {
  // Floor division so that times before 1970 format correctly.
  int64_t days = time_ms / kMillisPerDay;
  int64_t ms_of_day = time_ms % kMillisPerDay;
  if (ms_of_day < 0) {
    ms_of_day += kMillisPerDay;
    --days;
  }
  // Howard Hinnant's civil_from_days.
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;                                       // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                     // [0, 11]
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;                           // [1, 31]
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;                            // [1, 12]
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);

  std::string out;
  out.reserve(24);
  int64_t abs_year = year;
  if (year < 0) {
    out.push_back('-');
    abs_year = -year;
  }
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), abs_year);
  (void)ec;  // 24 chars always hold an int64
  for (ptrdiff_t n = end - buf; n < 4; ++n) out.push_back('0');
  out.append(buf, end);
  auto two = [&out](int64_t v) {
    out.push_back(static_cast<char>('0' + v / 10));
    out.push_back(static_cast<char>('0' + v % 10));
  };
  out.push_back('-');
  two(month);
  out.push_back('-');
  two(day);
  out.push_back('T');
  const int64_t secs = ms_of_day / 1000;
  two(secs / 3600);
  out.push_back(':');
  two(secs / 60 % 60);
  out.push_back(':');
  two(secs % 60);
  const int64_t ms = ms_of_day % 1000;
  if (ms != 0) {
    out.push_back('.');
    out.push_back(static_cast<char>('0' + ms / 100));
    out.push_back(static_cast<char>('0' + ms / 10 % 10));
    out.push_back(static_cast<char>('0' + ms % 10));
  }
  out.push_back('Z');
  return out;
}

}  // namespace streamrec
