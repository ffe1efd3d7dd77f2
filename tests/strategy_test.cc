// Strategies, the recommend index and the blend: small hand-made cases with known answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "strategy_util.h"
#include "streamrec/als.h"
#include "streamrec/blended_recommender.h"
#include "streamrec/recommend_index.h"
#include "streamrec/state_store.h"
#include "streamrec/strategy.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

constexpr int64_t kDay = 86400000;
constexpr int64_t kT0 = 1700000000000;  // 2023-11-14

// A customer who bought `items` (one basket each, a day apart, ending at kT0 + days*kDay).
CustomerState Customer(const std::string& id, const std::vector<std::string>& items,
                       const std::string& segment = "", double price = 10, int days = 0) {
  CustomerState s = NewCustomerState(id);
  FeatureOptions f;
  int64_t t = kT0 + static_cast<int64_t>(days) * kDay - static_cast<int64_t>(items.size()) * kDay;
  for (const std::string& item : items) {
    ApplyEvent(f, testing::Purchase(id, item, t, price), nullptr, &s);
    t += kDay;
  }
  s.set_segment(segment);
  return s;
}

std::vector<std::string> Ids(const RecommendIndex& index, const std::vector<Candidate>& c) {
  std::vector<std::string> out;
  for (const Candidate& x : c) out.push_back(index.item_id(x.item));
  return out;
}

TEST(RecommendIndexTest, CooccurrenceFollowsItemSetsInAnyOrder) {
  RecommendIndex a, b;
  CustomerState c1 = Customer("c1", {"x", "y", "z"});
  CustomerState c2 = Customer("c2", {"x", "y"});
  CustomerState c2b = Customer("c2", {"x", "y", "w"});
  // a: c1, c2, then c2 grows; b: c2b directly, then c1.
  a.ObserveChange(nullptr, c1);
  a.ObserveChange(nullptr, c2);
  a.ObserveChange(&c2, c2b);
  b.ObserveChange(nullptr, c2b);
  b.ObserveChange(nullptr, c1);
  for (const RecommendIndex* idx : {&a, &b}) {
    EXPECT_EQ(idx->customers(), 2u);
    EXPECT_EQ(idx->buyers(idx->Find("x")), 2u);
    EXPECT_EQ(idx->buyers(idx->Find("w")), 1u);
    EXPECT_EQ(idx->cooccurrence(idx->Find("x"), idx->Find("y")), 2u);
    EXPECT_EQ(idx->cooccurrence(idx->Find("y"), idx->Find("x")), 2u);
    EXPECT_EQ(idx->cooccurrence(idx->Find("x"), idx->Find("z")), 1u);
    EXPECT_EQ(idx->cooccurrence(idx->Find("w"), idx->Find("z")), 0u);
    EXPECT_EQ(idx->cooccurrence(idx->Find("w"), idx->Find("y")), 1u);
  }
}

TEST(RecommendIndexTest, EvictedItemsLeaveTheirPairs) {
  RecommendIndex index;
  CustomerState before = Customer("c", {"a", "b", "c"});
  CustomerState after = before;
  after.mutable_items()->erase(after.mutable_items()->begin());  // "a" evicted
  index.ObserveChange(nullptr, before);
  index.ObserveChange(&before, after);
  EXPECT_EQ(index.Find("a"), kNoItem) << "an item nobody holds is unknown, as after a rebuild";
  EXPECT_EQ(index.cooccurrence(index.Find("a"), index.Find("b")), 0u);
  EXPECT_EQ(index.cooccurrence(index.Find("b"), index.Find("c")), 1u);
}

// Another partition's rows add to the observed customers' co-occurrence, as if its customers
// were observed here; a newer row of the same partition and item replaces the older one.
TEST(RecommendIndexTest, RemoteRowsAddUpAsIfTheirCustomersWereObserved) {
  CustomerState c1 = Customer("c1", {"x", "y", "z"});
  CustomerState c2 = Customer("c2", {"x", "y"});
  CustomerState c3 = Customer("c3", {"y", "w"});
  RecommendIndex all;  // every customer observed
  for (const auto* c : {&c1, &c2, &c3}) all.ObserveChange(nullptr, *c);
  RecommendIndexOptions shard_options;
  shard_options.track_changes = true;
  RecommendIndex mine, theirs(shard_options);  // c1 here; c2 and c3 in partition 7
  mine.ObserveChange(nullptr, c1);
  theirs.ObserveChange(nullptr, c2);
  theirs.ObserveChange(nullptr, c3);
  std::vector<uint32_t> changed = theirs.TakeChangedItems();
  EXPECT_EQ(changed.size(), 3u) << "x, y and w";
  EXPECT_TRUE(theirs.TakeChangedItems().empty()) << "each change is handed out once";
  for (int twice = 0; twice < 2; ++twice) {  // cumulative rows: the second time changes nothing
    for (uint32_t item : changed) {
      CooccurrenceRow decoded;
      const CooccurrenceRow row = theirs.Row(item, 0);
      ASSERT_OK(DecodeCooccurrenceRow(row.item_id, EncodeCooccurrenceRow(row), &decoded));
      mine.SetRemoteRow(7, decoded);
    }
  }
  EXPECT_EQ(mine.remote_rows(), 3u);
  EXPECT_EQ(mine.CooccurrenceTotals(), all.CooccurrenceTotals());
  for (const char* a : {"x", "y", "z", "w"}) {
    ASSERT_NE(mine.Find(a), kNoItem) << a;
    EXPECT_EQ(mine.buyers(mine.Find(a)), all.buyers(all.Find(a))) << a;
    for (const char* b : {"x", "y", "z", "w"}) {
      EXPECT_EQ(mine.cooccurrence(mine.Find(a), mine.Find(b)),
                all.cooccurrence(all.Find(a), all.Find(b)))
          << a << " " << b;
    }
  }
  // c3 leaves partition 7's w (an eviction): w's row goes, y's shrinks.
  CustomerState c3b = c3;
  c3b.mutable_items()->erase(c3b.mutable_items()->begin());  // "w"
  theirs.ObserveChange(&c3, c3b);
  all.ObserveChange(&c3, c3b);
  for (uint32_t item : theirs.TakeChangedItems()) mine.SetRemoteRow(7, theirs.Row(item, 0));
  EXPECT_EQ(mine.remote_rows(), 2u) << "a row with no buyers is removed";
  EXPECT_EQ(mine.Find("w"), kNoItem);
  EXPECT_EQ(mine.CooccurrenceTotals(), all.CooccurrenceTotals());
  EXPECT_EQ(mine.cooccurrence(mine.Find("x"), mine.Find("y")), 2u);
}

TEST(RecommendIndexTest, RowsKeepTheStrongestNeighboursAndDecodeOnlyWhenWellFormed) {
  RecommendIndex index;
  index.ObserveChange(nullptr, Customer("c1", {"a", "b", "c", "d"}));
  index.ObserveChange(nullptr, Customer("c2", {"a", "c"}));
  index.ObserveChange(nullptr, Customer("c3", {"a", "d"}));
  const CooccurrenceRow row = index.Row(index.Find("a"), 2);
  EXPECT_EQ(row.item_id, "a");
  EXPECT_EQ(row.buyers, 3u);
  // c and d (2 each) beat b (1); in item id order.
  ASSERT_EQ(row.neighbours.size(), 2u);
  EXPECT_EQ(row.neighbours[0], (std::pair<std::string, uint32_t>{"c", 2}));
  EXPECT_EQ(row.neighbours[1], (std::pair<std::string, uint32_t>{"d", 2}));
  EXPECT_EQ(index.Row(index.Find("a"), 0).neighbours.size(), 3u);

  CooccurrenceRow decoded;
  EXPECT_FALSE(DecodeCooccurrenceRow("a", "\xff\xff", &decoded).ok());
  v1::CooccurrenceRow bad;
  bad.set_buyers(1);
  bad.add_neighbour("c");
  bad.add_neighbour("b");
  bad.add_count(1);
  bad.add_count(1);
  Status s = DecodeCooccurrenceRow("a", bad.SerializeAsString(), &decoded);
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_NE(s.message().find("'b' out of order"), std::string::npos) << s.ToString();
  bad.clear_count();
  bad.add_count(1);
  s = DecodeCooccurrenceRow("a", bad.SerializeAsString(), &decoded);
  EXPECT_NE(s.message().find("2 neighbours but 1 counts"), std::string::npos) << s.ToString();
  v1::CooccurrenceRow self;
  self.set_buyers(1);
  self.add_neighbour("a");
  self.add_count(1);
  s = DecodeCooccurrenceRow("a", self.SerializeAsString(), &decoded);
  EXPECT_NE(s.message().find("its own neighbour"), std::string::npos) << s.ToString();
}

TEST(RecommendIndexTest, ExemplarPanelTracksSegmentsAndRelabels) {
  RecommendIndex index(RecommendIndexOptions{1.0});
  index.ObserveChange(nullptr, Customer("a", {"x", "y"}, "Champions", 100));
  index.ObserveChange(nullptr, Customer("b", {"x"}, "Lost", 5));
  ASSERT_NE(index.segment("Champions"), nullptr);
  EXPECT_EQ(index.segment("Champions")->exemplars, 1u);
  EXPECT_EQ(index.segment("Champions")->holders_of(index.Find("x")), 1u);
  EXPECT_DOUBLE_EQ(index.segment("Champions")->spend_per_customer(), 200.0);
  CustomerState moved = Customer("b", {"x"}, "Champions", 5);
  index.ObserveRelabel(moved);
  EXPECT_EQ(index.segment("Lost"), nullptr);
  EXPECT_EQ(index.segment("Champions")->exemplars, 2u);
  EXPECT_EQ(index.segment("Champions")->holders_of(index.Find("x")), 2u);
  EXPECT_EQ(index.holders(index.Find("x")).size(), 2u);
}

TEST(RecommendIndexTest, ExemplarSlotNamesTheCustomersPanelEntry) {
  RecommendIndex index(RecommendIndexOptions{1.0});
  index.ObserveChange(nullptr, Customer("a", {"x"}));
  index.ObserveChange(nullptr, Customer("b", {"y"}));
  const uint32_t b = index.ExemplarSlot("b");
  ASSERT_NE(b, RecommendIndex::kNoExemplar);
  EXPECT_EQ(index.exemplars()[b].customer_id, "b");
  EXPECT_EQ(index.ExemplarSlot("nobody"), RecommendIndex::kNoExemplar);
}

class StrategyTest : public ::testing::Test {
 protected:
  StrategyTest() : index_(RecommendIndexOptions{1.0}) {}
  void Add(const CustomerState& s) {
    index_.ObserveChange(nullptr, s);
    for (const auto& e : s.items()) {
      ItemStats& st = stats_[e.item_id()];
      st.set_item_id(e.item_id());
      st.set_count(st.count() + e.count());
      st.set_customers(st.customers() + 1);
      st.set_decayed_count(st.decayed_count() + e.count());
      st.set_last_time_ms(std::max(st.last_time_ms(), e.last_time_ms()));
      st.set_last_price(10);
    }
  }
  StrategyEnv Env(int64_t now = kT0) {
    StrategyEnv env;
    env.index = &index_;
    env.stats = &stats_;
    env.catalog = catalog_.size() > 0 ? &catalog_ : nullptr;
    env.now_ms = now;
    env.als = als_;
    return env;
  }
  std::vector<Candidate> Run(Strategy* s, const CustomerState& c, size_t limit = 10,
                             int64_t now = kT0) {
    StrategyEnv env = Env(now);
    s->BeginBatch(env);
    PrepareCustomerView(env, c, &view_);
    std::vector<Candidate> out;
    s->Score(env, view_, limit, &out);
    std::sort(out.begin(), out.end(), [&](const Candidate& a, const Candidate& b) {
      return a.score > b.score || (a.score == b.score && index_.item_id(a.item) <
                                                             index_.item_id(b.item));
    });
    return out;
  }
  RecommendIndex index_;
  ItemStatsTable stats_;
  Catalog catalog_;
  CustomerView view_;
  const AlsModel* als_ = nullptr;
};

TEST_F(StrategyTest, CooccurrenceRanksByCosine) {
  // y co-occurs with x in 3 of 3 customers; z in 1; w never.
  Add(Customer("a", {"x", "y"}));
  Add(Customer("b", {"x", "y", "z"}));
  Add(Customer("c", {"x", "y"}));
  Add(Customer("d", {"w"}));
  CustomerState me = Customer("me", {"x"});
  Add(me);
  StrategyOptions cosine;
  cosine.cooccurrence_alpha = 0.5;
  cosine.cooccurrence_trend = 0;
  auto s = NewCooccurrenceStrategy(cosine);
  auto out = Run(s.get(), me);
  std::vector<std::string> ids = Ids(index_, out);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], "y");
  EXPECT_EQ(ids[1], "z");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), "w"), 0);
  // cos(x, y) = 3 / sqrt(4 * 3); x bought a day ago: recency weight ~ 1.
  EXPECT_NEAR(out[0].score, 3 / std::sqrt(12.0), 0.02);
  std::string reason = s->Explain(Env(), view_, out[0]);
  EXPECT_NE(reason.find("75%"), std::string::npos) << reason;  // 3 of x's 4 buyers
}

TEST_F(StrategyTest, CooccurrenceTrendLiftsWhatSellsNow) {
  // "old" co-occurs with x twice, but both times 200 days ago; "new" once, yesterday.
  Add(Customer("a", {"x", "old"}, "", 10, -200));
  Add(Customer("c", {"x", "old"}, "", 10, -200));
  Add(Customer("b", {"x", "new"}));
  CustomerState me = Customer("me", {"x"});
  Add(me);
  StrategyOptions o;
  o.cooccurrence_alpha = 0.5;
  o.cooccurrence_trend = 0;
  auto plain = NewCooccurrenceStrategy(o);
  EXPECT_EQ(Ids(index_, Run(plain.get(), me))[0], "old");  // cos 2/sqrt(8) > 1/sqrt(4)
  o.cooccurrence_trend = 1;
  auto trend = NewCooccurrenceStrategy(o);
  auto out = Run(trend.get(), me);
  EXPECT_EQ(Ids(index_, out)[0], "new");
  // (recent + 0.5) / (buyers + 1): 1.5 / 2 for "new", ~0.5 / 3 for "old".
  EXPECT_NEAR(out[0].score, 1 / std::sqrt(4.0) * 0.75, 0.02);
}

TEST_F(StrategyTest, AlsRecommendsWithinTheTasteGroup) {
  // Two tastes: {a1..a4} and {b1..b4}; each customer holds three of their group's four items.
  std::vector<CustomerState> all;
  for (int g = 0; g < 2; ++g) {
    const std::string p = g == 0 ? "a" : "b";
    for (int c = 0; c < 8; ++c) {
      std::vector<std::string> items;
      for (int k = 0; k < 3; ++k) items.push_back(p + std::to_string(1 + (c + k) % 4));
      all.push_back(Customer(p + "cust" + std::to_string(c), items));
    }
  }
  CustomerState me = Customer("me", {"a1", "a2"});
  all.push_back(me);
  for (const CustomerState& c : all) Add(c);
  // Fit on the customers' item tables, as the pipeline's re-fit does.
  std::vector<std::string> item_ids = {"a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"};
  std::vector<AlsTriplet> cells;
  for (uint32_t u = 0; u < all.size(); ++u) {
    for (const auto& e : all[u].items()) {
      const auto it = std::find(item_ids.begin(), item_ids.end(), e.item_id());
      cells.push_back({u, static_cast<uint32_t>(it - item_ids.begin()),
                       static_cast<double>(e.count())});
    }
  }
  const uint32_t users = static_cast<uint32_t>(all.size());
  ASSERT_OK_AND_ASSIGN(m, AlsMatrixFromTriplets(users, item_ids, cells));
  AlsOptions o;
  o.factors = 2;
  o.iterations = 10;
  o.threads = 1;
  ASSERT_OK_AND_ASSIGN(model, AlsFit(m, o));

  auto s = NewAlsStrategy(StrategyOptions());
  EXPECT_TRUE(Run(s.get(), me).empty()) << "no model: no candidates";
  als_ = &model;
  auto out = Run(s.get(), me, 2);
  std::vector<std::string> ids = Ids(index_, out);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0].substr(0, 1), "a");
  EXPECT_EQ(ids[1].substr(0, 1), "a");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), "a1"), 0) << "owned items are not proposed";
  EXPECT_EQ(std::count(ids.begin(), ids.end(), "a2"), 0);
  // The affinity is the folded-in score, and the reason names it and an owned item.
  AlsWorkspace ws;
  AlsVector x;
  const std::vector<AlsInteraction> h = {{0, 1}, {1, 1}};
  model.FoldIn(h, &ws, &x);
  const uint32_t j = model.FindItem(ids[0]);
  EXPECT_NEAR(out[0].score, x.dot(model.item_factors().row(j).transpose()), 1e-6);
  const std::string reason = s->Explain(Env(), view_, out[0]);
  char affinity[64];
  std::snprintf(affinity, sizeof(affinity), "ALS affinity %.2f", out[0].score);
  EXPECT_NE(reason.find(affinity), std::string::npos) << reason;
  const bool names_owned = reason.find("like your a1") != std::string::npos ||
                           reason.find("like your a2") != std::string::npos;
  EXPECT_TRUE(names_owned) << reason;
  auto by_name = NewStrategyByName("als", RecommenderOptions(), nullptr);
  ASSERT_TRUE(by_name.ok());
  EXPECT_STREQ((*by_name)->name(), "als");
}

TEST_F(StrategyTest, SimilarCustomersComeFromHigherValueSegments) {
  Add(Customer("rich1", {"x", "y", "premium"}, "Champions", 100));
  Add(Customer("rich2", {"x", "premium"}, "Champions", 100));
  Add(Customer("poor1", {"x", "y", "cheap"}, "Lost", 1));
  CustomerState me = Customer("me", {"x", "y"}, "Lost", 1);
  Add(me);
  auto s = NewSimilarCustomersStrategy(StrategyOptions());
  auto out = Run(s.get(), me);
  std::vector<std::string> ids = Ids(index_, out);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], "premium");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), "cheap"), 0) << "Lost is not higher-value";
  std::string reason = s->Explain(Env(), view_, out[0]);
  EXPECT_NE(reason.find("100%"), std::string::npos) << reason;
  EXPECT_NE(reason.find("Champions"), std::string::npos) << reason;
}

TEST_F(StrategyTest, ReofferScoresDueItemsAndMarksThem) {
  // "milk" bought every 7 days (4 baskets), last 7 days before now; "tv" bought once.
  CustomerState me = NewCustomerState("me");
  FeatureOptions f;
  auto buy = [&](const std::string& item, int64_t t) {
    PurchaseEvent e;
    e.customer_id = "me";
    e.item_id = item;
    e.event_time_ms = t;
    e.quantity = 1;
    ApplyEvent(f, e, nullptr, &me);
  };
  for (int i = 0; i < 4; ++i) buy("milk", kT0 - (28 - 7 * i) * kDay);
  buy("tv", kT0 - 20 * kDay);
  Add(me);
  auto s = NewReofferStrategy(StrategyOptions());
  auto out = Run(s.get(), me);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(index_.item_id(out[0].item), "milk");
  EXPECT_TRUE(out[0].due);
  EXPECT_FALSE(out[1].due) << "bought once: no known cycle";
  std::string reason = s->Explain(Env(), view_, out[0]);
  // 4 lines by 1 buyer: (4 - 1 + 1) / (4 + 2) of its purchases are re-buys.
  EXPECT_EQ(reason,
            "you bought this 4 times, about every 7 days; last 7 days ago; 67% of its purchases "
            "are re-buys");
  // Two days after the last purchase it is not due yet.
  auto early = Run(s.get(), me, 10, kT0 - 5 * kDay);
  ASSERT_FALSE(early.empty());
  EXPECT_FALSE(std::any_of(early.begin(), early.end(), [](const Candidate& c) { return c.due; }));
}

TEST_F(StrategyTest, ReofferPrefersItemsEveryoneComesBackFor) {
  // "me" bought "bags" and "vase" once each, the same day. Five others bought bags 3 times
  // each (a refill), vase once each (a one-off): bags is re-offered first.
  CustomerState me = NewCustomerState("me");
  for (const char* item : {"bags", "vase"}) {
    ApplyEvent(FeatureOptions(), testing::Purchase("me", item, kT0 - kDay, std::nullopt), nullptr,
               &me);
  }
  for (int i = 0; i < 5; ++i) {
    Add(Customer("o" + std::to_string(i), {"bags", "vase", "bags", "bags"}));
  }
  Add(me);
  auto s = NewReofferStrategy(StrategyOptions());
  auto out = Run(s.get(), me);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(index_.item_id(out[0].item), "bags");
  // bags: 16 lines, 6 buyers -> 11/18; vase: 6 lines, 6 buyers -> 1/8.
  EXPECT_DOUBLE_EQ(out[0].evidence[3], 11.0 / 18.0);
  EXPECT_DOUBLE_EQ(out[1].evidence[3], 1.0 / 8.0);
  EXPECT_NEAR(out[0].score / out[1].score, std::sqrt((11.0 / 18.0) / (1.0 / 8.0)), 1e-9)
      << "otherwise equal: the ratio is the repeat shares' ratio ^ 0.5";
  EXPECT_EQ(s->Explain(Env(), view_, out[1]),
            "you bought this 1 day ago; 12% of its purchases are re-buys");
  // Exponent 0: the customer's own habit only, equal here.
  StrategyOptions own_only;
  own_only.reoffer_repeat_exponent = 0;
  auto plain = NewReofferStrategy(own_only);
  auto equal = Run(plain.get(), me);
  ASSERT_EQ(equal.size(), 2u);
  EXPECT_DOUBLE_EQ(equal[0].score, equal[1].score);
}

TEST_F(StrategyTest, UpsellOffersTheNextTierWithinThePriceRatio) {
  auto pack = [](const std::string& id, double quota_gb, double price) {
    CatalogItem item;
    item.item_id = id;
    item.name = id;
    item.service_type = "normal_internet";
    item.quota_mb = quota_gb * 1024;
    item.price = price;
    return item;
  };
  catalog_.Add(pack("p5", 5, 50));
  catalog_.Add(pack("p10", 10, 60));
  catalog_.Add(pack("p20", 20, 90));
  catalog_.Add(pack("p50", 50, 200));  // beyond 2x the usual price
  catalog_.Add(pack("p2", 2, 30));     // lower tier
  for (const char* id : {"p5", "p10", "p20", "p50", "p2"}) Add(Customer(std::string("o") + id, {id}));
  CustomerState me = Customer("me", {"p5", "p5"});
  me.set_segment("Loyal");
  auto s = NewUpsellStrategy(StrategyOptions(), &catalog_);
  auto out = Run(s.get(), me);
  ASSERT_EQ(Ids(index_, out), (std::vector<std::string>{"p10", "p20"}));
  EXPECT_EQ(s->Explain(Env(), view_, out[0]),
            "next tier of your usual p5 (5 GB): p10 10 GB for +20%");
  me.set_segment("Champions");  // big spenders: top of the ladder first
  out = Run(s.get(), me);
  ASSERT_EQ(Ids(index_, out), (std::vector<std::string>{"p20", "p10"}));
}

TEST_F(StrategyTest, PopularityTiltsTowardTheSegment) {
  for (int i = 0; i < 30; ++i) {
    Add(Customer("g" + std::to_string(i), {"mass"}, "Lost"));
  }
  for (int i = 0; i < 25; ++i) {
    Add(Customer("c" + std::to_string(i), {"niche"}, "Champions"));
  }
  CustomerState me = Customer("me", {}, "Champions");
  StrategyOptions o;
  o.popularity_segment_tilt = 0;
  auto flat = Run(NewPopularityStrategy(o).get(), me);
  ASSERT_EQ(Ids(index_, flat)[0], "mass");
  o.popularity_segment_tilt = 1;
  auto tilted = Run(NewPopularityStrategy(o).get(), me);
  ASSERT_EQ(Ids(index_, tilted)[0], "niche");
}

TEST_F(StrategyTest, PopularityRanksEachSegmentOnItsOwnWithinABatch) {
  for (int i = 0; i < 30; ++i) {
    Add(Customer("g" + std::to_string(i), {"common", "mass"}, "Lost"));
  }
  for (int i = 0; i < 25; ++i) {
    Add(Customer("c" + std::to_string(i), {"common", "niche"}, "Champions"));
  }
  const CustomerState champion = Customer("me1", {}, "Champions");
  const CustomerState lost = Customer("me2", {}, "Lost");
  const CustomerState elsewhere = Customer("me3", {"common"}, "Nowhere");  // untilted
  StrategyOptions o;
  o.popularity_segment_tilt = 1;
  StrategyEnv env = Env();
  env.skip_owned = true;
  // One strategy lists every customer of the batch, alternating segments; each list must be the
  // one a strategy fresh for that customer gives.
  auto shared = NewPopularityStrategy(o);
  shared->BeginBatch(env);
  std::map<std::string, std::string> first;
  for (int round = 0; round < 2; ++round) {
    for (const CustomerState* c : {&champion, &lost, &elsewhere}) {
      PrepareCustomerView(env, *c, &view_);
      std::vector<Candidate> got, want;
      shared->Score(env, view_, 10, &got);
      auto fresh = NewPopularityStrategy(o);
      fresh->BeginBatch(env);
      fresh->Score(env, view_, 10, &want);
      ASSERT_EQ(Ids(index_, got), Ids(index_, want)) << c->customer_id();
      for (size_t k = 0; k < got.size(); ++k) {
        EXPECT_EQ(got[k].score, want[k].score);
        EXPECT_EQ(shared->Explain(env, view_, got[k]), fresh->Explain(env, view_, want[k]));
      }
      ASSERT_FALSE(got.empty());
      first[c->customer_id()] = index_.item_id(got[0].item);
    }
  }
  EXPECT_EQ(first["me1"], "niche");
  EXPECT_EQ(first["me2"], "mass");
  EXPECT_EQ(first["me3"], "mass") << "owned items are skipped";
}

TEST_F(StrategyTest, AReusedViewForgetsThePreviousCustomer) {
  CatalogItem z;
  z.item_id = "z";
  z.name = "Zed";
  catalog_.Add(z);
  const CustomerState a = Customer("a", {"x", "y"});
  const CustomerState b = Customer("b", {"y", "z"});
  Add(a);
  Add(b);
  StrategyEnv env = Env();
  PrepareCustomerView(env, a, &view_);
  EXPECT_TRUE(view_.Owns(index_.Find("x")));
  PrepareCustomerView(env, b, &view_);
  EXPECT_FALSE(view_.Owns(index_.Find("x")));
  EXPECT_TRUE(view_.Owns(index_.Find("y")));
  EXPECT_TRUE(view_.Owns(index_.Find("z")));
  ASSERT_EQ(view_.owned_catalog.size(), 2u);  // parallel to the item table: y, z
  EXPECT_EQ(view_.owned_catalog[0], nullptr);
  EXPECT_EQ(view_.owned_catalog[1], catalog_.Find("z"));
  // The per-batch table gives what the catalogue gives.
  std::vector<const CatalogItem*> table;
  IndexCatalog(index_, &catalog_, &table);
  env.catalog_items = table;
  EXPECT_EQ(env.CatalogItemOf(index_.Find("z")), catalog_.Find("z"));
  EXPECT_EQ(env.CatalogItemOf(index_.Find("x")), nullptr);
}

TEST(StrategyUtilTest, BestItemsKeepsWhatKeepBestKeeps) {
  // 40 items whose dense ids (first sight) do not follow their ids, scored with many ties.
  RecommendIndex index;
  for (int c = 0; c < 4; ++c) {
    std::vector<std::string> items;
    for (int k = 0; k < 10; ++k) items.push_back("i" + std::to_string((37 * (10 * c + k)) % 40));
    index.ObserveChange(nullptr, Customer("c" + std::to_string(c), items));
  }
  ASSERT_EQ(index.item_count(), 40u);
  std::mt19937 rng(7);
  std::vector<double> score(index.item_count());
  for (double& x : score) x = 0.5 * static_cast<double>(rng() % 5);
  for (size_t limit : {0, 1, 3, 10, 39, 40, 100}) {
    std::vector<Candidate> all;
    BestItems best, filtered;
    best.Reset(index, limit);
    filtered.Reset(index, limit);
    for (uint32_t i = 0; i < index.item_count(); ++i) {
      Candidate c;
      c.item = i;
      c.score = score[i];
      all.push_back(c);
      best.Offer(score[i], i);
      if (filtered.MayKeep(score[i])) filtered.Offer(score[i], i);
    }
    KeepBest(index, limit, &all);
    std::vector<uint32_t> want, got, got_filtered;
    for (const Candidate& c : all) want.push_back(c.item);
    for (const ScoredItem& r : best.Take()) got.push_back(r.item);
    for (const ScoredItem& r : filtered.Take()) got_filtered.push_back(r.item);
    EXPECT_EQ(got, want) << "limit " << limit;
    EXPECT_EQ(got_filtered, want) << "limit " << limit;
  }
}

TEST(BlendedRecommenderTest, AListDoesNotDependOnTheListsBeforeIt) {
  // Three taste groups of five items (a catalogue with prices and categories, so upsell and the
  // rules have work); customers of both segments hold three items of their group, some one more.
  Catalog catalog;
  std::vector<CustomerState> all;
  ItemStatsTable stats;
  for (int g = 0; g < 3; ++g) {
    for (int i = 0; i < 5; ++i) {
      CatalogItem item;
      item.item_id = std::string(1, static_cast<char>('a' + g)) + std::to_string(i);
      item.name = "item " + item.item_id;
      item.service_type = "group" + std::to_string(g);
      item.price = 10.0 + 5 * i;
      catalog.Add(item);
    }
  }
  for (int g = 0; g < 3; ++g) {
    for (int c = 0; c < 10; ++c) {
      const std::string p(1, static_cast<char>('a' + g));
      std::vector<std::string> items;
      for (int k = 0; k < 3; ++k) items.push_back(p + std::to_string((c + k) % 5));
      if (c % 3 == 0) items.push_back(std::string(1, static_cast<char>('a' + (g + 1) % 3)) + "0");
      all.push_back(Customer(p + "cust" + std::to_string(c), items,
                             c % 2 == 0 ? "Champions" : "Loyal", 10.0 + c, c % 4));
    }
  }
  for (const CustomerState& s : all) {
    for (const auto& e : s.items()) {
      ItemStats& st = stats[e.item_id()];
      st.set_item_id(e.item_id());
      st.set_count(st.count() + e.count());
      st.set_decayed_count(st.decayed_count() + e.count());
      st.set_last_time_ms(std::max(st.last_time_ms(), e.last_time_ms()));
      st.set_last_price(10);
    }
  }
  RecommenderOptions options;
  options.exemplar_share = 1.0;
  options.als_factors = 4;
  options.als_iterations = 5;
  options.als_threads = 1;
  auto make = [&] {
    auto r = NewBlendedRecommender(options, &catalog);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::unique_ptr<Recommender> rec = std::move(r).value();
    for (const CustomerState& s : all) rec->ObserveChange(nullptr, s);
    WriteSet writes;
    EXPECT_OK(rec->RefitModel(nullptr, all, &writes));
    rec->BeginBatch(stats, kT0);
    return rec;
  };
  auto same = [](const std::vector<Recommendation>& x, const std::vector<Recommendation>& y) {
    if (x.size() != y.size()) return false;
    for (size_t k = 0; k < x.size(); ++k) {
      if (x[k].item_id != y[k].item_id || x[k].score != y[k].score ||
          x[k].strategy != y[k].strategy || x[k].reason != y[k].reason) {
        return false;
      }
    }
    return true;
  };
  // Each customer's list from a recommender that lists nobody else ...
  std::vector<std::vector<Recommendation>> alone(all.size());
  std::set<std::string> strategies;
  for (size_t c = 0; c < all.size(); ++c) {
    make()->Recommend(all[c], &alone[c]);
    for (const Recommendation& r : alone[c]) strategies.insert(r.strategy);
  }
  EXPECT_GE(strategies.size(), 3u);
  // ... equals the list one recommender gives it after other customers', in either order.
  std::unique_ptr<Recommender> shared = make();
  std::vector<Recommendation> list;
  for (size_t c = 0; c < all.size(); ++c) {
    shared->Recommend(all[c], &list);
    EXPECT_TRUE(same(list, alone[c])) << all[c].customer_id();
  }
  for (size_t c = all.size(); c-- > 0;) {
    shared->Recommend(all[c], &list);
    EXPECT_TRUE(same(list, alone[c])) << all[c].customer_id();
  }
  // ... and equals what RecommendMany gives it on several threads (each customer four times,
  // enough lists for three lanes), batch after batch.
  options.threads = 3;
  std::unique_ptr<Recommender> lanes = make();
  std::vector<const CustomerState*> many;
  for (int round = 0; round < 4; ++round) {
    for (const CustomerState& s : all) many.push_back(&s);
  }
  for (int batch = 0; batch < 2; ++batch) {
    std::vector<std::vector<Recommendation>> lists;
    lanes->RecommendMany(many, &lists);
    ASSERT_EQ(lists.size(), many.size());
    for (size_t i = 0; i < many.size(); ++i) {
      EXPECT_TRUE(same(lists[i], alone[i % all.size()])) << "batch " << batch << " list " << i;
    }
    lanes->BeginBatch(stats, kT0);
  }
}

// The blend's rules, one at a time, on lists of known candidates: global popularity ranks
// p0..p8 by their buyers (20 - i), "me" owns p0 and pays 10 per line. p1 costs 100, p2 is
// offered on the web only, p3's offer window closed yesterday, p5..p7 share a category, p8 is
// not recommendable.
class BlendRulesTest : public ::testing::Test {
 protected:
  BlendRulesTest() {
    for (int i = 0; i < 9; ++i) {
      CatalogItem item;
      item.item_id = "p" + std::to_string(i);
      item.price = i == 1 ? 100 : 10;
      if (i == 2) item.channels = {"web"};
      if (i == 3) item.active_to_ms = kT0 - kDay;
      if (i >= 5 && i <= 7) item.service_type = "cat";
      item.recommendable = i != 8;
      catalog_.Add(item);
      for (int c = 0; c < 20 - i; ++c) {
        customers_.push_back(Customer("c" + std::to_string(i) + "_" + std::to_string(c),
                                      {item.item_id}));
      }
      ItemStats& st = stats_[item.item_id];
      st.set_item_id(item.item_id);
      st.set_count(20 - i);
      st.set_customers(20 - i);
      st.set_decayed_count(20 - i);
      st.set_last_time_ms(kT0);
      st.set_last_price(10);
    }
    base_.weights = "popularity=1";
    base_.segment_weights = "";
    base_.strategies.popularity_segment_tilt = 0;
    base_.channel_eligibility = false;
    base_.exemplar_share = 1.0;
  }
  std::vector<Recommendation> Recommend(const RecommenderOptions& o, const CustomerState& me) {
    auto made = NewBlendedRecommender(o, &catalog_);
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    if (!made.ok()) return {};
    std::unique_ptr<Recommender> rec = std::move(made).value();
    for (const CustomerState& s : customers_) rec->ObserveChange(nullptr, s);
    rec->ObserveChange(nullptr, me);
    rec->BeginBatch(stats_, kT0);
    std::vector<Recommendation> out;
    rec->Recommend(me, &out);
    return out;
  }
  std::string List(const RecommenderOptions& o) {
    std::string ids;
    for (const Recommendation& r : Recommend(o, Customer("me", {"p0"}))) {
      ids += (ids.empty() ? "" : " ") + r.item_id;
    }
    return ids;
  }
  Catalog catalog_;
  ItemStatsTable stats_;
  std::vector<CustomerState> customers_;
  RecommenderOptions base_;
};

TEST_F(BlendRulesTest, EachRuleTakesOutWhatItNames) {
  // Always out: p0 (owned), p3 (outside its window), p8 (not recommendable).
  EXPECT_EQ(List(base_), "p1 p2 p4 p5 p6 p7");
  RecommenderOptions o = base_;
  o.exclude_owned = false;
  EXPECT_EQ(List(o), "p0 p1 p2 p4 p5 p6 p7");
  o = base_;
  o.price_cap_ratio = 2;  // at most 2 x 10
  EXPECT_EQ(List(o), "p2 p4 p5 p6 p7");
  o = base_;
  o.channel_eligibility = true;  // me buys on channel "unknown"; p2 is web-only
  EXPECT_EQ(List(o), "p1 p4 p5 p6 p7");
  o = base_;
  o.exclude_items = "p4, p6";
  EXPECT_EQ(List(o), "p1 p2 p5 p7");
  o = base_;
  o.max_per_category = 1;
  EXPECT_EQ(List(o), "p1 p2 p4 p5");
  o = base_;
  o.list_length = 3;
  EXPECT_EQ(List(o), "p1 p2 p4");
}

TEST_F(BlendRulesTest, OwnedItemsComeBackOnlyWhenDue) {
  // "milk" every 7 days, last 7 days ago (due); "tv" once, 20 days ago (not due).
  CustomerState me = NewCustomerState("me");
  for (int i = 0; i < 4; ++i) {
    ApplyEvent(FeatureOptions(), testing::Purchase("me", "milk", kT0 - (28 - 7 * i) * kDay),
               nullptr, &me);
  }
  ApplyEvent(FeatureOptions(), testing::Purchase("me", "tv", kT0 - 20 * kDay), nullptr, &me);
  RecommenderOptions o = base_;
  o.weights = "reoffer=1,popularity=1";
  auto ids = [&](const RecommenderOptions& options) {
    std::set<std::string> out;
    for (const Recommendation& r : Recommend(options, me)) out.insert(r.item_id);
    return out;
  };
  EXPECT_EQ(ids(o).count("milk"), 1u);
  EXPECT_EQ(ids(o).count("tv"), 0u);
  o.reoffer_due_exempt = false;
  EXPECT_EQ(ids(o).count("milk"), 0u);
  o.exclude_owned = false;
  EXPECT_EQ(ids(o).count("tv"), 1u);
}

TEST_F(BlendRulesTest, BasketCoverageListsWhatTheListedItemsDoNotCover) {
  // x and y are always bought together (baskets 1, 3, 5), z on its own (2, 4): re-offer ranks
  // x and y first, but y adds nothing to "will the customer buy one of these" once x is listed.
  CustomerState me = NewCustomerState("me");
  for (int b = 0; b < 5; ++b) {
    const int64_t t = kT0 - (30 - 5 * b) * kDay;
    for (const char* item : b % 2 == 0 ? std::vector<const char*>{"x", "y"}
                                       : std::vector<const char*>{"z"}) {
      ApplyEvent(FeatureOptions(), testing::Purchase("me", item, t), nullptr, &me);
    }
  }
  RecommenderOptions o = base_;
  o.weights = "reoffer=1";
  o.exclude_owned = false;
  o.list_length = 2;
  auto ids = [&](double coverage) {
    o.basket_coverage = coverage;
    std::vector<Recommendation> list = Recommend(o, me);
    std::string out;
    for (size_t k = 0; k < list.size(); ++k) {
      out += (out.empty() ? "" : " ") + list[k].item_id;
      if (k > 0) {
        EXPECT_LE(list[k].score, list[k - 1].score) << "coverage " << coverage;
      }
    }
    return out;
  };
  EXPECT_EQ(ids(0), "x y");
  EXPECT_EQ(ids(0.5), "x z");
  EXPECT_EQ(ids(1), "x z");
  // Items the customer never bought are not affected: a cross-sell list is the same with and
  // without coverage.
  EXPECT_EQ(List(base_), [&] {
    RecommenderOptions c = base_;
    c.basket_coverage = 1;
    return List(c);
  }());
}

TEST(StrategyWeightsTest, ParsesAndNamesBadParts) {
  StrategyWeights w;
  ASSERT_OK(ParseStrategyWeights("recommend.weights", "cooccurrence=1, popularity=0.5", &w));
  EXPECT_EQ(w.size(), 2u);
  EXPECT_DOUBLE_EQ(w["popularity"], 0.5);
  Status s = ParseStrategyWeights("recommend.weights", "cooc=1", &w);
  EXPECT_NE(s.message().find("'cooc=1'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("recommend.weights"), std::string::npos) << s.message();
  s = ParseStrategyWeights("recommend.weights", "popularity=-1", &w);
  EXPECT_FALSE(s.ok());
  std::map<std::string, StrategyWeights> seg;
  ASSERT_OK(ParseSegmentWeights("k", "New:popularity=1;Champions:upsell=2,similar=1", &seg));
  EXPECT_DOUBLE_EQ(seg["Champions"]["upsell"], 2);
  EXPECT_FALSE(ParseSegmentWeights("k", "popularity=1", &seg).ok());
}

}  // namespace
}  // namespace streamrec

namespace streamrec {
namespace {

TEST(RecommendIndexTest, ExemplarShareIsRespected) {
  RecommendIndex index(RecommendIndexOptions{0.05});
  int in = 0;
  for (int i = 0; i < 20000; ++i) in += index.IsExemplar("customer-" + std::to_string(i));
  EXPECT_NEAR(in / 20000.0, 0.05, 0.01);
  for (int i = 0; i < 200; ++i) {
    index.ObserveChange(nullptr, CustomerState(NewCustomerState("c" + std::to_string(i))));
  }
}

TEST(RecommendIndexTest, ExemplarCapKeepsTheLowestHashesWhateverTheOrder) {
  RecommendIndexOptions o;
  o.exemplar_share = 1.0;
  o.max_exemplars = 10;
  std::vector<CustomerState> customers;
  for (int i = 0; i < 200; ++i) {
    customers.push_back(Customer("c" + std::to_string(i), {"x" + std::to_string(i % 7)}, "Loyal"));
  }
  auto live = [](const RecommendIndex& index) {
    std::set<std::string> out;
    for (const auto& e : index.exemplars()) {
      if (e.live) out.insert(e.customer_id);
    }
    return out;
  };
  RecommendIndex forward(o), backward(o);
  for (const CustomerState& c : customers) forward.ObserveChange(nullptr, c);
  for (size_t i = customers.size(); i-- > 0;) backward.ObserveChange(nullptr, customers[i]);
  std::vector<std::pair<double, std::string>> by_hash;
  for (const CustomerState& c : customers) {
    by_hash.emplace_back(UniformHash(c.customer_id(), "exemplar"), c.customer_id());
  }
  std::sort(by_hash.begin(), by_hash.end());
  std::set<std::string> lowest;
  for (int i = 0; i < 10; ++i) lowest.insert(by_hash[i].second);
  EXPECT_EQ(live(forward), lowest);
  EXPECT_EQ(live(backward), lowest);
  ASSERT_NE(forward.segment("Loyal"), nullptr);
  EXPECT_EQ(forward.segment("Loyal")->exemplars, 10u);
  EXPECT_LE(forward.exemplars().size(), 20u) << "evicted slots are reused";
  // An evicted customer does not come back when it buys again; a kept one stays.
  EXPECT_FALSE(forward.IsExemplar(by_hash[10].second));
  EXPECT_TRUE(forward.IsExemplar(by_hash[0].second));
  size_t held = 0;
  for (uint32_t item = 0; item < forward.item_count(); ++item) held += forward.holders(item).size();
  EXPECT_EQ(held, 10u) << "only live exemplars are item holders";
}

}  // namespace
}  // namespace streamrec
