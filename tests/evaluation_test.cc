// Prequential evaluation: the protocol (what a list may see, which baskets are scored, how hits
// are counted), each baseline on hand-made cases with known answers, the streamrec adapter and
// its recs-out lines, the command line, and a slice of the real UCI Online Retail data.
#include "streamrec/evaluation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "streamrec/blended_recommender.h"
#include "streamrec/config.h"
#include "streamrec/segmenter.h"
#include "streamrec/time_util.h"
#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using testing::TempDir;

constexpr char kHeader[] = "customer_id,item_id,timestamp,quantity,unit_price,amount,channel\n";
constexpr int64_t kDay = 86400000;
constexpr int64_t kT0 = 1293840000000;  // 2011-01-01T00:00:00Z

// One CSV line: customer, item, minutes after 2011-01-01T10:00:00, quantity.
std::string Line(const std::string& customer, const std::string& item, int minute,
                 int quantity = 1) {
  char time[32];
  std::snprintf(time, sizeof(time), "2011-01-01T%02d:%02d:00", 10 + minute / 60, minute % 60);
  return customer + "," + item + "," + time + "," + std::to_string(quantity) + ",1.5," +
         std::to_string(1.5 * quantity) + ",\n";
}

int64_t MinuteMs(int minute) { return kT0 + 10 * 3600000LL + minute * 60000LL; }

std::string WriteEvents(const TempDir& dir, const std::vector<std::string>& lines) {
  std::string content = kHeader;
  for (const std::string& l : lines) content += l;
  std::string path = dir.File("events.csv");
  testing::WriteFile(path, content);
  return path;
}

StatusOr<EvaluationReport> Evaluate(const std::string& path, std::vector<ListProvider*> providers,
                                    const EvaluationOptions& options = {},
                                    const ListSink& sink = nullptr) {
  return RunEvaluation(options, path, providers, sink, nullptr);
}

// Logs every call the harness makes, and offers the same fixed list to everyone.
class RecordingProvider : public ListProvider {
 public:
  explicit RecordingProvider(std::vector<std::string> list = {}) : list_(std::move(list)) {}
  std::string name() const override { return "recording"; }
  void AdvanceTo(int64_t now_ms) override {
    log.push_back("advance " + std::to_string((now_ms - MinuteMs(0)) / 60000));
  }
  void Recommend(uint32_t customer, std::vector<Recommendation>* out) override {
    log.push_back("recommend " + customers_.at(customer));
    out->clear();
    for (const std::string& item : list_) out->push_back(Recommendation{item, 1.0, "fixed", ""});
  }
  void Observe(const PurchaseEvent& event, const EventIds& ids) override {
    customers_[ids.customer] = event.customer_id;
    log.push_back("observe " + event.customer_id + " " + event.item_id +
                  (ids.new_item_for_customer ? " new" : " again"));
  }
  std::vector<std::string> log;

 private:
  std::vector<std::string> list_;
  std::map<uint32_t, std::string> customers_;
};

TEST(EvaluationTest, CallsProvidersInProtocolOrder) {
  TempDir dir;
  std::string path = WriteEvents(dir, {Line("A", "x", 0), Line("B", "y", 0),  // first baskets
                                       Line("A", "z", 1), Line("A", "x", 1),  // A returns
                                       Line("B", "y", 2), Line("C", "w", 2)});
  RecordingProvider p;
  ASSERT_OK_AND_ASSIGN(report, Evaluate(path, {&p}));
  // Lists are asked before the events of their time are observed, and only of returning
  // customers; C's first basket is not scored.
  const std::vector<std::string> expected = {
      "advance 0", "observe A x new", "observe B y new",                         //
      "advance 1", "recommend A",     "observe A z new",   "observe A x again",  //
      "advance 2", "recommend B",     "observe B y again", "observe C w new"};
  EXPECT_THAT(p.log, ElementsAreArray(expected));
  EXPECT_EQ(report.events, 6u);
  EXPECT_EQ(report.customers, 3u);
  EXPECT_EQ(report.items, 4u);
  EXPECT_EQ(report.baskets, 5u);
  EXPECT_EQ(report.baskets_scored, 2u);
  EXPECT_EQ(report.providers.at(0).baskets_scored, 2u);
  EXPECT_EQ(report.first_time_ms, MinuteMs(0));
  EXPECT_EQ(report.last_time_ms, MinuteMs(2));
}

TEST(EvaluationTest, LinesOfOneTimestampAreOneBasket) {
  TempDir dir;
  // Two invoice lines of A at minute 1 (and a duplicate line): one basket, scored once.
  std::string path = WriteEvents(
      dir, {Line("A", "x", 0), Line("A", "y", 1), Line("A", "z", 1), Line("A", "z", 1)});
  RecordingProvider p({"z"});
  ASSERT_OK_AND_ASSIGN(report, Evaluate(path, {&p}));
  EXPECT_EQ(report.baskets, 2u);
  EXPECT_EQ(report.baskets_scored, 1u);
  EXPECT_EQ(report.providers[0].hits_all, 1u);
  EXPECT_EQ(report.providers[0].hits_new, 1u);
}

TEST(EvaluationTest, CountsHitsOnAllAndOnNeverBoughtItems) {
  TempDir dir;
  std::string path =
      WriteEvents(dir, {Line("A", "x", 0), Line("A", "x", 1), Line("A", "y", 1),  // x: owned hit
                        Line("A", "z", 2),                                        // z: new hit
                        Line("A", "q", 3)});                                      // miss
  RecordingProvider p({"x", "z"});
  ASSERT_OK_AND_ASSIGN(report, Evaluate(path, {&p}));
  const ProviderReport& r = report.providers[0];
  EXPECT_EQ(r.baskets_scored, 3u);
  EXPECT_EQ(r.hits_all, 2u);
  EXPECT_EQ(r.hits_new, 1u);
  EXPECT_DOUBLE_EQ(r.hr_all, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.hr_new, 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.mean_list_length, 2.0);
}

TEST(EvaluationTest, ListsAreCutAtK) {
  TempDir dir;
  std::string path = WriteEvents(dir, {Line("A", "x", 0), Line("A", "c", 1)});
  RecordingProvider p({"a", "b", "c"});
  EvaluationOptions options;
  options.k = 2;
  ASSERT_OK_AND_ASSIGN(report, Evaluate(path, {&p}, options));
  EXPECT_EQ(report.providers[0].hits_all, 0u) << "c is third, beyond k";
  EXPECT_DOUBLE_EQ(report.providers[0].mean_list_length, 2.0);
}

TEST(EvaluationTest, SameTimestampEventsOfOthersAreNotVisible) {
  TempDir dir;
  // At minute 1, B and C buy x together with A: A's list may not know it.
  std::string path = WriteEvents(dir, {Line("A", "p", 0), Line("B", "x", 1), Line("C", "x", 1),
                                       Line("A", "x", 1), Line("A", "x", 2)});
  auto popularity = NewWindowPopularityProvider({}, /*exclude_owned=*/false);
  ASSERT_OK_AND_ASSIGN(report, Evaluate(path, {popularity.get()}));
  const ProviderReport& r = report.providers[0];
  EXPECT_EQ(r.baskets_scored, 2u);
  EXPECT_EQ(r.hits_all, 1u) << "minute 1 misses, minute 2 (x now known) hits";
  EXPECT_EQ(r.hits_new, 0u) << "at minute 2 A already owns x";
}

TEST(EvaluationTest, RejectsEventsOutOfTimeOrder) {
  TempDir dir;
  std::string path = WriteEvents(dir, {Line("A", "x", 5), Line("B", "y", 4)});
  RecordingProvider p;
  auto report = Evaluate(path, {&p});
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(report.status().IsInvalidArgument());
  EXPECT_THAT(report.status().message(), HasSubstr("time order"));
  EXPECT_THAT(report.status().message(), HasSubstr("record 2"));
}

TEST(EvaluationTest, SkipsAndCountsInvalidRecords) {
  TempDir dir;
  std::string path = WriteEvents(
      dir, {Line("A", "x", 0), "A,y,2011-01-01T10:01:00,abc,1,1,\n", Line("A", "x", 2)});
  RecordingProvider p({"x"});
  ASSERT_OK_AND_ASSIGN(report, Evaluate(path, {&p}));
  EXPECT_EQ(report.records, 3u);
  EXPECT_EQ(report.invalid, 1u);
  EXPECT_EQ(report.events, 2u);
  EXPECT_EQ(report.providers[0].hits_all, 1u);
}

TEST(EvaluationTest, RejectsBadOptionsAndInput) {
  TempDir dir;
  RecordingProvider p;
  EvaluationOptions options;
  options.k = 0;
  std::string path = WriteEvents(dir, {Line("A", "x", 0)});
  auto bad_k = Evaluate(path, {&p}, options);
  ASSERT_FALSE(bad_k.ok());
  EXPECT_THAT(bad_k.status().message(), HasSubstr("k 0"));
  EXPECT_FALSE(ParseEvaluationMode("upsell").ok());
  ASSERT_OK_AND_ASSIGN(mode, ParseEvaluationMode("next-purchase"));
  EXPECT_EQ(mode, EvaluationMode::kNextPurchase);

  testing::WriteFile(dir.File("no_item.csv"), "customer_id,timestamp\nA,2011-01-01T10:00:00\n");
  auto no_item = Evaluate(dir.File("no_item.csv"), {&p});
  ASSERT_FALSE(no_item.ok());
  EXPECT_TRUE(no_item.status().IsInvalidArgument());
  EXPECT_THAT(no_item.status().message(), HasSubstr("item_id"));
  EXPECT_FALSE(Evaluate(dir.File("missing.csv"), {&p}).ok());
}

// Drives a provider directly, numbering customers and items as the harness does.
class Feed {
 public:
  explicit Feed(ListProvider* provider) : provider_(provider) {}
  void Buy(const std::string& customer, const std::string& item, int64_t time_ms,
           double quantity = 1) {
    PurchaseEvent e;
    e.customer_id = customer;
    e.item_id = item;
    e.event_time_ms = time_ms;
    e.quantity = quantity;
    EventIds ids;
    ids.customer = Number(&customers_, customer);
    ids.item = Number(&items_, item);
    ids.new_item_for_customer = owned_.insert(customer + "\x1f" + item).second;
    provider_->Observe(e, ids);
  }
  // The list of `customer` with everything before `now_ms` observed.
  std::vector<std::string> ListAt(const std::string& customer, int64_t now_ms,
                                  std::vector<double>* scores = nullptr) {
    provider_->AdvanceTo(now_ms);
    std::vector<Recommendation> list;
    provider_->Recommend(customers_.at(customer), &list);
    std::vector<std::string> ids;
    for (const auto& r : list) {
      ids.push_back(r.item_id);
      if (scores != nullptr) scores->push_back(r.score);
      EXPECT_FALSE(r.strategy.empty());
      EXPECT_FALSE(r.reason.empty());
    }
    return ids;
  }

 private:
  static uint32_t Number(std::unordered_map<std::string, uint32_t>* index, const std::string& id) {
    return index->try_emplace(id, static_cast<uint32_t>(index->size())).first->second;
  }
  ListProvider* provider_;
  std::unordered_map<std::string, uint32_t> customers_, items_;
  std::set<std::string> owned_;
};

EvaluationOptions WithK(int k) {
  EvaluationOptions options;
  options.k = k;
  return options;
}

TEST(EvaluationBaselineTest, PopularityCountsLinesInTheTrailingWindow) {
  auto p = NewWindowPopularityProvider(WithK(3), /*exclude_owned=*/false);
  EXPECT_EQ(p->name(), "popularity-30d");
  Feed feed(p.get());
  for (int i = 0; i < 4; ++i) feed.Buy("U" + std::to_string(i), "old", kT0);
  feed.Buy("A", "b", kT0 + 20 * kDay);
  feed.Buy("B", "a", kT0 + 20 * kDay);
  feed.Buy("A", "c", kT0 + 21 * kDay, /*quantity=*/100);  // lines, not quantity
  feed.Buy("C", "c", kT0 + 21 * kDay);
  // Window [t - 30 days, t): "old" is in at exactly 30 days, out one millisecond later.
  std::vector<double> scores;
  EXPECT_THAT(feed.ListAt("A", kT0 + 30 * kDay, &scores), ElementsAre("old", "c", "a"));
  EXPECT_THAT(scores, ElementsAre(4, 2, 1));
  EXPECT_THAT(feed.ListAt("A", kT0 + 30 * kDay + 1), ElementsAre("c", "a", "b"))
      << "ties by item id";
  EXPECT_THAT(feed.ListAt("A", kT0 + 60 * kDay), ElementsAre());
}

TEST(EvaluationBaselineTest, PopularityNewSkipsOwnedItems) {
  auto p = NewWindowPopularityProvider(WithK(2), /*exclude_owned=*/true);
  EXPECT_EQ(p->name(), "popularity-30d-new");
  Feed feed(p.get());
  for (int i = 0; i < 3; ++i) feed.Buy("U" + std::to_string(i), "top", kT0);
  for (int i = 0; i < 2; ++i) feed.Buy("U" + std::to_string(i), "second", kT0);
  feed.Buy("U0", "third", kT0);
  feed.Buy("A", "top", kT0);
  EXPECT_THAT(feed.ListAt("A", kT0 + 1), ElementsAre("second", "third"));
  EXPECT_THAT(feed.ListAt("U1", kT0 + 1), ElementsAre("third"));
}

TEST(EvaluationBaselineTest, PopularityRankingDeepensForCustomersOwningTheTop) {
  // A owns the 100 most popular items: the list must come from beyond them.
  auto p = NewWindowPopularityProvider(WithK(2), /*exclude_owned=*/true);
  Feed feed(p.get());
  for (int item = 0; item < 102; ++item) {
    char id[8];
    std::snprintf(id, sizeof(id), "i%03d", item);
    for (int n = 0; n < 200 - item; ++n) feed.Buy("U" + std::to_string(n), id, kT0);
    if (item < 100) feed.Buy("A", id, kT0);
  }
  EXPECT_THAT(feed.ListAt("A", kT0 + 1), ElementsAre("i100", "i101"));
}

TEST(EvaluationBaselineTest, OwnMostBoughtRanksByLinesThenRecency) {
  auto p = NewOwnMostBoughtProvider(WithK(3));
  EXPECT_EQ(p->name(), "own-most-bought");
  Feed feed(p.get());
  feed.Buy("A", "d", kT0, /*quantity=*/500);  // quantity does not count
  for (int i = 0; i < 3; ++i) feed.Buy("A", "a", kT0 + i);
  feed.Buy("A", "b", kT0 + kDay);
  feed.Buy("A", "c", kT0 + 2 * kDay);
  feed.Buy("B", "z", kT0 + 2 * kDay);
  std::vector<double> scores;
  EXPECT_THAT(feed.ListAt("A", kT0 + 3 * kDay, &scores), ElementsAre("a", "c", "b"));
  EXPECT_THAT(scores, ElementsAre(3, 1, 1));
  EXPECT_THAT(feed.ListAt("B", kT0 + 3 * kDay), ElementsAre("z"));
}

TEST(EvaluationBaselineTest, CooccurrenceSumsCosineOverOwnedItems) {
  auto p = NewCooccurrenceProvider(WithK(10));
  EXPECT_EQ(p->name(), "cooccurrence-cosine");
  Feed feed(p.get());
  // Buyers: a {U1, U2, U3, X}, b {U1, U2, Y}, c {U3, U4}, d {Y}.
  feed.Buy("U1", "a", kT0);
  feed.Buy("U1", "b", kT0 + 1);
  feed.Buy("U2", "a", kT0);
  feed.Buy("U2", "b", kT0 + kDay);  // co-occurrence is over customers, not baskets
  feed.Buy("U3", "a", kT0);
  feed.Buy("U3", "c", kT0);
  feed.Buy("U4", "c", kT0);
  feed.Buy("X", "a", kT0);
  feed.Buy("X", "a", kT0 + 1);  // repeats do not count
  feed.Buy("Y", "b", kT0);
  feed.Buy("Y", "d", kT0);
  std::vector<double> scores;
  // cos(a, b) = 2 / sqrt(4 * 3); cos(a, c) = 1 / sqrt(4 * 2); d never meets a.
  EXPECT_THAT(feed.ListAt("X", kT0 + 2 * kDay, &scores), ElementsAre("b", "c"));
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_NEAR(scores[0], 2 / std::sqrt(12.0), 1e-12);
  EXPECT_NEAR(scores[1], 1 / std::sqrt(8.0), 1e-12);
  // U3 owns a and c: b scores cos(a, b) + cos(c, b) = 2/sqrt(12) + 0; U4's... none for d.
  scores.clear();
  EXPECT_THAT(feed.ListAt("U3", kT0 + 2 * kDay, &scores), ElementsAre("b"));
  EXPECT_NEAR(scores[0], 2 / std::sqrt(12.0), 1e-12);
  // Y owns b and d: a scores cos(b, a) = 2/sqrt(12); nothing else meets b or d.
  EXPECT_THAT(feed.ListAt("Y", kT0 + 2 * kDay), ElementsAre("a"));
}

TEST(EvaluationBaselineTest, CooccurrenceTiesByItemId) {
  auto p = NewCooccurrenceProvider(WithK(10));
  Feed feed(p.get());
  feed.Buy("U1", "a", kT0);
  feed.Buy("U1", "z", kT0);
  feed.Buy("U1", "m", kT0);
  feed.Buy("X", "a", kT0);
  EXPECT_THAT(feed.ListAt("X", kT0 + 1), ElementsAre("m", "z"));
}

TEST(EvaluationBaselineTest, BaselinesSkipNonRecommendableItemsOnlyWhenAsked) {
  Catalog catalog;
  CatalogItem post;
  post.item_id = "POST";
  post.recommendable = false;
  catalog.Add(post);
  EvaluationOptions options;
  options.catalog = &catalog;
  for (bool skip : {false, true}) {
    options.baselines_skip_non_recommendable = skip;
    auto providers = NewBaselineProviders(options);
    ASSERT_EQ(providers.size(), 4u);
    for (auto& p : providers) {
      Feed feed(p.get());
      feed.Buy("U1", "POST", kT0);
      feed.Buy("U1", "POST", kT0 + 1);
      feed.Buy("U1", "mug", kT0);
      feed.Buy("X", "mug", kT0);
      feed.Buy("U2", "POST", kT0);
      const std::string& who = p->name() == "own-most-bought" ? "U1" : "X";
      auto list = feed.ListAt(who, kT0 + 2);
      bool has_post = std::find(list.begin(), list.end(), "POST") != list.end();
      EXPECT_EQ(has_post, !skip) << p->name() << " skip=" << skip;
    }
  }
}

// streamrec through the adapter, with the lists written out.
struct StreamrecSetup {
  // `full`: the configured engine (blended recommender, K-Means segments) as `streamrec
  // evaluate` runs it; else the popularity recommender and rule segments (protocol tests).
  explicit StreamrecSetup(EvaluationMode mode, int k = 3, bool full = false) {
    options.mode = mode;
    options.k = k;
    RecommenderOptions base;
    base.control_share = 0;
    if (full) {
      Config config;
      recommender = std::move(NewBlendedRecommender(RecommenderOptionsForMode(base, options),
                                                    nullptr))
                        .value();
      segmenter = std::move(NewSegmenter(config, /*store=*/nullptr)).value();
    } else {
      recommender = NewPopularityRecommender(RecommenderOptionsForMode(base, options), nullptr);
      segmenter = NewRfmRuleSegmenter();
    }
    StreamrecListProviderOptions p;
    p.control_share = 0;
    provider = NewStreamrecListProvider(p, recommender.get(), segmenter.get());
  }
  EvaluationOptions options;
  std::unique_ptr<Recommender> recommender;
  std::unique_ptr<Segmenter> segmenter;
  std::unique_ptr<ListProvider> provider;
};

TEST(EvaluationStreamrecTest, ModeSetsRecommenderOptions) {
  EvaluationOptions options;
  options.k = 7;
  RecommenderOptions base;
  base.exclude_owned = false;
  options.mode = EvaluationMode::kCrossSell;
  RecommenderOptions cross = RecommenderOptionsForMode(base, options);
  EXPECT_TRUE(cross.exclude_owned);
  EXPECT_EQ(cross.list_length, 7);
  options.mode = EvaluationMode::kNextPurchase;
  EXPECT_FALSE(RecommenderOptionsForMode(base, options).exclude_owned);
  EXPECT_STREQ(EvaluationModeName(options.mode), "next-purchase");
}

TEST(EvaluationStreamrecTest, WritesEveryScoredListWithVersionsAndAsOf) {
  TempDir dir;
  std::string path = WriteEvents(dir, {Line("A", "x", 0), Line("B", "y", 0), Line("B", "y", 0),
                                       Line("A", "y", 5), Line("C", "z", 7), Line("A", "z", 9)});
  for (EvaluationMode mode : {EvaluationMode::kCrossSell, EvaluationMode::kNextPurchase}) {
    StreamrecSetup s(mode);
    std::vector<v1::RecommendationList> lists;
    ListSink sink = [&lists](const v1::RecommendationList& list) {
      lists.push_back(list);
      return Status::OK();
    };
    ASSERT_OK_AND_ASSIGN(report, Evaluate(path, {s.provider.get()}, s.options, sink));
    EXPECT_EQ(report.providers[0].name, "streamrec");
    ASSERT_EQ(lists.size(), 2u);  // A at minute 5 and minute 9
    EXPECT_EQ(lists[0].customer_id(), "A");
    EXPECT_EQ(lists[0].version(), 1u);
    EXPECT_EQ(lists[0].as_of_ms(), MinuteMs(0)) << "the newest event the list reflects";
    EXPECT_EQ(lists[0].segment(), "New");
    EXPECT_EQ(lists[0].cluster(), 0);
    EXPECT_EQ(lists[0].group(), v1::RecommendationList::TREATMENT);
    EXPECT_EQ(lists[1].version(), 2u);
    EXPECT_EQ(lists[1].as_of_ms(), MinuteMs(7));
    EXPECT_EQ(lists[1].segment(), "Promising");
    std::vector<std::string> first, second;
    for (const auto& item : lists[0].items()) first.push_back(item.item_id());
    for (const auto& item : lists[1].items()) second.push_back(item.item_id());
    if (mode == EvaluationMode::kCrossSell) {
      // Owned items left out: y (2 lines) then nothing else A does not own.
      EXPECT_THAT(first, ElementsAre("y"));
      EXPECT_THAT(second, ElementsAre("z"));
      EXPECT_EQ(report.providers[0].hits_new, 2u);
    } else {
      EXPECT_THAT(first, ElementsAre("y", "x"));
      EXPECT_EQ(second.size(), 3u);
      EXPECT_EQ(report.providers[0].hits_all, 2u);
    }
  }
}

// Which list a basket meets: A's list from its purchase on Jan 1 offers y; z becomes the hit
// of Jan 3; A comes back on Jan 20 and buys z. A fresh list has z; the list kept since A's
// purchase does not; the freshness sweep recomputes it only when it is older than its limit.
TEST(EvaluationStreamrecTest, ListsKeptSincePurchaseGoStaleUnlessSwept) {
  TempDir dir;
  auto at = [](const std::string& customer, const std::string& item, const std::string& day) {
    return customer + "," + item + ",2011-01-" + day + "T10:00:00,1,1.5,1.5,\n";
  };
  std::string path =
      WriteEvents(dir, {at("A", "x", "01"), at("B", "x", "01"), at("C", "y", "01"),
                        at("D", "z", "03"), at("E", "z", "03"), at("F", "z", "03"),
                        at("A", "z", "20")});
  using Lists = StreamrecListProviderOptions::Lists;
  struct Case {
    Lists lists;
    double refresh_after_days;
    std::vector<std::string> list;
  };
  for (const Case& c : {Case{Lists::kFresh, 7, {"z", "y"}}, Case{Lists::kOnPurchase, 7, {"y"}},
                        Case{Lists::kPublished, 7, {"z", "y"}},
                        Case{Lists::kPublished, 30, {"y"}}}) {
    StreamrecSetup s(EvaluationMode::kCrossSell);
    StreamrecListProviderOptions p;
    p.control_share = 0;
    p.lists = c.lists;
    p.refresh_after_days = c.refresh_after_days;
    s.provider = NewStreamrecListProvider(p, s.recommender.get(), s.segmenter.get());
    std::vector<std::string> items;
    ListSink sink = [&items](const v1::RecommendationList& list) {
      for (const auto& item : list.items()) items.push_back(item.item_id());
      return Status::OK();
    };
    ASSERT_OK_AND_ASSIGN(report, Evaluate(path, {s.provider.get()}, s.options, sink));
    EXPECT_EQ(items, c.list) << static_cast<int>(c.lists) << " " << c.refresh_after_days;
    EXPECT_EQ(report.providers[0].hits_new, c.list[0] == "z" ? 1u : 0u);
  }
}

TEST(EvaluationStreamrecTest, ReportJsonHasTheFigures) {
  TempDir dir;
  std::string path = WriteEvents(dir, {Line("A", "x", 0), Line("A", "x", 1)});
  auto own = NewOwnMostBoughtProvider({});
  ASSERT_OK_AND_ASSIGN(report, Evaluate(path, {own.get()}));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string json = EvaluationReportToJson(report);
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(std::string_view(doc["mode"]), "cross-sell");
  EXPECT_EQ(int64_t(doc["k"]), 10);
  EXPECT_EQ(uint64_t(doc["baskets_scored"]), 1u);
  simdjson::dom::element p = doc["providers"].at(0);
  EXPECT_EQ(std::string_view(p["name"]), "own-most-bought");
  EXPECT_EQ(double(p["hr_all"]), 1.0);
  EXPECT_EQ(double(p["hr_new"]), 0.0);
}

TEST(EvaluationCommandTest, PrintsTheTableAndRejectsBadArguments) {
  TempDir dir;
  std::string path = WriteEvents(
      dir, {Line("A", "x", 0), Line("B", "y", 0), Line("A", "y", 1), Line("B", "x", 2)});
  using testing::RunProcess;
  using testing::StreamrecBinary;
  auto ok = RunProcess({StreamrecBinary(), "evaluate", "--input", path, "--json",
                        dir.File("r.json"), "--recs-out", dir.File("recs.jsonl"), "--quiet"});
  ASSERT_TRUE(ok.exited && ok.exit_code == 0) << ok.output;
  for (const char* name : {"streamrec", "popularity-30d", "popularity-30d-new", "own-most-bought",
                           "cooccurrence-cosine", "hr_all", "hr_new"}) {
    EXPECT_THAT(ok.output, HasSubstr(name));
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.load(dir.File("r.json")).get(doc), simdjson::SUCCESS);
  EXPECT_EQ(uint64_t(doc["baskets_scored"]), 2u);
  std::string recs = testing::ReadFile(dir.File("recs.jsonl"));
  EXPECT_EQ(std::count(recs.begin(), recs.end(), '\n'), 2);
  EXPECT_THAT(recs, HasSubstr("\"version\":1"));
  EXPECT_THAT(recs, HasSubstr("\"as_of\":\"2011-01-01T10:00:00Z\""));

  for (std::vector<std::string> bad :
       {std::vector<std::string>{"--mode", "upsell"}, std::vector<std::string>{"--k", "0"},
        std::vector<std::string>{"--catalog", dir.File("none")}}) {
    std::vector<std::string> argv = {StreamrecBinary(), "evaluate", "--input", path, "--quiet"};
    argv.insert(argv.end(), bad.begin(), bad.end());
    auto r = RunProcess(argv);
    EXPECT_TRUE(r.exited && r.exit_code == 2) << bad[0] << ": " << r.output;
  }
  auto unsorted = WriteEvents(dir, {Line("A", "x", 3), Line("A", "y", 1)});
  auto r = RunProcess({StreamrecBinary(), "evaluate", "--input", unsorted, "--quiet"});
  EXPECT_TRUE(r.exited && r.exit_code == 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("time order"));
}

// The first 60,000 lines of the real data (December 2010 and most of January 2011): every
// baseline in a sane range, with the relations the definitions imply, and the same figures, for
// the baselines and for streamrec's recommender, on a second run; streamrec ahead of them.
TEST(EvaluationSharedDataTest, BaselinesOnASliceAreSaneAndDeterministic) {
  const std::string path = testing::SharedDataDir() + "/online_retail/events.csv.gz";
  EvaluationOptions options;
  options.max_records = 60000;
  std::vector<ProviderReport> first;
  for (int run = 0; run < 2; ++run) {
    StreamrecSetup streamrec(EvaluationMode::kCrossSell, /*k=*/10, /*full=*/true);
    auto owned = NewBaselineProviders(options);
    std::vector<ListProvider*> providers;
    for (auto& p : owned) providers.push_back(p.get());
    providers.push_back(streamrec.provider.get());
    ASSERT_OK_AND_ASSIGN(report, Evaluate(path, providers, options));
    EXPECT_EQ(report.records, 60000u);
    EXPECT_TRUE(report.stopped);
    EXPECT_GT(report.baskets_scored, 1000u);
    ASSERT_EQ(report.providers.size(), 5u);
    const ProviderReport& pop = report.providers[0];
    const ProviderReport& pop_new = report.providers[1];
    const ProviderReport& own = report.providers[2];
    const ProviderReport& cooc = report.providers[3];
    EXPECT_GT(pop.hr_all, 0.3);
    EXPECT_LT(pop.hr_all, 0.7);
    EXPECT_GT(pop.hr_new, 0.1);
    EXPECT_LT(pop.hr_new, pop.hr_all);
    EXPECT_EQ(pop_new.hr_all, pop_new.hr_new) << "owned items are never offered";
    EXPECT_GT(pop_new.hr_new, pop.hr_new);
    EXPECT_LT(pop_new.hr_all, 0.5);
    EXPECT_GT(own.hr_all, 0.45);
    EXPECT_LT(own.hr_all, 0.9);
    EXPECT_EQ(own.hr_new, 0.0) << "only owned items are offered";
    EXPECT_EQ(cooc.hr_all, cooc.hr_new);
    EXPECT_GT(cooc.hr_new, 0.15);
    EXPECT_LT(cooc.hr_new, 0.5);
    const ProviderReport& streamrec_report = report.providers[4];
    EXPECT_EQ(streamrec_report.name, "streamrec");
    EXPECT_LE(streamrec_report.hr_new, streamrec_report.hr_all);
    // The blended recommender beats popularity (both kinds) and the co-occurrence baseline on
    // new items, which is what cross-sell is for.
    EXPECT_GT(streamrec_report.hr_new, pop_new.hr_new * 1.1);
    EXPECT_GT(streamrec_report.hr_new, pop.hr_new * 1.1);
    EXPECT_GT(streamrec_report.hr_new, cooc.hr_new);
    for (const ProviderReport& p : report.providers) {
      EXPECT_EQ(p.baskets_scored, report.baskets_scored);
      EXPECT_LE(p.mean_list_length, 10.0);
      EXPECT_GT(p.mean_list_length, 5.0);
    }
    if (run == 0) {
      first = report.providers;
      for (const ProviderReport& p : first) {
        std::printf("slice: %-22s hr_all %.4f hr_new %.4f\n", p.name.c_str(), p.hr_all, p.hr_new);
      }
    } else {
      for (size_t i = 0; i < first.size(); ++i) {
        EXPECT_EQ(report.providers[i].hits_all, first[i].hits_all) << first[i].name;
        EXPECT_EQ(report.providers[i].hits_new, first[i].hits_new) << first[i].name;
      }
    }
  }
}

}  // namespace
}  // namespace streamrec
