#include "streamrec/features.h"

#include <gtest/gtest.h>

#include "testutil/test_util.h"

namespace streamrec {
namespace {

constexpr int64_t kDay = 86400000;
constexpr int64_t kT0 = 1700000000000;

PurchaseEvent Event(const std::string& customer, const std::string& item, int64_t t,
                    std::optional<double> amount = 10.0, const std::string& channel = "app") {
  PurchaseEvent e;
  e.customer_id = customer;
  e.item_id = item;
  e.event_time_ms = t;
  e.amount = amount;
  e.channel = channel;
  return e;
}

TEST(FeaturesTest, CountsSpendGapsAndBaskets) {
  FeatureOptions options;
  CustomerState s = NewCustomerState("c1");
  EXPECT_EQ(s.cluster(), -1);
  ApplyEvent(options, Event("c1", "A", kT0, 10.0), nullptr, &s);
  ApplyEvent(options, Event("c1", "B", kT0, 5.0), nullptr, &s);           // same basket
  ApplyEvent(options, Event("c1", "A", kT0 + 10 * kDay, 20.0), nullptr, &s);  // new basket
  EXPECT_EQ(s.event_count(), 3u);
  EXPECT_EQ(s.purchase_count(), 2u);
  EXPECT_DOUBLE_EQ(s.total_spend(), 35.0);
  EXPECT_EQ(s.gap_sum_ms(), 10 * kDay);
  EXPECT_EQ(s.first_time_ms(), kT0);
  EXPECT_EQ(s.last_time_ms(), kT0 + 10 * kDay);
  ASSERT_EQ(s.items_size(), 2);
  EXPECT_EQ(s.items(0).item_id(), "A");
  EXPECT_EQ(s.items(0).count(), 2u);
  EXPECT_DOUBLE_EQ(s.items(0).spend(), 30.0);
  EXPECT_EQ(s.items(0).last_time_ms(), kT0 + 10 * kDay);
  ASSERT_NE(FindItem(s, "B"), nullptr);
  EXPECT_EQ(FindItem(s, "C"), nullptr);

  DerivedFeatures d = Derive(s, kT0 + 15 * kDay);
  EXPECT_DOUBLE_EQ(d.recency_days, 5.0);
  EXPECT_DOUBLE_EQ(d.frequency, 2.0);
  EXPECT_DOUBLE_EQ(d.avg_spend, 17.5);
  EXPECT_DOUBLE_EQ(d.mean_gap_days, 10.0);
  EXPECT_DOUBLE_EQ(d.tenure_days, 10.0);
}

TEST(FeaturesTest, RemembersWhichRecentBasketsHeldAnItem) {
  FeatureOptions options;
  CustomerState s = NewCustomerState("c1");
  // Baskets 1..4: {A, B}, {A}, {C}, {A, B}.
  const std::vector<std::vector<std::string>> baskets = {{"A", "B"}, {"A"}, {"C"}, {"A", "B"}};
  for (size_t b = 0; b < baskets.size(); ++b) {
    for (const std::string& item : baskets[b]) {
      ApplyEvent(options, Event("c1", item, kT0 + static_cast<int64_t>(b) * kDay), nullptr, &s);
    }
  }
  ASSERT_EQ(s.purchase_count(), 4u);
  // Bit j: basket 4 - j.
  EXPECT_EQ(RecentBaskets(s, *FindItem(s, "A")), 0b1101u);
  EXPECT_EQ(RecentBaskets(s, *FindItem(s, "B")), 0b1001u);
  EXPECT_EQ(RecentBaskets(s, *FindItem(s, "C")), 0b0010u);
  EXPECT_EQ(FindItem(s, "A")->last_basket(), 4u);
  // 63 more baskets of D: A's last basket is now 63 back (bit 63), B's older ones fell out.
  for (int b = 0; b < 63; ++b) {
    ApplyEvent(options, Event("c1", "D", kT0 + (10 + b) * kDay), nullptr, &s);
  }
  EXPECT_EQ(RecentBaskets(s, *FindItem(s, "A")), uint64_t{1} << 63);
  EXPECT_EQ(RecentBaskets(s, *FindItem(s, "D")), ~uint64_t{0} >> 1);
  // One more and A is older than the 64 baskets remembered.
  ApplyEvent(options, Event("c1", "D", kT0 + 100 * kDay), nullptr, &s);
  EXPECT_EQ(RecentBaskets(s, *FindItem(s, "A")), 0u);
  EXPECT_EQ(RecentBaskets(s, *FindItem(s, "D")), ~uint64_t{0});
  // A re-buy after a long gap keeps only what fits in the window.
  ApplyEvent(options, Event("c1", "A", kT0 + 101 * kDay), nullptr, &s);
  EXPECT_EQ(RecentBaskets(s, *FindItem(s, "A")), 1u);
  EXPECT_EQ(FindItem(s, "A")->baskets(), 4u);
  // An entry written before baskets were tracked (last_basket 0) is unknown, then tracked from
  // its next basket on.
  s.mutable_items(2)->clear_last_basket();  // C
  ASSERT_EQ(s.items(2).item_id(), "C");
  EXPECT_EQ(RecentBaskets(s, s.items(2)), 0u);
  ApplyEvent(options, Event("c1", "C", kT0 + 102 * kDay), nullptr, &s);
  EXPECT_EQ(RecentBaskets(s, *FindItem(s, "C")), 1u);
}

TEST(FeaturesTest, DecayedSpendHalvesPerHalfLife) {
  FeatureOptions options;
  options.spend_half_life_days = 10;
  CustomerState s = NewCustomerState("c1");
  ApplyEvent(options, Event("c1", "A", kT0, 100.0), nullptr, &s);
  ApplyEvent(options, Event("c1", "A", kT0 + 10 * kDay, 100.0), nullptr, &s);
  EXPECT_NEAR(s.decayed_spend(), 150.0, 1e-9);
  EXPECT_NEAR(DecayedSpendAt(s, kT0 + 20 * kDay, 10), 75.0, 1e-9);
  // A late event is decayed to the current reference time, not added at full value.
  ApplyEvent(options, Event("c1", "A", kT0, 100.0), nullptr, &s);
  EXPECT_NEAR(s.decayed_spend(), 200.0, 1e-9);
  EXPECT_EQ(s.last_time_ms(), kT0 + 10 * kDay);
}

TEST(FeaturesTest, MissingPriceKeepsMonetaryAtZero) {
  FeatureOptions options;
  CustomerState s = NewCustomerState("c1");
  ApplyEvent(options, Event("c1", "A", kT0, std::nullopt), nullptr, &s);
  ApplyEvent(options, Event("c1", "B", kT0 + kDay, std::nullopt), nullptr, &s);
  EXPECT_EQ(s.purchase_count(), 2u);
  EXPECT_EQ(s.total_spend(), 0.0);
  EXPECT_EQ(s.priced_count(), 0u);
  EXPECT_EQ(s.items_size(), 2);
}

TEST(FeaturesTest, ChannelsAndServiceTypesCounted) {
  FeatureOptions options;
  CatalogItem streaming;
  streaming.item_id = "STR";
  streaming.service_type = "streaming";
  CustomerState s = NewCustomerState("c1");
  ApplyEvent(options, Event("c1", "STR", kT0, 1.0, "app"), &streaming, &s);
  ApplyEvent(options, Event("c1", "STR", kT0 + 1, 1.0, "ussd"), &streaming, &s);
  ApplyEvent(options, Event("c1", "X", kT0 + 2, 1.0, ""), nullptr, &s);
  ASSERT_EQ(s.channels_size(), 3);
  EXPECT_EQ(s.channels(0).key(), "app");
  EXPECT_EQ(s.channels(1).key(), "unknown");
  EXPECT_EQ(s.channels(2).key(), "ussd");
  ASSERT_EQ(s.service_types_size(), 1);
  EXPECT_EQ(s.service_types(0).key(), "streaming");
  EXPECT_EQ(s.service_types(0).count(), 2u);
}

TEST(FeaturesTest, ItemTableIsBoundedAndKeepsFrequentItems) {
  FeatureOptions options;
  options.max_items_per_customer = 3;
  CustomerState s = NewCustomerState("c1");
  int64_t t = kT0;
  for (int i = 0; i < 5; ++i) ApplyEvent(options, Event("c1", "A", t++), nullptr, &s);
  for (int i = 0; i < 3; ++i) ApplyEvent(options, Event("c1", "B", t++), nullptr, &s);
  ApplyEvent(options, Event("c1", "C", t++), nullptr, &s);
  ApplyEvent(options, Event("c1", "D", t++), nullptr, &s);  // evicts C (count 1, oldest)
  ASSERT_EQ(s.items_size(), 3);
  EXPECT_NE(FindItem(s, "A"), nullptr);
  EXPECT_NE(FindItem(s, "B"), nullptr);
  EXPECT_EQ(FindItem(s, "C"), nullptr);
  EXPECT_NE(FindItem(s, "D"), nullptr);
  EXPECT_EQ(s.items_evicted(), 1u);
  for (int i = 1; i < s.items_size(); ++i) EXPECT_LT(s.items(i - 1).item_id(), s.items(i).item_id());
}

TEST(FeaturesTest, ItemStatsCountBuyersAndDecay) {
  FeatureOptions options;
  options.item_half_life_days = 1;  // item popularity decays at its own rate, not spend's
  options.spend_half_life_days = 100;
  ItemStats stats;
  stats.set_item_id("A");
  PurchaseEvent e = Event("c1", "A", kT0, 4.0);
  e.quantity = 2;
  e.unit_price = 2.0;
  ApplyItemEvent(options, e, true, &stats);
  ApplyItemEvent(options, Event("c1", "A", kT0 + kDay, 4.0), false, &stats);
  EXPECT_EQ(stats.count(), 2u);
  EXPECT_EQ(stats.customers(), 1u);
  EXPECT_DOUBLE_EQ(stats.revenue(), 8.0);
  EXPECT_NEAR(stats.decayed_count(), 1.5, 1e-12);
  EXPECT_DOUBLE_EQ(stats.last_price(), 4.0);
}

TEST(FeaturesTest, StateEncodingRoundTripsAndChecksVersion) {
  FeatureOptions options;
  CustomerState s = NewCustomerState("c1");
  ApplyEvent(options, Event("c1", "A", kT0, 3.5), nullptr, &s);
  std::string bytes = EncodeState(s);
  ASSERT_EQ(static_cast<uint8_t>(bytes[0]), kStateFormatVersion);
  CustomerState back;
  ASSERT_OK(DecodeState(bytes, &back));
  EXPECT_EQ(back.SerializeAsString(), s.SerializeAsString());

  std::string other = bytes;
  other[0] = static_cast<char>(kStateFormatVersion + 1);
  Status st = DecodeState(other, &back);
  EXPECT_TRUE(st.IsNotSupported()) << st.ToString();
  EXPECT_NE(st.message().find("format version 2"), std::string::npos) << st.message();

  EXPECT_TRUE(DecodeState("", &back).IsCorruption());
  std::string garbage = std::string(1, static_cast<char>(kStateFormatVersion)) + "\xff\xff\xff";
  EXPECT_TRUE(DecodeState(garbage, &back).IsCorruption());
}

}  // namespace
}  // namespace streamrec
