#include "streamrec/time_util.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "testutil/test_util.h"

namespace streamrec {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;
constexpr int64_t kHour = 60 * kMin;
// 2011-12-09T12:50:00Z, the example in the headers.
constexpr int64_t kExampleMs = 1323435000LL * kSec;

StatusOr<int64_t> Iso(std::string_view text, int default_offset = 0) {
  return ParseEventTime(text, TimestampFormat::kIso8601, default_offset);
}
StatusOr<int64_t> Auto(std::string_view text, int default_offset = 0) {
  return ParseEventTime(text, TimestampFormat::kAuto, default_offset);
}

// Parses `text`, expecting failure; returns the error message.
std::string IsoError(std::string_view text) {
  StatusOr<int64_t> t = Iso(text);
  EXPECT_FALSE(t.ok()) << text << " parsed as " << (t.ok() ? FormatIso8601(*t) : "");
  EXPECT_TRUE(t.status().IsInvalidArgument()) << t.status().ToString();
  return t.status().message();
}

// ---- DaysFromCivil ------------------------------------------------------------------------------

TEST(TimeUtilTest, DaysFromCivilKnownDates) {
  EXPECT_EQ(DaysFromCivil(1970, 1, 1), 0);
  EXPECT_EQ(DaysFromCivil(1969, 12, 31), -1);
  EXPECT_EQ(DaysFromCivil(2000, 3, 1), 11017);
  EXPECT_EQ(DaysFromCivil(2011, 12, 9), 15317);
  EXPECT_EQ(DaysFromCivil(2012, 2, 29), 15399);
  EXPECT_EQ(DaysFromCivil(2012, 3, 1), 15400);
  EXPECT_EQ(DaysFromCivil(1600, 1, 1), -135140);
}

TEST(TimeUtilTest, DaysFromCivilIsContinuousAcrossMonthsAndLeapYears) {
  int64_t expected = DaysFromCivil(1899, 12, 31);
  for (int64_t y = 1900; y <= 2100; ++y) {
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    const unsigned lengths[12] = {31, leap ? 29u : 28u, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (unsigned m = 1; m <= 12; ++m) {
      for (unsigned d = 1; d <= lengths[m - 1]; ++d) {
        ++expected;
        ASSERT_EQ(DaysFromCivil(y, m, d), expected) << y << "-" << m << "-" << d;
      }
    }
  }
}

// ---- ISO-8601 -----------------------------------------------------------------------------------

TEST(TimeUtilTest, IsoFormsWithoutZoneAreUtcByDefault) {
  ASSERT_OK_AND_ASSIGN(a, Iso("2011-12-09 12:50:00"));
  EXPECT_EQ(a, kExampleMs);
  ASSERT_OK_AND_ASSIGN(b, Iso("2011-12-09T12:50:00"));
  EXPECT_EQ(b, kExampleMs);
  ASSERT_OK_AND_ASSIGN(c, Iso("2011-12-09 12:50"));
  EXPECT_EQ(c, kExampleMs);
  ASSERT_OK_AND_ASSIGN(d, Iso("2011-12-09"));
  EXPECT_EQ(d, 1323388800LL * kSec);
  ASSERT_OK_AND_ASSIGN(e, Iso("2010-12-01T08:26:00"));  // online_retail/events.csv.gz
  EXPECT_EQ(e, 1291191960LL * kSec);
}

TEST(TimeUtilTest, IsoSurroundingWhitespaceIsIgnored) {
  ASSERT_OK_AND_ASSIGN(t, Iso("  2011-12-09 12:50:00\r\n"));
  EXPECT_EQ(t, kExampleMs);
}

TEST(TimeUtilTest, IsoFractionalSeconds) {
  ASSERT_OK_AND_ASSIGN(a, Iso("2011-12-09T12:50:00.250Z"));
  EXPECT_EQ(a, kExampleMs + 250);
  ASSERT_OK_AND_ASSIGN(b, Iso("2011-12-09T12:50:00.5"));
  EXPECT_EQ(b, kExampleMs + 500);
  ASSERT_OK_AND_ASSIGN(c, Iso("2011-12-09T12:50:00.123999"));  // beyond ms: truncated
  EXPECT_EQ(c, kExampleMs + 123);
  ASSERT_OK_AND_ASSIGN(d, Iso("2011-12-09T12:50:00,75"));  // ISO allows a decimal comma
  EXPECT_EQ(d, kExampleMs + 750);
}

TEST(TimeUtilTest, IsoExplicitOffsets) {
  ASSERT_OK_AND_ASSIGN(z, Iso("2011-12-09T12:50:00Z"));
  EXPECT_EQ(z, kExampleMs);
  ASSERT_OK_AND_ASSIGN(lower_z, Iso("2011-12-09t12:50:00z"));
  EXPECT_EQ(lower_z, kExampleMs);
  ASSERT_OK_AND_ASSIGN(colon, Iso("2011-12-09T19:50:00+07:00"));
  EXPECT_EQ(colon, kExampleMs);
  ASSERT_OK_AND_ASSIGN(compact, Iso("2011-12-09T19:50:00+0700"));
  EXPECT_EQ(compact, kExampleMs);
  ASSERT_OK_AND_ASSIGN(hours, Iso("2011-12-09T19:50:00+07"));
  EXPECT_EQ(hours, kExampleMs);
  ASSERT_OK_AND_ASSIGN(negative, Iso("2011-12-09T07:20:00-05:30"));
  EXPECT_EQ(negative, kExampleMs);
  ASSERT_OK_AND_ASSIGN(with_fraction, Iso("2011-12-09T19:50:00.250+07:00"));
  EXPECT_EQ(with_fraction, kExampleMs + 250);
  ASSERT_OK_AND_ASSIGN(minutes_only, Iso("2011-12-09 19:50+07:00"));
  EXPECT_EQ(minutes_only, kExampleMs);
}

TEST(TimeUtilTest, IsoDefaultOffsetAppliesOnlyWithoutZone) {
  // A Jakarta (UTC+07:00) billing feed writes local times without a zone.
  ASSERT_OK_AND_ASSIGN(local, Iso("2011-12-09 19:50:00", 420));
  EXPECT_EQ(local, kExampleMs);
  ASSERT_OK_AND_ASSIGN(date_only, Iso("2011-12-10", 420));
  EXPECT_EQ(date_only, 1323388800LL * kSec + 24 * kHour - 7 * kHour);
  ASSERT_OK_AND_ASSIGN(zulu, Iso("2011-12-09T12:50:00Z", 420));
  EXPECT_EQ(zulu, kExampleMs);
  ASSERT_OK_AND_ASSIGN(explicit_offset, Iso("2011-12-09T07:20:00-05:30", 420));
  EXPECT_EQ(explicit_offset, kExampleMs);
  ASSERT_OK_AND_ASSIGN(west, Iso("2011-12-09 07:50:00", -300));
  EXPECT_EQ(west, kExampleMs);
}

TEST(TimeUtilTest, IsoLeapDays) {
  ASSERT_OK_AND_ASSIGN(leap, Iso("2012-02-29"));
  EXPECT_EQ(leap, 1330473600LL * kSec);
  ASSERT_OK_AND_ASSIGN(y2000, Iso("2000-02-29 23:59:59"));
  EXPECT_EQ(y2000, (DaysFromCivil(2000, 3, 1) * 86400 - 1) * kSec);
  EXPECT_THAT(IsoError("2011-02-29"), HasSubstr("day 29 out of range for 2011-02"));
  EXPECT_THAT(IsoError("1900-02-29"), HasSubstr("day 29 out of range"));  // not a leap year
  EXPECT_THAT(IsoError("2012-02-30"), HasSubstr("day 30 out of range"));
  EXPECT_THAT(IsoError("2011-04-31 10:00"), HasSubstr("day 31 out of range for 2011-04"));
  EXPECT_THAT(IsoError("2011-04-00"), HasSubstr("day 0 out of range"));
}

TEST(TimeUtilTest, IsoLeapSecondIsAccepted) {
  ASSERT_OK_AND_ASSIGN(t, Iso("2016-12-31T23:59:60Z"));
  ASSERT_OK_AND_ASSIGN(next, Iso("2017-01-01T00:00:00Z"));
  EXPECT_EQ(t, next);
}

TEST(TimeUtilTest, IsoRangeErrorsNameTheValue) {
  EXPECT_EQ(IsoError("2011-13-01 10:00"),
            "bad event time '2011-13-01 10:00': month 13 out of range");
  EXPECT_THAT(IsoError("2011-00-01"), HasSubstr("month 0 out of range"));
  EXPECT_EQ(IsoError("2011-12-09 24:00:00"),
            "bad event time '2011-12-09 24:00:00': hour 24 out of range");
  EXPECT_THAT(IsoError("2011-12-09 10:60"), HasSubstr("minute 60 out of range"));
  EXPECT_THAT(IsoError("2011-12-09 10:00:61"), HasSubstr("second 61 out of range"));
  EXPECT_THAT(IsoError("2011-12-09 10:00:61"), HasSubstr("'2011-12-09 10:00:61'"));
}

TEST(TimeUtilTest, IsoSyntaxErrorsNameTheValue) {
  EXPECT_THAT(IsoError(""), HasSubstr("bad event time '': empty"));
  EXPECT_THAT(IsoError("   "), HasSubstr("empty"));
  EXPECT_THAT(IsoError("2011-1-09"), HasSubstr("'2011-1-09': expected YYYY-MM-DD"));
  EXPECT_THAT(IsoError("11-12-09"), HasSubstr("expected YYYY-MM-DD"));
  EXPECT_THAT(IsoError("2011/12/09"), HasSubstr("expected YYYY-MM-DD"));
  EXPECT_THAT(IsoError("1323435000"), HasSubstr("expected YYYY-MM-DD"));
  EXPECT_THAT(IsoError("2011-12-09T"), HasSubstr("expected hh:mm"));
  EXPECT_THAT(IsoError("2011-12-09 10"), HasSubstr("expected hh:mm"));
  EXPECT_THAT(IsoError("2011-12-09 1:00"), HasSubstr("expected hh:mm"));
  EXPECT_THAT(IsoError("2011-12-09_10:00"), HasSubstr("expected 'T' or ' '"));
  EXPECT_THAT(IsoError("2011-12-09 10:00:0"), HasSubstr("expected two second digits"));
  EXPECT_THAT(IsoError("2011-12-09 10:00:00."), HasSubstr("digits after the decimal point"));
  EXPECT_THAT(IsoError("2011-12-09 10:00:00 UTC"), HasSubstr("unexpected ' UTC' after the time"));
  EXPECT_THAT(IsoError("2011-12-09 10:00:00Zjunk"), HasSubstr("unexpected 'Zjunk'"));
  EXPECT_THAT(IsoError("2011-12-09T10:00:00+25:00"), HasSubstr("bad UTC offset"));
  EXPECT_THAT(IsoError("2011-12-09T10:00:00+07:60"), HasSubstr("minute 60 out of range"));
  EXPECT_THAT(IsoError("2011-12-09T10:00:00+07:0"), HasSubstr("two minute digits"));
  EXPECT_THAT(IsoError("2011-12-09T10:00:00+"), HasSubstr("bad UTC offset"));
  EXPECT_THAT(IsoError("2011-12-09T10:00:00+07:00:00"), HasSubstr("bad UTC offset"));
}

// ---- Epoch numbers and kAuto --------------------------------------------------------------------

TEST(TimeUtilTest, EpochSeconds) {
  const auto kS = TimestampFormat::kEpochSeconds;
  ASSERT_OK_AND_ASSIGN(whole, ParseEventTime("1323435000", kS, 0));
  EXPECT_EQ(whole, kExampleMs);
  ASSERT_OK_AND_ASSIGN(fraction, ParseEventTime("1323435000.25", kS, 0));
  EXPECT_EQ(fraction, kExampleMs + 250);
  ASSERT_OK_AND_ASSIGN(millis_rounded, ParseEventTime("1323435000.1234", kS, 0));
  EXPECT_EQ(millis_rounded, kExampleMs + 123);
  ASSERT_OK_AND_ASSIGN(exponent, ParseEventTime("1.323435e9", kS, 0));
  EXPECT_EQ(exponent, kExampleMs);
  ASSERT_OK_AND_ASSIGN(plus, ParseEventTime("+1323435000", kS, 0));
  EXPECT_EQ(plus, kExampleMs);
  ASSERT_OK_AND_ASSIGN(negative, ParseEventTime("-1", kS, 0));
  EXPECT_EQ(negative, -kSec);
  // Even a large value is seconds when the format says so (range checks are the caller's).
  ASSERT_OK_AND_ASSIGN(large, ParseEventTime("1323435000000", kS, 0));
  EXPECT_EQ(large, kExampleMs * 1000);
  // The default offset is for local ISO times only; epoch numbers are UTC by definition.
  ASSERT_OK_AND_ASSIGN(offset_ignored, ParseEventTime("1323435000", kS, 420));
  EXPECT_EQ(offset_ignored, kExampleMs);
}

TEST(TimeUtilTest, EpochMillis) {
  const auto kMs = TimestampFormat::kEpochMillis;
  ASSERT_OK_AND_ASSIGN(whole, ParseEventTime("1323435000250", kMs, 0));
  EXPECT_EQ(whole, kExampleMs + 250);
  ASSERT_OK_AND_ASSIGN(small, ParseEventTime("1323435000", kMs, 0));  // format wins
  EXPECT_EQ(small, 1323435000);
  ASSERT_OK_AND_ASSIGN(fraction, ParseEventTime("1323435000250.6", kMs, 0));
  EXPECT_EQ(fraction, kExampleMs + 251);
  ASSERT_OK_AND_ASSIGN(max, ParseEventTime("9223372036854775807", kMs, 0));  // exact
  EXPECT_EQ(max, INT64_MAX);
}

TEST(TimeUtilTest, EpochErrorsNameTheValue) {
  const auto kS = TimestampFormat::kEpochSeconds;
  const auto kMs = TimestampFormat::kEpochMillis;
  auto error = [](std::string_view text, TimestampFormat format) {
    StatusOr<int64_t> t = ParseEventTime(text, format, 0);
    EXPECT_FALSE(t.ok()) << text;
    return t.status().message();
  };
  EXPECT_EQ(error("abc", kS), "bad event time 'abc': not a number");
  EXPECT_THAT(error("2011-12-09", kS), HasSubstr("'2011-12-09': not a number"));
  EXPECT_THAT(error("12abc", kMs), HasSubstr("'12abc': not a number"));
  EXPECT_THAT(error("+", kS), HasSubstr("not a number"));
  EXPECT_THAT(error("+-5", kS), HasSubstr("not a number"));
  EXPECT_THAT(error("nan", kS), HasSubstr("'nan': not a finite number"));
  EXPECT_THAT(error("inf", kMs), HasSubstr("not a finite number"));
  EXPECT_THAT(error("1e300", kS), HasSubstr("'1e300': epoch value out of range"));
  EXPECT_THAT(error("1e999", kS), HasSubstr("out of range"));
  EXPECT_THAT(error("9223372036854775807", kS), HasSubstr("epoch seconds out of range"));
  EXPECT_THAT(error("", kMs), HasSubstr("empty"));
}

TEST(TimeUtilTest, AutoDetectsIsoSecondsAndMillis) {
  ASSERT_OK_AND_ASSIGN(iso, Auto("2011-12-09T12:50:00Z"));
  EXPECT_EQ(iso, kExampleMs);
  ASSERT_OK_AND_ASSIGN(iso_local, Auto("2011-12-09 19:50:00", 420));
  EXPECT_EQ(iso_local, kExampleMs);
  ASSERT_OK_AND_ASSIGN(seconds, Auto("1323435000"));
  EXPECT_EQ(seconds, kExampleMs);
  ASSERT_OK_AND_ASSIGN(fractional_seconds, Auto("1323435000.5"));
  EXPECT_EQ(fractional_seconds, kExampleMs + 500);
  ASSERT_OK_AND_ASSIGN(millis, Auto("1323435000250"));
  EXPECT_EQ(millis, kExampleMs + 250);
  // The threshold: below 1e11 is seconds, from 1e11 on is milliseconds.
  ASSERT_OK_AND_ASSIGN(below, Auto("99999999999"));
  EXPECT_EQ(below, 99999999999LL * kSec);
  ASSERT_OK_AND_ASSIGN(at, Auto("100000000000"));
  EXPECT_EQ(at, 100000000000LL);
  ASSERT_OK_AND_ASSIGN(at_double, Auto("1e11"));
  EXPECT_EQ(at_double, 100000000000LL);
}

TEST(TimeUtilTest, AutoRejectsNeitherIsoNorNumber) {
  StatusOr<int64_t> t = Auto("yesterday");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("'yesterday'"));
  EXPECT_THAT(t.status().message(), HasSubstr("neither ISO-8601"));
  // '-' in position 4 selects ISO, so ISO errors are reported.
  StatusOr<int64_t> bad_iso = Auto("2011-13-01 10:00");
  ASSERT_FALSE(bad_iso.ok());
  EXPECT_EQ(bad_iso.status().message(), "bad event time '2011-13-01 10:00': month 13 out of range");
  // Day-first dates are not guessed at.
  StatusOr<int64_t> day_first = Auto("09/12/2011 12:50");
  ASSERT_FALSE(day_first.ok());
  EXPECT_THAT(day_first.status().message(), HasSubstr("'09/12/2011 12:50'"));
}

// ---- ParseUtcOffset -----------------------------------------------------------------------------

TEST(TimeUtilTest, ParseUtcOffsetAcceptedForms) {
  struct Case {
    const char* text;
    int minutes;
  };
  const Case cases[] = {
      {"UTC", 0},     {"utc", 0},         {"Z", 0},        {"", 0},
      {"  ", 0},      {"+07:00", 420},    {"-0530", -330}, {"+7", 420},
      {"07:00", 420}, {"-05:30", -330},   {"+0545", 345},  {"+14:00", 840},
      {"-12", -720},  {"UTC+07:00", 420}, {"GMT-5", -300}, {"+00:00", 0},
      {"0", 0},       {" +09:30 ", 570},
  };
  for (const Case& c : cases) {
    StatusOr<int> offset = ParseUtcOffset(c.text);
    ASSERT_TRUE(offset.ok()) << "'" << c.text << "': " << offset.status().ToString();
    EXPECT_EQ(*offset, c.minutes) << "'" << c.text << "'";
  }
}

TEST(TimeUtilTest, ParseUtcOffsetRejectsZoneNamesAndBadOffsets) {
  StatusOr<int> iana = ParseUtcOffset("Asia/Jakarta");
  ASSERT_FALSE(iana.ok());
  EXPECT_TRUE(iana.status().IsInvalidArgument());
  EXPECT_THAT(iana.status().message(), HasSubstr("'Asia/Jakarta'"));
  EXPECT_THAT(iana.status().message(), HasSubstr("only fixed offsets"));

  for (const char* bad :
       {"WIB", "+25:00", "+07:60", "+7:5", "+123", "+", "--07", "+07:00:00", "UTC+", "1.5"}) {
    StatusOr<int> offset = ParseUtcOffset(bad);
    ASSERT_FALSE(offset.ok()) << bad << " -> " << *offset;
    EXPECT_THAT(offset.status().message(), HasSubstr(std::string("'") + bad + "'"));
  }
}

// ---- FormatIso8601 ------------------------------------------------------------------------------

TEST(TimeUtilTest, FormatIso8601) {
  EXPECT_EQ(FormatIso8601(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatIso8601(kExampleMs), "2011-12-09T12:50:00Z");
  EXPECT_EQ(FormatIso8601(kExampleMs + 250), "2011-12-09T12:50:00.250Z");
  EXPECT_EQ(FormatIso8601(kExampleMs + 7), "2011-12-09T12:50:00.007Z");
  EXPECT_EQ(FormatIso8601(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatIso8601(1330473600LL * kSec), "2012-02-29T00:00:00Z");
  EXPECT_EQ(FormatIso8601(631152000000LL), "1990-01-01T00:00:00Z");
  EXPECT_EQ(FormatIso8601(4102444800000LL), "2100-01-01T00:00:00Z");
  EXPECT_EQ(FormatIso8601(DaysFromCivil(999, 5, 6) * 86400 * kSec), "0999-05-06T00:00:00Z");
  // Absurd values still format (error messages show them).
  EXPECT_FALSE(FormatIso8601(INT64_MAX).empty());
  EXPECT_EQ(FormatIso8601(INT64_MIN).front(), '-');
}

TEST(TimeUtilTest, FormatThenParseRoundTrips) {
  // Every ~7 hours and a few ms from 1960 to 2110: format, parse back, compare.
  const int64_t begin = DaysFromCivil(1960, 1, 1) * kMillisPerDay;
  const int64_t end = DaysFromCivil(2110, 1, 1) * kMillisPerDay;
  for (int64_t t = begin; t < end; t += 7 * kHour + 13 * kMin + 17 * kSec + 3) {
    std::string text = FormatIso8601(t);
    StatusOr<int64_t> back = ParseEventTime(text, TimestampFormat::kAuto, 420);
    ASSERT_TRUE(back.ok()) << text << ": " << back.status().ToString();
    ASSERT_EQ(*back, t) << text;
  }
}

}  // namespace
}  // namespace streamrec
