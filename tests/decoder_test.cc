#include "streamrec/decoder.h"
#include "streamrec/pipeline.h"

#include <gmock/gmock.h>
#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "streamrec/time_util.h"
#include "streamrec/v1/events.pb.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

constexpr int64_t kHourMs = 3600 * 1000;
// 2010-12-01T08:26:00Z, the first line of online_retail/events.csv.gz.
constexpr int64_t kRetailFirstMs = 1291191960LL * 1000;
// 2023-05-01T03:15:00Z == 2023-05-01 10:15:00 in Jakarta (UTC+07:00).
constexpr int64_t kTelcoMs = 1682910900LL * 1000;

// The telco billing feed: MSISDN, PACKAGE_CODE, BUY_DATE (Jakarta local time), CHANNEL, PRICE.
DecoderOptions TelcoOptions() {
  DecoderOptions options;
  options.fields.customer_id = "MSISDN";
  options.fields.item_id = "PACKAGE_CODE";
  options.fields.event_time = "BUY_DATE";
  options.fields.channel = "CHANNEL";
  options.fields.amount = "PRICE";
  options.fields.unit_price = "";
  options.default_utc_offset_minutes = 420;
  return options;
}

// A valid event, for ValidateEvent tests to break one field at a time.
PurchaseEvent GoodEvent() {
  PurchaseEvent e;
  e.customer_id = "17850";
  e.item_id = "85123A";
  e.event_time_ms = kRetailFirstMs;
  e.quantity = 6;
  e.unit_price = 2.55;
  return e;
}

std::string ValidateError(PurchaseEvent e, const DecoderOptions& options = DecoderOptions()) {
  Status s = ValidateEvent(options, &e);
  EXPECT_FALSE(s.ok()) << "expected a validation error";
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  return s.message();
}

// ---- ValidateEvent ------------------------------------------------------------------------------

TEST(DecoderValidateTest, AcceptsGoodEventAndNormalises) {
  PurchaseEvent e = GoodEvent();
  e.customer_id = "  17850 ";
  e.item_id = "\t85123A";
  e.event_id = " 536365/1 ";
  e.channel = "  Mobile APP ";
  e.currency = " GBP ";
  ASSERT_OK(ValidateEvent(DecoderOptions(), &e));
  EXPECT_EQ(e.customer_id, "17850");
  EXPECT_EQ(e.item_id, "85123A");
  EXPECT_EQ(e.event_id, "536365/1");
  EXPECT_EQ(e.channel, "mobile app");
  EXPECT_EQ(e.currency, "GBP");
}

TEST(DecoderValidateTest, LeavesAmountAbsentWhenOnlyUnitPriceIsGiven) {
  PurchaseEvent e = GoodEvent();
  e.discount = 0.3;
  ASSERT_OK(ValidateEvent(DecoderOptions(), &e));
  EXPECT_FALSE(e.amount.has_value());
  EXPECT_THAT(e.unit_price, Optional(2.55));
  EXPECT_DOUBLE_EQ(e.PaidAmount(), 6 * 2.55 - 0.3);
}

TEST(DecoderValidateTest, MissingPriceIsValid) {
  PurchaseEvent e = GoodEvent();
  e.unit_price.reset();
  ASSERT_OK(ValidateEvent(DecoderOptions(), &e));
  EXPECT_FALSE(e.priced());
  EXPECT_FALSE(e.unit_price.has_value());
  EXPECT_FALSE(e.amount.has_value());
  EXPECT_EQ(e.PaidAmount(), 0.0);
}

TEST(DecoderValidateTest, MissingIdsNameTheSourceField) {
  PurchaseEvent no_customer = GoodEvent();
  no_customer.customer_id = "   ";
  EXPECT_EQ(ValidateError(no_customer, TelcoOptions()), "missing customer_id (field 'MSISDN')");
  EXPECT_EQ(ValidateError(no_customer), "missing customer_id (field 'customer_id')");
  PurchaseEvent no_item = GoodEvent();
  no_item.item_id.clear();
  EXPECT_EQ(ValidateError(no_item, TelcoOptions()), "missing item_id (field 'PACKAGE_CODE')");
}

// Ids are store and topic keys (the changelog reserves keys that start with NUL): a control
// character refuses the event, naming the byte, never the id.
TEST(DecoderValidateTest, ControlCharactersInIdsAreRefusedWithoutShowingTheId) {
  PurchaseEvent nul = GoodEvent();
  nul.customer_id = std::string("\0streamrec.position", 19);
  EXPECT_EQ(ValidateError(nul, TelcoOptions()),
            "bad customer_id (field 'MSISDN'): control character 0x00 at byte 0");
  PurchaseEvent tab = GoodEvent();
  tab.item_id = "A\tB";
  EXPECT_EQ(ValidateError(tab), "bad item_id (field 'item_id'): control character 0x09 at byte 1");
  PurchaseEvent del = GoodEvent();
  del.customer_id = "c\x7f";
  EXPECT_EQ(InvalidReason(Status::InvalidArgument(ValidateError(del))), "bad customer_id");
  PurchaseEvent utf8 = GoodEvent();
  utf8.customer_id = "K\xc3\xb6ln-1";  // bytes >= 0x80 are fine
  EXPECT_OK(ValidateEvent(DecoderOptions(), &utf8));
}

TEST(DecoderValidateTest, EventTimeBoundsAreInclusive) {
  DecoderOptions options;
  PurchaseEvent at_min = GoodEvent();
  at_min.event_time_ms = options.min_event_time_ms;
  EXPECT_OK(ValidateEvent(options, &at_min));
  PurchaseEvent at_max = GoodEvent();
  at_max.event_time_ms = options.max_event_time_ms;
  EXPECT_OK(ValidateEvent(options, &at_max));
}

TEST(DecoderValidateTest, AbsurdEventTimeNamesValueAndBounds) {
  PurchaseEvent epoch = GoodEvent();
  epoch.event_time_ms = 0;
  std::string msg = ValidateError(epoch);
  EXPECT_THAT(msg, HasSubstr("event_time 1970-01-01T00:00:00Z out of range"));
  EXPECT_THAT(msg, HasSubstr("[1990-01-01T00:00:00Z, 2100-01-01T00:00:00Z]"));
  EXPECT_THAT(msg, HasSubstr("(field 'timestamp')"));

  PurchaseEvent future = GoodEvent();
  future.event_time_ms = DecoderOptions().max_event_time_ms + 1;
  EXPECT_THAT(ValidateError(future), HasSubstr("2100-01-01T00:00:00.001Z out of range"));

  DecoderOptions narrow;
  narrow.min_event_time_ms = kRetailFirstMs + 1;
  EXPECT_THAT(ValidateError(GoodEvent(), narrow),
              HasSubstr("2010-12-01T08:26:00Z out of range [2010-12-01T08:26:00.001Z"));
}

TEST(DecoderValidateTest, QuantityMustBeFiniteAndNonZero) {
  PurchaseEvent zero = GoodEvent();
  zero.quantity = 0;
  EXPECT_EQ(ValidateError(zero), "bad quantity 0 (field 'quantity'): must not be 0");
  PurchaseEvent nan = GoodEvent();
  nan.quantity = std::nan("");
  EXPECT_THAT(ValidateError(nan), HasSubstr("bad quantity nan (field 'quantity'): not finite"));
  PurchaseEvent inf = GoodEvent();
  inf.quantity = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateError(inf), HasSubstr("bad quantity inf"));
}

TEST(DecoderValidateTest, NegativeQuantityNeedsTheOption) {
  PurchaseEvent ret = GoodEvent();
  ret.quantity = -1;
  ret.amount = -2.55;
  std::string msg = ValidateError(ret);
  EXPECT_THAT(msg, HasSubstr("bad quantity -1 (field 'quantity')"));
  EXPECT_THAT(msg, HasSubstr("allow_negative_quantity"));

  DecoderOptions returns;
  returns.allow_negative_quantity = true;
  EXPECT_OK(ValidateEvent(returns, &ret));
  EXPECT_EQ(ret.quantity, -1);
  EXPECT_THAT(ret.amount, Optional(-2.55));
}

TEST(DecoderValidateTest, NegativeAmountNeedsTheOption) {
  PurchaseEvent refund = GoodEvent();
  refund.amount = -5;
  EXPECT_THAT(ValidateError(refund), HasSubstr("bad amount -5 (field 'amount')"));
  DecoderOptions returns;
  returns.allow_negative_quantity = true;
  EXPECT_OK(ValidateEvent(returns, &refund));
  PurchaseEvent nan = GoodEvent();
  nan.amount = std::nan("");
  EXPECT_THAT(ValidateError(nan, returns), HasSubstr("bad amount nan"));
}

TEST(DecoderValidateTest, PricesAndDiscountMustBeFiniteAndNotNegative) {
  PurchaseEvent negative_price = GoodEvent();
  negative_price.unit_price = -2.55;
  EXPECT_EQ(ValidateError(negative_price), "bad unit_price -2.55 (field 'unit_price'): negative");
  DecoderOptions returns;
  returns.allow_negative_quantity = true;  // does not allow negative prices
  EXPECT_THAT(ValidateError(negative_price, returns), HasSubstr("bad unit_price -2.55"));

  PurchaseEvent inf_price = GoodEvent();
  inf_price.unit_price = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateError(inf_price), HasSubstr("bad unit_price inf"));

  PurchaseEvent negative_discount = GoodEvent();
  negative_discount.discount = -1;
  EXPECT_THAT(ValidateError(negative_discount), HasSubstr("bad discount -1 (field 'discount')"));
  PurchaseEvent nan_discount = GoodEvent();
  nan_discount.discount = std::nan("");
  EXPECT_THAT(ValidateError(nan_discount), HasSubstr("bad discount nan"));

  PurchaseEvent free = GoodEvent();  // 40 lines of the retail data are priced 0
  free.unit_price = 0.0;
  free.amount = 0.0;
  EXPECT_OK(ValidateEvent(DecoderOptions(), &free));
}

TEST(DecoderValidateTest, UnmappedFieldIsNamedWithoutSource) {
  DecoderOptions options;
  options.fields.customer_id = "";
  PurchaseEvent e = GoodEvent();
  e.customer_id.clear();
  EXPECT_EQ(ValidateError(e, options), "missing customer_id");
}

// ---- JSON ---------------------------------------------------------------------------------------

class DecoderJsonTest : public ::testing::Test {
 protected:
  // Decodes `json` with `options`, expecting success.
  PurchaseEvent Decode(std::string_view json, const DecoderOptions& options = DecoderOptions()) {
    std::unique_ptr<Decoder> decoder = NewJsonDecoder(options);
    PurchaseEvent e;
    Status s = decoder->Decode(json, &e);
    EXPECT_TRUE(s.ok()) << json << " -> " << s.ToString();
    return e;
  }
  // Decodes `json`, expecting failure; returns the message.
  std::string Error(std::string_view json, const DecoderOptions& options = DecoderOptions()) {
    std::unique_ptr<Decoder> decoder = NewJsonDecoder(options);
    PurchaseEvent e;
    Status s = decoder->Decode(json, &e);
    EXPECT_FALSE(s.ok()) << json << " decoded";
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    return s.message();
  }
};

TEST_F(DecoderJsonTest, CanonicalRecord) {
  PurchaseEvent e =
      Decode(R"({"event_id":"536365-1","customer_id":"17850","item_id":"85123A",)"
             R"("timestamp":"2010-12-01T08:26:00","quantity":6,"unit_price":2.55,"amount":15.3,)"
             R"("discount":0.5,"channel":" Online ","currency":"GBP"})");
  EXPECT_EQ(e.event_id, "536365-1");
  EXPECT_EQ(e.customer_id, "17850");
  EXPECT_EQ(e.item_id, "85123A");
  EXPECT_EQ(e.event_time_ms, kRetailFirstMs);
  EXPECT_EQ(e.quantity, 6);
  EXPECT_THAT(e.unit_price, Optional(2.55));
  EXPECT_THAT(e.amount, Optional(15.3));
  EXPECT_EQ(e.discount, 0.5);
  EXPECT_EQ(e.channel, "online");
  EXPECT_EQ(e.currency, "GBP");
  EXPECT_STREQ(NewJsonDecoder(DecoderOptions())->name(), "json");
}

TEST_F(DecoderJsonTest, TelcoMappingWithIntegerMsisdn) {
  PurchaseEvent e = Decode(
      R"({"MSISDN":6281234567890,"PACKAGE_CODE":"PKG_10GB_30D","BUY_DATE":"2023-05-01 10:15:00",)"
      R"("CHANNEL":"USSD","PRICE":"50000","REGION":"JAVA"})",
      TelcoOptions());
  EXPECT_EQ(e.customer_id, "6281234567890");  // no exponent, no ".0"
  EXPECT_EQ(e.item_id, "PKG_10GB_30D");
  EXPECT_EQ(e.event_time_ms, kTelcoMs);  // local Jakarta time
  EXPECT_EQ(e.channel, "ussd");
  EXPECT_THAT(e.amount, Optional(50000.0));
  EXPECT_FALSE(e.unit_price.has_value());
  EXPECT_EQ(e.quantity, 1.0);
  EXPECT_EQ(e.PaidAmount(), 50000.0);
}

TEST_F(DecoderJsonTest, TelcoMissingMsisdnNamesTheField) {
  EXPECT_EQ(Error(R"({"PACKAGE_CODE":"P1","BUY_DATE":"2023-05-01 10:15:00"})", TelcoOptions()),
            "missing customer_id (field 'MSISDN')");
  EXPECT_EQ(Error(R"({"MSISDN":null,"PACKAGE_CODE":"P1","BUY_DATE":"2023-05-01"})", TelcoOptions()),
            "missing customer_id (field 'MSISDN')");
  EXPECT_EQ(Error(R"({"MSISDN":"  ","PACKAGE_CODE":"P1","BUY_DATE":"2023-05-01"})", TelcoOptions()),
            "missing customer_id (field 'MSISDN')");
  EXPECT_EQ(Error(R"({"MSISDN":"62812","BUY_DATE":"2023-05-01"})", TelcoOptions()),
            "missing item_id (field 'PACKAGE_CODE')");
  EXPECT_EQ(Error(R"({"MSISDN":"62812","PACKAGE_CODE":"P1"})", TelcoOptions()),
            "missing event_time (field 'BUY_DATE')");
  EXPECT_EQ(Error(R"({"MSISDN":"62812","PACKAGE_CODE":"P1","BUY_DATE":null})", TelcoOptions()),
            "missing event_time (field 'BUY_DATE')");
  EXPECT_EQ(Error(R"({"MSISDN":"62812","PACKAGE_CODE":"P1","BUY_DATE":""})", TelcoOptions()),
            "missing event_time (field 'BUY_DATE')");
}

TEST_F(DecoderJsonTest, IdsMayBeIntegersOrIntegralFloats) {
  PurchaseEvent big =
      Decode(R"({"customer_id":18446744073709551615,"item_id":-42,"timestamp":"2011-12-09"})");
  EXPECT_EQ(big.customer_id, "18446744073709551615");
  EXPECT_EQ(big.item_id, "-42");
  PurchaseEvent pandas =
      Decode(R"({"customer_id":17850.0,"item_id":"A","timestamp":"2011-12-09"})");
  EXPECT_EQ(pandas.customer_id, "17850");
  PurchaseEvent channel_code =
      Decode(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","channel":3})");
  EXPECT_EQ(channel_code.channel, "3");
}

TEST_F(DecoderJsonTest, WrongTypesNameTheFieldAndShowTheValue) {
  std::string fractional_id =
      Error(R"({"customer_id":12.5,"item_id":"A","timestamp":"2011-12-09"})");
  EXPECT_THAT(fractional_id, HasSubstr("bad customer_id 12.5 (field 'customer_id')"));
  EXPECT_THAT(fractional_id, HasSubstr("expected a string or an integer"));

  std::string bool_id = Error(R"({"customer_id":"1","item_id":true,"timestamp":"2011-12-09"})");
  EXPECT_THAT(bool_id, HasSubstr("bad item_id true (field 'item_id')"));

  std::string object_quantity =
      Error(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","quantity":{"a":1}})");
  EXPECT_THAT(object_quantity, HasSubstr("quantity"));
  EXPECT_THAT(object_quantity, HasSubstr(R"({"a":1})"));
  EXPECT_THAT(object_quantity, HasSubstr("expected a number"));

  std::string array_price =
      Error(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","unit_price":[1,2]})");
  EXPECT_THAT(array_price, HasSubstr("bad unit_price [1,2] (field 'unit_price')"));

  std::string bool_time = Error(R"({"customer_id":"1","item_id":"A","timestamp":false})");
  EXPECT_THAT(bool_time, HasSubstr("bad event_time false (field 'timestamp')"));

  std::string object_channel =
      Error(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","channel":{"x":[]}})");
  EXPECT_THAT(object_channel, HasSubstr(R"(bad channel {"x":[]} (field 'channel'))"));
}

TEST_F(DecoderJsonTest, NumbersAsStringsEmptyAndNullAreAbsent) {
  PurchaseEvent strings =
      Decode(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","quantity":"3",)"
             R"("unit_price":" 12.5 ","amount":"+37.5","discount":"0"})");
  EXPECT_EQ(strings.quantity, 3);
  EXPECT_THAT(strings.unit_price, Optional(12.5));
  EXPECT_THAT(strings.amount, Optional(37.5));
  EXPECT_EQ(strings.discount, 0);

  PurchaseEvent absent =
      Decode(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","quantity":"",)"
             R"("unit_price":null,"amount":"","discount":null,"channel":null})");
  EXPECT_EQ(absent.quantity, 1.0);
  EXPECT_FALSE(absent.unit_price.has_value());
  EXPECT_FALSE(absent.amount.has_value());
  EXPECT_EQ(absent.discount, 0.0);
  EXPECT_EQ(absent.channel, "");
  EXPECT_FALSE(absent.priced());
}

TEST_F(DecoderJsonTest, BadNumericStringsNameFieldAndValue) {
  std::string msg =
      Error(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","quantity":"abc"})");
  EXPECT_EQ(msg, "bad quantity 'abc' (field 'quantity'): not a number");
  EXPECT_THAT(
      Error(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","unit_price":"1,5"})"),
      HasSubstr("bad unit_price '1,5'"));
  EXPECT_THAT(
      Error(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","amount":"1e999"})"),
      HasSubstr("bad amount '1e999' (field 'amount'): out of range"));
  EXPECT_THAT(
      Error(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","quantity":"NaN"})"),
      HasSubstr("bad quantity nan"));
  EXPECT_THAT(
      Error(R"({"customer_id":"1","item_id":"A","timestamp":"2011-12-09","quantity":"+-1"})"),
      HasSubstr("bad quantity '+-1'"));
}

TEST_F(DecoderJsonTest, EventTimeAsNumbers) {
  auto at = [this](std::string_view time_json, TimestampFormat format) {
    DecoderOptions options;
    options.timestamp_format = format;
    std::string json =
        R"({"customer_id":"1","item_id":"A","timestamp":)" + std::string(time_json) + "}";
    return Decode(json, options).event_time_ms;
  };
  const auto kAuto = TimestampFormat::kAuto;
  EXPECT_EQ(at("1291191960", kAuto), kRetailFirstMs);
  EXPECT_EQ(at("1291191960250", kAuto), kRetailFirstMs + 250);
  EXPECT_EQ(at("1291191960.5", kAuto), kRetailFirstMs + 500);
  EXPECT_EQ(at(R"("1291191960")", kAuto), kRetailFirstMs);
  EXPECT_EQ(at(R"("1291191960250")", kAuto), kRetailFirstMs + 250);
  EXPECT_EQ(at("1291191960", TimestampFormat::kEpochSeconds), kRetailFirstMs);
  EXPECT_EQ(at("1291191960250", TimestampFormat::kEpochMillis), kRetailFirstMs + 250);
  EXPECT_EQ(at("1.29119196e12", TimestampFormat::kEpochMillis), kRetailFirstMs);
  EXPECT_EQ(at(R"("2010-12-01 08:26:00")", TimestampFormat::kIso8601), kRetailFirstMs);
}

TEST_F(DecoderJsonTest, EventTimeErrorsNameValueAndField) {
  DecoderOptions iso;
  iso.timestamp_format = TimestampFormat::kIso8601;
  std::string number_for_iso =
      Error(R"({"customer_id":"1","item_id":"A","timestamp":1291191960})", iso);
  EXPECT_THAT(number_for_iso, HasSubstr("bad event_time 1291191960 (field 'timestamp')"));
  EXPECT_THAT(number_for_iso, HasSubstr("ISO-8601"));

  std::string bad_month =
      Error(R"({"MSISDN":"1","PACKAGE_CODE":"A","BUY_DATE":"2023-13-01"})", TelcoOptions());
  EXPECT_EQ(bad_month, "bad event time '2023-13-01': month 13 out of range (field 'BUY_DATE')");

  DecoderOptions millis;
  millis.timestamp_format = TimestampFormat::kEpochMillis;
  // 1291191960 ms is 1970-01-15: absurd.
  std::string absurd = Error(R"({"customer_id":"1","item_id":"A","timestamp":1291191960})", millis);
  EXPECT_THAT(absurd, HasSubstr("event_time 1970-01-15T22:39:51.960Z out of range"));
  EXPECT_THAT(Error(R"({"customer_id":"1","item_id":"A","timestamp":1e300})"),
              HasSubstr("out of range"));
  EXPECT_THAT(Error(R"({"customer_id":"1","item_id":"A","timestamp":"1900-01-01"})"),
              HasSubstr("event_time 1900-01-01T00:00:00Z out of range"));
}

TEST_F(DecoderJsonTest, NegativeQuantityRejectedByDefaultAcceptedWithOption) {
  const char* json = R"({"customer_id":"14527","item_id":"D","timestamp":"2010-12-01T09:41:00",)"
                     R"("quantity":-1,"unit_price":27.5,"amount":-27.5})";
  EXPECT_THAT(Error(json), HasSubstr("bad quantity -1 (field 'quantity')"));
  DecoderOptions returns;
  returns.allow_negative_quantity = true;
  PurchaseEvent e = Decode(json, returns);
  EXPECT_EQ(e.quantity, -1);
  EXPECT_THAT(e.amount, Optional(-27.5));
}

TEST_F(DecoderJsonTest, BadJsonIsInvalidArgumentNamingTheParseError) {
  std::string truncated = Error(R"({"customer_id":"1","item_id")");
  EXPECT_THAT(truncated, HasSubstr("bad JSON record"));
  EXPECT_THAT(truncated, HasSubstr(R"('{"customer_id":"1","item_id"')"));
  EXPECT_THAT(Error(""), HasSubstr("bad JSON record"));
  EXPECT_THAT(Error("{'a':1}"), HasSubstr("bad JSON record"));
  EXPECT_THAT(Error("{\"customer_id\":\"\xff\xfe\"}"), HasSubstr("bad JSON record"));
  EXPECT_THAT(Error("[1,2]"), HasSubstr("not an object: '[1,2]'"));
  EXPECT_THAT(Error("null"), HasSubstr("not an object"));
  EXPECT_THAT(Error("\"17850\""), HasSubstr("not an object"));
  // A long record is quoted only in part.
  std::string long_record = "{\"customer_id\":\"" + std::string(500, 'x');
  std::string msg = Error(long_record);
  EXPECT_LT(msg.size(), 200u);
  EXPECT_THAT(msg, HasSubstr("..."));
}

TEST_F(DecoderJsonTest, DecodeOverwritesEveryFieldOfTheOutput) {
  std::unique_ptr<Decoder> decoder = NewJsonDecoder(DecoderOptions());
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode(
      R"({"event_id":"x","customer_id":"1","item_id":"A","timestamp":"2011-12-09",)"
      R"("quantity":2,"unit_price":3,"amount":6,"discount":1,"channel":"web","currency":"EUR"})",
      &e));
  ASSERT_OK(decoder->Decode(R"({"customer_id":"2","item_id":"B","timestamp":"2011-12-10"})", &e));
  EXPECT_EQ(e.event_id, "");
  EXPECT_EQ(e.customer_id, "2");
  EXPECT_EQ(e.item_id, "B");
  EXPECT_EQ(e.quantity, 1.0);
  EXPECT_FALSE(e.unit_price.has_value());
  EXPECT_FALSE(e.amount.has_value());
  EXPECT_EQ(e.discount, 0.0);
  EXPECT_EQ(e.channel, "");
  EXPECT_EQ(e.currency, "");
}

TEST_F(DecoderJsonTest, IgnoresUnknownKeysAndTakesFirstDuplicate) {
  PurchaseEvent e =
      Decode(R"({"nested":{"customer_id":"inner"},"customer_id":"outer","customer_id":"second",)"
             R"("item_id":"A","timestamp":"2011-12-09","extra":[1,{"x":null}]})");
  EXPECT_EQ(e.customer_id, "outer");
}

TEST_F(DecoderJsonTest, KeysAreCaseSensitive) {
  EXPECT_EQ(Error(R"({"msisdn":"1","PACKAGE_CODE":"A","BUY_DATE":"2023-05-01"})", TelcoOptions()),
            "missing customer_id (field 'MSISDN')");
}

TEST_F(DecoderJsonTest, NeverCrashesOnTruncatedOrMutatedRecords) {
  const std::string good =
      R"({"MSISDN":6281234567890,"PACKAGE_CODE":"PKG","BUY_DATE":"2023-05-01 10:15:00",)"
      R"("CHANNEL":"USSD","PRICE":"50000"})";
  std::unique_ptr<Decoder> decoder = NewJsonDecoder(TelcoOptions());
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode(good, &e));
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decoder->Decode(std::string_view(good).substr(0, n), &e).ok()) << n;
  }
  uint32_t rng = 12345;
  for (int i = 0; i < 2000; ++i) {
    std::string mutated = good;
    rng = rng * 1664525u + 1013904223u;
    mutated[(rng >> 8) % mutated.size()] = static_cast<char>(rng >> 24);
    decoder->Decode(mutated, &e).IgnoreError();  // any Status, but no crash or throw
  }
}

// ---- CSV ----------------------------------------------------------------------------------------

constexpr const char* kRetailHeader =
    "customer_id,item_id,timestamp,quantity,unit_price,amount,channel";

std::unique_ptr<Decoder> MakeCsv(std::string_view header,
                                 const DecoderOptions& options = DecoderOptions()) {
  StatusOr<std::unique_ptr<Decoder>> decoder = NewCsvDecoder(options, header);
  EXPECT_TRUE(decoder.ok()) << decoder.status().ToString();
  return decoder.ok() ? std::move(decoder).value() : nullptr;
}

std::string CsvError(Decoder* decoder, std::string_view line) {
  PurchaseEvent e;
  Status s = decoder->Decode(line, &e);
  EXPECT_FALSE(s.ok()) << line << " decoded";
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  return s.message();
}

TEST(DecoderCsvTest, OnlineRetailLine) {
  std::unique_ptr<Decoder> decoder = MakeCsv(kRetailHeader);
  ASSERT_NE(decoder, nullptr);
  EXPECT_STREQ(decoder->name(), "csv");
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode("17850,85123A,2010-12-01 08:26:00,6,2.55,15.3,", &e));
  EXPECT_EQ(e.customer_id, "17850");
  EXPECT_EQ(e.item_id, "85123A");
  EXPECT_EQ(e.event_time_ms, kRetailFirstMs);
  EXPECT_EQ(e.quantity, 6);
  EXPECT_THAT(e.unit_price, Optional(2.55));
  EXPECT_THAT(e.amount, Optional(15.3));
  EXPECT_EQ(e.discount, 0.0);
  EXPECT_EQ(e.channel, "");
  EXPECT_EQ(e.event_id, "");
  // The shipped file writes a 'T' and may end lines with CRLF.
  ASSERT_OK(decoder->Decode("17850,85123A,2010-12-01T08:26:00,6,2.55,15.3,\r", &e));
  EXPECT_EQ(e.event_time_ms, kRetailFirstMs);
}

TEST(DecoderCsvTest, MissingPriceIsValid) {
  std::unique_ptr<Decoder> decoder = MakeCsv(kRetailHeader);
  ASSERT_NE(decoder, nullptr);
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode("17850,85123A,2010-12-01 08:26:00,6,,,web", &e));
  EXPECT_FALSE(e.unit_price.has_value());
  EXPECT_FALSE(e.amount.has_value());
  EXPECT_FALSE(e.priced());
  EXPECT_EQ(e.channel, "web");
  // Empty quantity: absent, defaults to 1.
  ASSERT_OK(decoder->Decode("17850,85123A,2010-12-01 08:26:00, ,2.55,,", &e));
  EXPECT_EQ(e.quantity, 1.0);
  EXPECT_DOUBLE_EQ(e.PaidAmount(), 2.55);
}

TEST(DecoderCsvTest, TelcoMapping) {
  DecoderOptions options = TelcoOptions();
  std::unique_ptr<Decoder> decoder =
      MakeCsv("MSISDN,PACKAGE_CODE,BUY_DATE,CHANNEL,PRICE,REGION", options);
  ASSERT_NE(decoder, nullptr);
  PurchaseEvent e;
  ASSERT_OK(
      decoder->Decode("6281234567890,PKG_10GB_30D,2023-05-01 10:15:00,MyTelkomsel,50000,"
                      "JAVA",
                      &e));
  EXPECT_EQ(e.customer_id, "6281234567890");
  EXPECT_EQ(e.item_id, "PKG_10GB_30D");
  EXPECT_EQ(e.event_time_ms, kTelcoMs);
  EXPECT_EQ(e.channel, "mytelkomsel");
  EXPECT_THAT(e.amount, Optional(50000.0));
  EXPECT_FALSE(e.unit_price.has_value());
  EXPECT_EQ(e.quantity, 1.0);
  EXPECT_EQ(CsvError(decoder.get(), ",PKG,2023-05-01 10:15:00,app,1,x"),
            "missing customer_id (field 'MSISDN')");
  EXPECT_EQ(CsvError(decoder.get(), "62812,PKG,,app,1,x"), "missing event_time (field 'BUY_DATE')");
  EXPECT_EQ(CsvError(decoder.get(), "62812,PKG,2023-05-01 10:15:00,app,Rp50.000,x"),
            "bad amount 'Rp50.000' (field 'PRICE'): not a number");
  EXPECT_EQ(CsvError(decoder.get(), "62812,PKG,01/05/2023,app,1,x"),
            "bad event time '01/05/2023': neither ISO-8601 (YYYY-MM-DD...) nor an epoch number "
            "(field 'BUY_DATE')");
}

TEST(DecoderCsvTest, HeaderLacksRequiredColumn) {
  StatusOr<std::unique_ptr<Decoder>> decoder = NewCsvDecoder(TelcoOptions(), "a,b,c");
  ASSERT_FALSE(decoder.ok());
  EXPECT_TRUE(decoder.status().IsInvalidArgument());
  EXPECT_EQ(decoder.status().message(),
            "CSV header lacks column 'MSISDN' for customer_id; header is: a,b,c");

  StatusOr<std::unique_ptr<Decoder>> no_time =
      NewCsvDecoder(DecoderOptions(), "customer_id,item_id,quantity");
  ASSERT_FALSE(no_time.ok());
  EXPECT_THAT(no_time.status().message(), HasSubstr("lacks column 'timestamp' for event_time"));

  // A header split on the wrong delimiter is one column; the message hints at that.
  StatusOr<std::unique_ptr<Decoder>> semicolons =
      NewCsvDecoder(DecoderOptions(), "customer_id;item_id;timestamp");
  ASSERT_FALSE(semicolons.ok());
  EXPECT_THAT(semicolons.status().message(), HasSubstr("csv_delimiter ','"));

  DecoderOptions unmapped;
  unmapped.fields.item_id = "";
  StatusOr<std::unique_ptr<Decoder>> no_name = NewCsvDecoder(unmapped, kRetailHeader);
  ASSERT_FALSE(no_name.ok());
  EXPECT_THAT(no_name.status().message(), HasSubstr("no CSV column configured for item_id"));

  StatusOr<std::unique_ptr<Decoder>> unterminated =
      NewCsvDecoder(DecoderOptions(), "customer_id,\"item_id,timestamp");
  ASSERT_FALSE(unterminated.ok());
  EXPECT_THAT(unterminated.status().message(), HasSubstr("bad CSV header"));
}

TEST(DecoderCsvTest, HeaderBomSpacesAndCaseInsensitiveMatch) {
  std::unique_ptr<Decoder> decoder =
      MakeCsv("\xEF\xBB\xBF Customer_ID , ITEM_ID,TimeStamp ,Quantity\r");
  ASSERT_NE(decoder, nullptr);
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode("17850,85123A,2010-12-01 08:26:00,6", &e));
  EXPECT_EQ(e.customer_id, "17850");
  EXPECT_EQ(e.item_id, "85123A");
  EXPECT_EQ(e.quantity, 6);
}

TEST(DecoderCsvTest, CaseSensitiveMatchWinsOverCaseInsensitive) {
  DecoderOptions options;
  options.fields.customer_id = "ID";
  std::unique_ptr<Decoder> decoder = MakeCsv("id,ID,item_id,timestamp", options);
  ASSERT_NE(decoder, nullptr);
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode("lower,UPPER,A,2011-12-09", &e));
  EXPECT_EQ(e.customer_id, "UPPER");
}

TEST(DecoderCsvTest, QuotedFieldsWithCommasAndQuotes) {
  DecoderOptions options;
  options.fields.event_id = "invoice";
  std::unique_ptr<Decoder> decoder =
      MakeCsv("invoice,customer_id,item_id,timestamp,quantity,unit_price,amount,channel", options);
  ASSERT_NE(decoder, nullptr);
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode(
      R"("536365","17850","85123A, ""red""","2010-12-01 08:26:00","6","2.55",,"Web, mobile")", &e));
  EXPECT_EQ(e.event_id, "536365");
  EXPECT_EQ(e.item_id, "85123A, \"red\"");
  EXPECT_EQ(e.quantity, 6);
  EXPECT_THAT(e.unit_price, Optional(2.55));
  EXPECT_FALSE(e.amount.has_value());
  EXPECT_EQ(e.channel, "web, mobile");
  EXPECT_THAT(CsvError(decoder.get(), R"(1,17850,"85123A,2010-12-01 08:26:00,6)"),
              HasSubstr("unterminated quote"));
}

TEST(DecoderCsvTest, OtherDelimiter) {
  DecoderOptions options;
  options.csv_delimiter = ';';
  std::unique_ptr<Decoder> decoder = MakeCsv("customer_id;item_id;timestamp;unit_price", options);
  ASSERT_NE(decoder, nullptr);
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode("17850;85123A;2010-12-01 08:26:00;2.55", &e));
  EXPECT_THAT(e.unit_price, Optional(2.55));
  EXPECT_THAT(CsvError(decoder.get(), "17850;85123A;2010-12-01 08:26:00;2,55"),
              HasSubstr("bad unit_price '2,55'"));
}

TEST(DecoderCsvTest, TooFewColumnsNamesCountAndShowsLine) {
  std::unique_ptr<Decoder> decoder = MakeCsv(kRetailHeader);
  ASSERT_NE(decoder, nullptr);
  std::string msg = CsvError(decoder.get(), "17850,85123A,2010-12-01 08:26:00");
  EXPECT_THAT(msg, HasSubstr("CSV line has 3 columns, expected at least 7"));
  EXPECT_THAT(msg, HasSubstr("'17850,85123A,2010-12-01 08:26:00'"));
  EXPECT_THAT(CsvError(decoder.get(), ""), HasSubstr("has 1 columns"));
  std::string long_line = std::string(300, 'x');
  std::string long_msg = CsvError(decoder.get(), long_line);
  EXPECT_THAT(long_msg, HasSubstr(std::string(80, 'x') + "..."));
  EXPECT_THAT(long_msg, ::testing::Not(HasSubstr(std::string(81, 'x'))));
}

TEST(DecoderCsvTest, OnlyMappedColumnsAreNeeded) {
  // Optional columns after the required ones: a short line is fine if all mapped cells exist.
  std::unique_ptr<Decoder> decoder = MakeCsv("customer_id,item_id,timestamp,note,note2");
  ASSERT_NE(decoder, nullptr);
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode("1,A,2011-12-09", &e));
  ASSERT_OK(decoder->Decode("1,A,2011-12-09,x,y,z", &e));  // extra columns ignored
}

TEST(DecoderCsvTest, BadNumbersNameFieldAndValue) {
  std::unique_ptr<Decoder> decoder = MakeCsv(kRetailHeader);
  ASSERT_NE(decoder, nullptr);
  EXPECT_EQ(CsvError(decoder.get(), "17850,85123A,2010-12-01 08:26:00,abc,2.55,15.3,"),
            "bad quantity 'abc' (field 'quantity'): not a number");
  EXPECT_THAT(CsvError(decoder.get(), "17850,85123A,2010-12-01 08:26:00,6,2.55x,15.3,"),
              HasSubstr("bad unit_price '2.55x' (field 'unit_price')"));
  EXPECT_THAT(CsvError(decoder.get(), "17850,85123A,2010-12-01 08:26:00,0,2.55,0,"),
              HasSubstr("bad quantity 0"));
  EXPECT_THAT(CsvError(decoder.get(), "17850,85123A,2010-12-01 08:26:00,6,-2.55,,"),
              HasSubstr("bad unit_price -2.55"));
  EXPECT_THAT(CsvError(decoder.get(), "17850,85123A,2010-02-30 08:26:00,6,2.55,,"),
              HasSubstr("bad event time '2010-02-30 08:26:00': day 30 out of range"));
  EXPECT_THAT(CsvError(decoder.get(), "17850,85123A,1989-12-31 23:59:59,6,2.55,,"),
              HasSubstr("event_time 1989-12-31T23:59:59Z out of range"));
}

TEST(DecoderCsvTest, NegativeQuantityRejectedByDefaultAcceptedWithOption) {
  const char* line = "14527,D,2010-12-01T09:41:00,-1,27.5,-27.5,";
  std::unique_ptr<Decoder> strict = MakeCsv(kRetailHeader);
  ASSERT_NE(strict, nullptr);
  EXPECT_THAT(CsvError(strict.get(), line), HasSubstr("bad quantity -1"));
  DecoderOptions returns;
  returns.allow_negative_quantity = true;
  std::unique_ptr<Decoder> lenient = MakeCsv(kRetailHeader, returns);
  ASSERT_NE(lenient, nullptr);
  PurchaseEvent e;
  ASSERT_OK(lenient->Decode(line, &e));
  EXPECT_EQ(e.quantity, -1);
  EXPECT_THAT(e.amount, Optional(-27.5));
}

TEST(DecoderCsvTest, EpochTimesAndDefaultOffset) {
  DecoderOptions options;
  options.default_utc_offset_minutes = -300;
  std::unique_ptr<Decoder> decoder = MakeCsv("customer_id,item_id,timestamp", options);
  ASSERT_NE(decoder, nullptr);
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode("1,A,1291191960", &e));
  EXPECT_EQ(e.event_time_ms, kRetailFirstMs);
  ASSERT_OK(decoder->Decode("1,A,1291191960123", &e));
  EXPECT_EQ(e.event_time_ms, kRetailFirstMs + 123);
  ASSERT_OK(decoder->Decode("1,A,2010-12-01 03:26:00", &e));
  EXPECT_EQ(e.event_time_ms, kRetailFirstMs);
  ASSERT_OK(decoder->Decode("1,A,2010-12-01T10:26:00+02:00", &e));
  EXPECT_EQ(e.event_time_ms, kRetailFirstMs);
  ASSERT_OK(decoder->Decode("1,A,2012-02-29 00:00", &e));
  EXPECT_EQ(e.event_time_ms, 1330473600LL * 1000 + 5 * kHourMs);
}

// Reads up to `max_lines` lines of a gzip file (header first). Empty when the file is absent.
std::vector<std::string> ReadGzipLines(const std::string& path, size_t max_lines) {
  std::vector<std::string> lines;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return lines;
  char buf[4096];
  while (lines.size() < max_lines && gzgets(file, buf, sizeof(buf)) != nullptr) {
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    lines.push_back(std::move(line));
  }
  gzclose(file);
  return lines;
}

TEST(DecoderCsvTest, DecodesTheSharedOnlineRetailData) {
  const std::string dir = testing::SharedDataDir() + "/online_retail";
  std::vector<std::string> events = ReadGzipLines(dir + "/events.csv.gz", 20001);
  if (events.empty()) GTEST_SKIP() << "no " << dir << "/events.csv.gz";
  ASSERT_EQ(events[0], kRetailHeader);
  std::unique_ptr<Decoder> decoder = MakeCsv(events[0]);
  ASSERT_NE(decoder, nullptr);
  PurchaseEvent e;
  int64_t last_time = 0;
  for (size_t i = 1; i < events.size(); ++i) {
    ASSERT_OK(decoder->Decode(events[i], &e));
    ASSERT_GE(e.event_time_ms, last_time) << "line " << i << ": the file is sorted by time";
    last_time = e.event_time_ms;
    ASSERT_GT(e.quantity, 0);
  }

  std::vector<std::string> returns = ReadGzipLines(dir + "/returns.csv.gz", 1001);
  ASSERT_GT(returns.size(), 1u);
  std::unique_ptr<Decoder> strict = MakeCsv(returns[0]);
  DecoderOptions allow;
  allow.allow_negative_quantity = true;
  std::unique_ptr<Decoder> lenient = MakeCsv(returns[0], allow);
  ASSERT_NE(strict, nullptr);
  ASSERT_NE(lenient, nullptr);
  for (size_t i = 1; i < returns.size(); ++i) {
    EXPECT_FALSE(strict->Decode(returns[i], &e).ok()) << returns[i];
    ASSERT_OK(lenient->Decode(returns[i], &e));
    EXPECT_LT(e.quantity, 0);
  }
}

TEST(DecoderCsvTest, NeverCrashesOnMutatedLines) {
  std::unique_ptr<Decoder> decoder = MakeCsv(kRetailHeader);
  ASSERT_NE(decoder, nullptr);
  const std::string good = "17850,\"85123A\",2010-12-01 08:26:00.5+01:00,6,2.55,15.3,web";
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode(good, &e));
  uint32_t rng = 777;
  for (int i = 0; i < 5000; ++i) {
    std::string mutated = good.substr(0, good.size() - (i % 7));
    rng = rng * 1664525u + 1013904223u;
    mutated[(rng >> 8) % mutated.size()] = static_cast<char>(rng >> 24);
    decoder->Decode(mutated, &e).IgnoreError();
  }
}

// ---- Protobuf -----------------------------------------------------------------------------------

std::string Serialize(const v1::PurchaseEvent& message) {
  std::string bytes;
  EXPECT_TRUE(message.SerializeToString(&bytes));
  return bytes;
}

v1::PurchaseEvent FullMessage() {
  v1::PurchaseEvent m;
  m.set_event_id("536365-1");
  m.set_customer_id("6281234567890");
  m.set_item_id("PKG_10GB_30D");
  m.set_event_time_ms(kTelcoMs + 250);
  m.set_quantity(2);
  m.set_unit_price(25000);
  m.set_amount(45000);
  m.set_discount(5000);
  m.set_channel("USSD");
  m.set_currency("IDR");
  return m;
}

TEST(DecoderProtobufTest, RoundTrip) {
  std::unique_ptr<Decoder> decoder = NewProtobufDecoder(DecoderOptions());
  EXPECT_STREQ(decoder->name(), "protobuf");
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode(Serialize(FullMessage()), &e));
  EXPECT_EQ(e.event_id, "536365-1");
  EXPECT_EQ(e.customer_id, "6281234567890");
  EXPECT_EQ(e.item_id, "PKG_10GB_30D");
  EXPECT_EQ(e.event_time_ms, kTelcoMs + 250);
  EXPECT_EQ(e.quantity, 2);
  EXPECT_THAT(e.unit_price, Optional(25000.0));
  EXPECT_THAT(e.amount, Optional(45000.0));
  EXPECT_EQ(e.discount, 5000);
  EXPECT_EQ(e.channel, "ussd");
  EXPECT_EQ(e.currency, "IDR");
}

TEST(DecoderProtobufTest, OptionalPricesAndDefaultQuantity) {
  std::unique_ptr<Decoder> decoder = NewProtobufDecoder(DecoderOptions());
  v1::PurchaseEvent m;
  m.set_customer_id("17850");
  m.set_item_id("85123A");
  m.set_event_time_ms(kRetailFirstMs);
  PurchaseEvent e;
  ASSERT_OK(decoder->Decode(Serialize(m), &e));
  EXPECT_EQ(e.quantity, 1.0);  // proto3 0 = not sent
  EXPECT_FALSE(e.unit_price.has_value());
  EXPECT_FALSE(e.amount.has_value());
  EXPECT_FALSE(e.priced());

  m.set_unit_price(0.0);  // explicitly free: present, unlike an absent price
  ASSERT_OK(decoder->Decode(Serialize(m), &e));
  EXPECT_THAT(e.unit_price, Optional(0.0));
  EXPECT_FALSE(e.amount.has_value());
}

TEST(DecoderProtobufTest, GarbageBytesAreInvalidArgument) {
  std::unique_ptr<Decoder> decoder = NewProtobufDecoder(DecoderOptions());
  PurchaseEvent e;
  Status s = decoder->Decode(std::string_view("\xff\xff\xff\xff", 4), &e);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.message(), "not a valid streamrec.v1.PurchaseEvent protobuf (4 bytes)");
  // A JSON record sent to a protobuf topic.
  Status json = decoder->Decode(R"({"customer_id":"1"})", &e);
  EXPECT_FALSE(json.ok());
  // Truncated length-delimited field.
  std::string bytes = Serialize(FullMessage());
  Status truncated = decoder->Decode(std::string_view(bytes).substr(0, 5), &e);
  EXPECT_THAT(truncated.message(), HasSubstr("not a valid streamrec.v1.PurchaseEvent"));
  EXPECT_THAT(truncated.message(), HasSubstr("(5 bytes)"));
}

TEST(DecoderProtobufTest, MissingFieldsUseSchemaNames) {
  std::unique_ptr<Decoder> decoder = NewProtobufDecoder(TelcoOptions());  // names ignored
  PurchaseEvent e;
  Status empty = decoder->Decode("", &e);
  EXPECT_EQ(empty.message(), "missing customer_id (field 'customer_id')");
  v1::PurchaseEvent m = FullMessage();
  m.clear_event_time_ms();
  EXPECT_EQ(decoder->Decode(Serialize(m), &e).message(),
            "missing event_time (field 'event_time_ms')");
  m.set_event_time_ms(1);  // 1970
  EXPECT_THAT(decoder->Decode(Serialize(m), &e).message(),
              HasSubstr("event_time 1970-01-01T00:00:00.001Z out of range"));
}

TEST(DecoderProtobufTest, NegativeQuantityRejectedByDefaultAcceptedWithOption) {
  v1::PurchaseEvent m = FullMessage();
  m.set_quantity(-2);
  m.set_amount(-45000);
  PurchaseEvent e;
  Status strict = NewProtobufDecoder(DecoderOptions())->Decode(Serialize(m), &e);
  EXPECT_THAT(strict.message(), HasSubstr("bad quantity -2 (field 'quantity')"));
  DecoderOptions returns;
  returns.allow_negative_quantity = true;
  ASSERT_OK(NewProtobufDecoder(returns)->Decode(Serialize(m), &e));
  EXPECT_EQ(e.quantity, -2);
}

TEST(DecoderProtobufTest, NonFiniteNumbersAreRejected) {
  v1::PurchaseEvent m = FullMessage();
  m.set_unit_price(std::nan(""));
  PurchaseEvent e;
  EXPECT_THAT(NewProtobufDecoder(DecoderOptions())->Decode(Serialize(m), &e).message(),
              HasSubstr("bad unit_price nan"));
}

TEST(DecoderProtobufTest, NeverCrashesOnTruncatedOrMutatedBytes) {
  google::protobuf::LogSilencer silence_invalid_utf8_warnings;
  std::unique_ptr<Decoder> decoder = NewProtobufDecoder(DecoderOptions());
  const std::string good = Serialize(FullMessage());
  PurchaseEvent e;
  for (size_t n = 0; n < good.size(); ++n) {
    decoder->Decode(std::string_view(good).substr(0, n), &e).IgnoreError();
  }
  uint32_t rng = 99;
  for (int i = 0; i < 2000; ++i) {
    std::string mutated = good;
    rng = rng * 1664525u + 1013904223u;
    mutated[(rng >> 8) % mutated.size()] = static_cast<char>(rng >> 24);
    decoder->Decode(mutated, &e).IgnoreError();
  }
}

}  // namespace
}  // namespace streamrec
