#include "streamrec/kmeans_segmenter.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <simdjson.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "background_thread.h"
#include "streamrec/clock.h"
#include "streamrec/pipeline.h"
#include "streamrec/replay.h"
#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

constexpr const char* kHeader = "customer_id,item_id,timestamp,quantity,unit_price,amount,channel";

// Three kinds of customers: frequent big spenders buying until the end of the period, one-off
// small buyers from the start, and occasional mid spenders.
std::vector<std::string> SyntheticEvents(int customers, int first_customer = 0) {
  std::vector<std::string> lines;
  char buf[256];
  for (int c = first_customer; c < first_customer + customers; ++c) {
    const int kind = c % 3;
    const int baskets = kind == 0 ? 12 + c % 5 : kind == 1 ? 1 : 3 + c % 2;
    const double price = kind == 0 ? 80.0 + c % 7 : kind == 1 ? 5.0 + c % 3 : 25.0 + c % 5;
    for (int b = 0; b < baskets; ++b) {
      const int day = kind == 0 ? 300 - 20 * b : kind == 1 ? 1 + c % 20 : 150 - 30 * b;
      std::snprintf(buf, sizeof(buf), "c%05d,item%d,2011-%02d-%02dT10:00:00,1,%.2f,%.2f,web", c,
                    (c + b) % 17, 1 + (day - 1) / 28 % 12, 1 + (day - 1) % 28, price, price);
      lines.push_back(buf);
    }
  }
  return lines;
}

// Keeps what the segmenter logs.
class RecordingLogger : public Logger {
 public:
  void Log(LogLevel, std::string_view message) override { lines.emplace_back(message); }
  std::vector<std::string> lines;
};

class SegmenterHarness {
 public:
  explicit SegmenterHarness(SegmentsConfig config, bool background_refit = false)
      : store_(NewMemStateStore()), config_(config), background_refit_(background_refit) {
    decoder_ = std::move(NewCsvDecoder(DecoderOptions(), kHeader)).value();
    recommender_ = NewPopularityRecommender(RecommenderOptions(), nullptr);
    Reopen();
  }

  // A new segmenter and pipeline on the same store (a restart).
  void Reopen() {
    KMeansSegmenterOptions options;
    options.config = config_;
    options.logger = logger_;
    options.background_refit = background_refit_;
    options.on_refit_start = on_refit_start_;
    auto s = KMeansSegmenter::Create(options, store_.get());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    segmenter_ = std::move(s).value();
    pipeline_ = std::make_unique<Pipeline>(PipelineOptions(), store_.get(), nullptr,
                                           segmenter_.get(), recommender_.get());
    ASSERT_OK(pipeline_->Open());
  }

  void Run(const std::vector<std::string>& lines, size_t batch = 500) {
    for (size_t start = 0; start < lines.size(); start += batch) {
      std::vector<SourceRecord> records;
      for (size_t i = start; i < std::min(lines.size(), start + batch); ++i) {
        records.push_back(SourceRecord{offset_++, {}, lines[i]});
      }
      BatchResult result;
      ASSERT_OK(pipeline_->ProcessBatch(0, records, decoder_.get(), &result));
    }
  }

  std::map<std::string, CustomerState> Customers() {
    std::map<std::string, CustomerState> out;
    EXPECT_OK(store_->Scan(Column::kCustomers, "", [&](std::string_view, std::string_view v) {
      CustomerState s;
      EXPECT_OK(DecodeState(v, &s));
      out[s.customer_id()] = s;
      return true;
    }));
    return out;
  }

  std::vector<v1::SegmentChange> DrainChanges() {
    std::vector<v1::SegmentChange> out;
    auto n = DrainOutbox(store_.get(), 0, [&](const v1::OutboxRecord& r) {
      if (r.payload_case() == v1::OutboxRecord::kSegmentChange) out.push_back(r.segment_change());
      return Status::OK();
    });
    EXPECT_TRUE(n.ok());
    return out;
  }

  // A restart with another configuration.
  void Reconfigure(SegmentsConfig config) {
    config_ = config;
    Reopen();
  }

  // Runs on each background re-fit's thread as it starts; takes effect at the next Reopen.
  void OnRefitStart(std::function<void()> hook) { on_refit_start_ = std::move(hook); }

  StateStore* store() { return store_.get(); }
  KMeansSegmenter& segmenter() { return *segmenter_; }
  const std::vector<std::string>& log() const { return logger_->lines; }

 private:
  std::shared_ptr<RecordingLogger> logger_ = std::make_shared<RecordingLogger>();
  std::unique_ptr<StateStore> store_;
  SegmentsConfig config_;
  bool background_refit_ = false;
  std::function<void()> on_refit_start_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<Recommender> recommender_;
  std::unique_ptr<KMeansSegmenter> segmenter_;
  std::unique_ptr<Pipeline> pipeline_;
  uint64_t offset_ = 0;
};

SegmentsConfig SmallConfig() {
  SegmentsConfig c;
  c.k = 3;
  c.min_customers_for_fit = 60;
  c.refit_growth_ratio = 0;
  c.n_init = 3;
  return c;
}

TEST(SegmentFitInputTest, SampleIsBoundedOrderFreeAndStandsForThePopulation) {
  SegmenterHarness h(SmallConfig());
  ASSERT_NO_FATAL_FAILURE(h.Run(SyntheticEvents(900)));
  std::vector<CustomerState> customers;
  for (auto& [id, state] : h.Customers()) customers.push_back(state);
  ASSERT_EQ(customers.size(), 900u);
  ASSERT_OK_AND_ASSIGN(options, SegmentFitOptions::FromConfig(SmallConfig()));
  auto input_of = [&](bool reversed, int64_t max_rows) {
    SegmentFitInput input;
    input.now_ms = customers[0].last_time_ms();
    input.max_rows = max_rows;
    for (size_t i = 0; i < customers.size(); ++i) {
      input.Add(options.spec, customers[reversed ? customers.size() - 1 - i : i]);
    }
    input.Finish();
    return input;
  };
  auto rows = [&](const SegmentFitInput& input) {
    const size_t d = options.spec.dim();
    std::vector<std::vector<float>> out;
    for (int64_t i = 0; i < input.n; ++i) {
      out.emplace_back(input.raw.begin() + i * d, input.raw.begin() + (i + 1) * d);
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  const SegmentFitInput forward = input_of(false, 100);
  const SegmentFitInput backward = input_of(true, 100);
  EXPECT_EQ(forward.n, 100);
  EXPECT_EQ(forward.population, 900);
  EXPECT_EQ(rows(forward), rows(backward)) << "the same customers, whatever the order";
  const SegmentFitInput all = input_of(false, 0);
  EXPECT_EQ(all.n, 900);

  // A store scan asks Skips(id) before decoding a state: the same sample and population, and
  // most customers are never handed to Add once the threshold has come down.
  SegmentFitInput keyed;
  keyed.now_ms = customers[0].last_time_ms();
  keyed.max_rows = 100;
  int skipped = 0;
  for (const CustomerState& c : customers) {
    if (keyed.Skips(c.customer_id())) {
      ++skipped;
    } else {
      keyed.Add(options.spec, c);
    }
  }
  keyed.Finish();
  EXPECT_EQ(keyed.n, 100);
  EXPECT_EQ(keyed.population, 900);
  EXPECT_EQ(rows(keyed), rows(forward));
  EXPECT_GT(skipped, 450) << "the threshold halves each time twice the cap is held";
  SegmentFitInput unsampled;  // no cap: nothing is skipped
  EXPECT_FALSE(unsampled.Skips(customers[0].customer_id()));
  EXPECT_EQ(unsampled.population, 0);

  // A fit on the sample reports the population, and its objective per customer is close to the
  // fit on everyone's.
  ASSERT_OK_AND_ASSIGN(sampled, FitSegmentModel(options, forward, nullptr, {}, 1));
  ASSERT_OK_AND_ASSIGN(full, FitSegmentModel(options, all, nullptr, {}, 1));
  EXPECT_EQ(sampled.customers, 900);
  EXPECT_EQ(sampled.model->proto.fit_points(), 900u);
  uint64_t size_sum = 0;
  for (const auto& c : sampled.model->proto.clusters()) size_sum += c.size();
  EXPECT_NEAR(static_cast<double>(size_sum), 900.0, 3.0);
  const double per_sampled = sampled.model->proto.objective() / 900.0;
  const double per_full = full.model->proto.objective() / 900.0;
  EXPECT_NEAR(per_sampled, per_full, 0.5 * per_full);
}

TEST(KMeansSegmenterTest, UnscoredUntilEnoughCustomersThenFitted) {
  SegmenterHarness h(SmallConfig());
  h.Run(SyntheticEvents(30));
  EXPECT_EQ(h.segmenter().model(), nullptr);
  for (const auto& [id, s] : h.Customers()) {
    EXPECT_EQ(s.cluster(), -1) << id;
    EXPECT_EQ(s.segment(), kUnscoredSegment);
  }
  h.Run(SyntheticEvents(60, 30));
  ASSERT_NE(h.segmenter().model(), nullptr);
  EXPECT_EQ(h.segmenter().model_version(), 1u);
  // The cold-start fit also scored the customers stored before it.
  for (const auto& [id, s] : h.Customers()) {
    EXPECT_GE(s.cluster(), 0) << id;
    EXPECT_EQ(s.model_version(), 1u);
    EXPECT_NE(s.segment(), kUnscoredSegment);
  }
}

TEST(KMeansSegmenterTest, ModelRoundTripsThroughTheStore) {
  SegmenterHarness h(SmallConfig());
  h.Run(SyntheticEvents(90));
  h.Run(SyntheticEvents(30, 90));  // online steps after the fit
  const std::string before = h.segmenter().CurrentProto().SerializeAsString();
  ASSERT_FALSE(before.empty());
  EXPECT_GT(h.segmenter().CurrentProto().online_steps(), 0u);
  h.Reopen();
  EXPECT_EQ(h.segmenter().CurrentProto().SerializeAsString(), before);
  std::string stored;
  ASSERT_OK(h.store()->Get(Column::kModel, ModelVersionKey(1), &stored));

  // A restarted segmenter continues exactly like one that never stopped.
  SegmenterHarness straight(SmallConfig());
  straight.Run(SyntheticEvents(90));
  straight.Run(SyntheticEvents(30, 90));
  straight.Run(SyntheticEvents(20, 200));
  h.Run(SyntheticEvents(20, 200));
  EXPECT_EQ(h.segmenter().CurrentProto().SerializeAsString(),
            straight.segmenter().CurrentProto().SerializeAsString());
}

TEST(KMeansSegmenterTest, OnlineAssignmentNamesCustomersByBehaviour) {
  SegmenterHarness h(SmallConfig());
  h.Run(SyntheticEvents(150));
  auto model = h.segmenter().model();
  ASSERT_NE(model, nullptr);
  auto customers = h.Customers();
  // Big recent spenders and one-off early buyers never share a cluster.
  std::map<int, std::set<int32_t>> clusters_of_kind;
  for (const auto& [id, s] : customers) {
    clusters_of_kind[std::stoi(id.substr(1)) % 3].insert(s.cluster());
    EXPECT_EQ(s.segment(), model->names[model->RowOf(s.cluster())]);
  }
  for (int32_t c : clusters_of_kind[0]) EXPECT_EQ(clusters_of_kind[1].count(c), 0u) << c;
  // Big recent spenders are Champions.
  EXPECT_EQ(customers["c00000"].segment().rfind("Champions", 0), 0u)
      << customers["c00000"].segment();
  EXPECT_EQ(customers["c00001"].segment().find("Champions"), std::string::npos);
}

TEST(KMeansSegmenterTest, RefitOfUnchangedDataKeepsIdsAndEmitsOnlyRealMoves) {
  SegmenterHarness h(SmallConfig());
  h.Run(SyntheticEvents(300));
  h.DrainChanges();
  ASSERT_OK_AND_ASSIGN(first, h.segmenter().Refit(h.store()));
  EXPECT_EQ(first.reassigned, 300u);
  auto changes = h.DrainChanges();
  EXPECT_EQ(changes.size(), first.moved);
  for (const auto& c : changes) {
    EXPECT_TRUE(c.from_cluster() != c.to_cluster() || c.from_segment() != c.to_segment());
  }
  auto before = h.Customers();

  ASSERT_OK_AND_ASSIGN(second, h.segmenter().Refit(h.store()));
  EXPECT_EQ(second.model->version, first.model->version + 1);
  auto after = h.Customers();
  size_t same = 0;
  for (const auto& [id, s] : after) same += before[id].cluster() == s.cluster();
  EXPECT_GE(same, 0.98 * after.size());
  EXPECT_EQ(h.DrainChanges().size(), second.moved);
  EXPECT_LE(second.moved, 0.02 * after.size());
  EXPECT_TRUE(second.births.empty());
  EXPECT_TRUE(second.deaths.empty());
}

TEST(KMeansSegmenterTest, BirthsAndDeathsAreLoggedAndCounted) {
  SegmenterHarness h(SmallConfig());
  h.Run(SyntheticEvents(300));
  ASSERT_NE(h.segmenter().model(), nullptr);
  // The first fit's clusters are all births.
  EXPECT_EQ(h.segmenter().CurrentProto().births_total(), 3u);
  EXPECT_EQ(h.segmenter().CurrentProto().deaths_total(), 0u);
  const size_t logged = h.log().size();

  SegmentsConfig four = SmallConfig();
  four.k = 4;
  h.Reconfigure(four);
  ASSERT_OK_AND_ASSIGN(grown, h.segmenter().Refit(h.store()));
  ASSERT_EQ(grown.births.size(), 1u);
  EXPECT_TRUE(grown.deaths.empty());
  EXPECT_EQ(grown.births[0], 3);  // the next unused id
  EXPECT_EQ(grown.model->proto.births_total(), 4u);
  EXPECT_EQ(grown.model->proto.deaths_total(), 0u);
  ASSERT_EQ(h.log().size(), logged + 1);
  EXPECT_NE(h.log().back().find("born [3], died [-]"), std::string::npos) << h.log().back();

  SegmentsConfig two = SmallConfig();
  two.k = 2;
  h.Reconfigure(two);
  ASSERT_OK_AND_ASSIGN(shrunk, h.segmenter().Refit(h.store()));
  EXPECT_TRUE(shrunk.births.empty());
  EXPECT_EQ(shrunk.deaths.size(), 2u);
  EXPECT_EQ(shrunk.model->proto.births_total(), 4u);
  EXPECT_EQ(shrunk.model->proto.deaths_total(), 2u);
  EXPECT_NE(h.log().back().find("4 births, 2 deaths"), std::string::npos) << h.log().back();

  // An unchanged re-fit logs nothing; the counters survive a restart.
  const size_t before_unchanged = h.log().size();
  ASSERT_OK_AND_ASSIGN(same, h.segmenter().Refit(h.store()));
  EXPECT_EQ(h.log().size(), before_unchanged);
  h.Reopen();
  EXPECT_EQ(h.segmenter().CurrentProto().births_total(), 4u);
  EXPECT_EQ(h.segmenter().CurrentProto().deaths_total(), 2u);
}

// `baskets` purchases of `price` by `customer` on 2011-11-`day` (one per hour from 08:00).
std::vector<std::string> BurstOfPurchases(const std::string& customer, int day, int baskets,
                                          double price) {
  std::vector<std::string> lines;
  char buf[256];
  for (int b = 0; b < baskets; ++b) {
    std::snprintf(buf, sizeof(buf), "%s,item%d,2011-11-%02dT%02d:00:00,1,%.2f,%.2f,web",
                  customer.c_str(), b % 17, day, 8 + b, price, price);
    lines.push_back(buf);
  }
  return lines;
}

int64_t DayOf(int y, int m, int d) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  return static_cast<int64_t>(timegm(&tm)) / 86400;
}

TEST(KMeansSegmenterTest, TransitionMatrixCountsMovesOverTheWindow) {
  SegmentsConfig config = SmallConfig();
  config.transition_window_days = 3;
  SegmenterHarness h(config);
  h.Run(SyntheticEvents(300));
  using Matrix = std::map<std::pair<int32_t, int32_t>, uint64_t>;
  auto total = [](const Matrix& m) {
    uint64_t n = 0;
    for (const auto& [move, count] : m) n += count;
    return n;
  };
  // Customers scored for the first time are not moves (a few customers whose purchases span
  // several batches did move as their history grew, on days up to 2011-11-20).
  const Matrix base = SumTransitions(h.segmenter().CurrentProto());
  EXPECT_LT(total(base), 30u);
  ASSERT_GT(h.segmenter().CurrentProto().transitions_size(), 0);
  EXPECT_LE(h.segmenter().CurrentProto().transitions().rbegin()->day(), DayOf(2011, 11, 20));

  // A one-off small buyer (kind 1) turns into a big frequent spender on 2011-11-20.
  const int32_t from = h.Customers()["c00001"].cluster();
  h.Run(BurstOfPurchases("c00001", 20, 14, 95.0));
  const int32_t to = h.Customers()["c00001"].cluster();
  ASSERT_NE(from, to);
  Matrix one = base;
  one[{from, to}] += 1;
  EXPECT_EQ(SumTransitions(h.segmenter().CurrentProto()), one);
  EXPECT_EQ(h.segmenter().CurrentProto().transitions().rbegin()->day(), DayOf(2011, 11, 20));
  // A purchase that keeps a customer in their cluster is no move.
  h.Run(BurstOfPurchases("c00001", 21, 1, 95.0));
  ASSERT_EQ(h.Customers()["c00001"].cluster(), to);
  EXPECT_EQ(SumTransitions(h.segmenter().CurrentProto()), one);

  // Stored with the model: a restart keeps the counts.
  h.Reopen();
  EXPECT_EQ(SumTransitions(h.segmenter().CurrentProto()), one);

  // Another move on 2011-11-22 is inside the 3-day window (20, 21, 22) ...
  const int32_t from4 = h.Customers()["c00004"].cluster();
  h.Run(BurstOfPurchases("c00004", 22, 14, 95.0));
  const int32_t to4 = h.Customers()["c00004"].cluster();
  ASSERT_NE(from4, to4);
  Matrix both = one;
  both[{from4, to4}] += 1;
  EXPECT_EQ(SumTransitions(h.segmenter().CurrentProto()), both);
  // ... and on 2011-11-23 the 20th (and everything before) falls out of it.
  const int32_t from7 = h.Customers()["c00007"].cluster();
  h.Run(BurstOfPurchases("c00007", 23, 14, 95.0));
  const int32_t to7 = h.Customers()["c00007"].cluster();
  ASSERT_NE(from7, to7);
  Matrix later{{{from4, to4}, 1}};
  later[{from7, to7}] += 1;
  EXPECT_EQ(SumTransitions(h.segmenter().CurrentProto()), later);

  // A re-fit's reassignment counts every customer whose cluster changed.
  auto before = h.Customers();
  ASSERT_OK_AND_ASSIGN(refit, h.segmenter().Refit(h.store()));
  uint64_t changed = 0;
  for (const auto& [id, s] : h.Customers()) changed += before[id].cluster() != s.cluster();
  EXPECT_EQ(total(SumTransitions(h.segmenter().CurrentProto())), 2 + changed);
  ASSERT_OK_AND_ASSIGN(stored, LoadStoredModel(h.store()));
  EXPECT_EQ(SumTransitions(stored), SumTransitions(h.segmenter().CurrentProto()));
}

TEST(KMeansSegmenterTest, SegmentsCommandShowsLifecycleTransitionsAndRuleActions) {
  testing::TempDir dir;
  std::string events = std::string(kHeader) + "\n";
  for (const std::string& line : SyntheticEvents(300)) events += line + "\n";
  for (const std::string& line : BurstOfPurchases("c00001", 20, 14, 95.0)) events += line + "\n";
  testing::WriteFile(dir.File("events.csv"), events);
  testing::WriteFile(dir.File("rules.csv"),
                     "name,r_min,r_max,fm_min,fm_max,action\n"
                     "Stars,4,5,3,5,\"Invite to the VIP programme, no discounts\"\n"
                     "Others,1,5,1,5,Monthly newsletter\n");
  const std::map<std::string, std::string> env = {
      {"STREAMREC_SEGMENTS__K", "3"},
      {"STREAMREC_SEGMENTS__MIN_CUSTOMERS_FOR_FIT", "60"},
      {"STREAMREC_SEGMENTS__REFIT_GROWTH_RATIO", "0"},
      {"STREAMREC_PIPELINE__BATCH_SIZE", "500"},  // c00001's burst comes after its first score
      {"STREAMREC_SEGMENTS__RULES_FILE", dir.File("rules.csv")}};
  const std::string state = dir.File("state");
  auto replay = testing::RunProcess({testing::StreamrecBinary(), "replay", "--input",
                                     dir.File("events.csv"), "--state-dir", state, "--quiet"},
                                    env);
  ASSERT_TRUE(replay.exited && replay.exit_code == 0) << replay.output;
  EXPECT_NE(replay.output.find("clusters born [0,1,2]"), std::string::npos) << replay.output;

  auto json = testing::RunProcess(
      {testing::StreamrecBinary(), "segments", "--state-dir", state, "--json"});
  ASSERT_TRUE(json.exited && json.exit_code == 0) << json.output;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json.output).get(doc), simdjson::SUCCESS) << json.output;
  EXPECT_EQ(uint64_t(doc["births_total"]), 3u);
  EXPECT_EQ(uint64_t(doc["deaths_total"]), 0u);
  EXPECT_GT(double(doc["online_objective"]), 0.0);
  EXPECT_GT(uint64_t(doc["online_points"]), 0u);
  // Each feature's transform, as fitted with the model (defaults here: recency log1p, discount
  // none).
  simdjson::dom::array transforms = doc["transforms"].get_array();
  ASSERT_EQ(transforms.size(), 7u) << json.output;
  EXPECT_EQ(std::string_view(transforms.at(0)["feature"]), "recency_days");
  EXPECT_EQ(std::string_view(transforms.at(0)["transform"]), "log1p");
  EXPECT_EQ(std::string_view(transforms.at(4)["transform"]), "none");
  EXPECT_GT(double(transforms.at(0)["std"]), 0.0);
  uint64_t moves = 0;
  bool c00001_move = false;
  for (simdjson::dom::element m : doc["transitions"]["moves"].get_array()) {
    moves += uint64_t(m["count"]);
    c00001_move |= std::string_view(m["to_segment"]) == "Stars";
  }
  EXPECT_GE(moves, 1u);
  EXPECT_TRUE(c00001_move) << json.output;
  EXPECT_EQ(std::string_view(doc["transitions"]["last_day"]), "2011-11-20");
  bool stars = false;
  for (simdjson::dom::element seg : doc["segments"].get_array()) {
    if (std::string_view(seg["segment"]) == "Stars") {
      stars = true;
      EXPECT_EQ(std::string_view(seg["action"]), "Invite to the VIP programme, no discounts");
    }
  }
  EXPECT_TRUE(stars) << json.output;

  auto text = testing::RunProcess({testing::StreamrecBinary(), "segments", "--state-dir", state});
  ASSERT_TRUE(text.exited && text.exit_code == 0) << text.output;
  EXPECT_NE(text.output.find("clusters born 3, died 0"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("Invite to the VIP programme, no discounts"), std::string::npos);
  EXPECT_NE(text.output.find("transitions (customer moves, rows from, columns to), event-time "
                             "days 2011-"),
            std::string::npos)
      << text.output;
}

// Third-moment skewness of a sample.
double Skewness(const std::vector<double>& x) {
  double mean = 0;
  for (double v : x) mean += v;
  mean /= x.size();
  double m2 = 0, m3 = 0;
  for (double v : x) m2 += (v - mean) * (v - mean), m3 += (v - mean) * (v - mean) * (v - mean);
  m2 /= x.size();
  m3 /= x.size();
  return m3 / std::pow(m2, 1.5);
}

TEST(KMeansSegmenterTest, ConfiguredTransformsAreFittedAndStoredWithTheVersion) {
  SegmentsConfig config = SmallConfig();
  config.transforms = "monetary:yeo-johnson,frequency:none";
  SegmenterHarness h(config);
  h.Run(SyntheticEvents(300));
  auto model = h.segmenter().model();
  ASSERT_NE(model, nullptr);
  const std::vector<FeatureScaling>& columns = model->transform.columns();
  ASSERT_EQ(columns.size(), 7u);
  EXPECT_EQ(columns[0].kind, FeatureTransformKind::kLog1p);  // recency: not named, default
  EXPECT_EQ(columns[1].kind, FeatureTransformKind::kNone);
  ASSERT_EQ(columns[2].kind, FeatureTransformKind::kYeoJohnson);
  // Spend is right-skewed: the maximum-likelihood lambda compresses it (well below 1, inside
  // the search interval), and the transformed column is far less skewed than the raw one.
  const double lambda = columns[2].lambda;
  EXPECT_LT(lambda, 0.6);
  EXPECT_GT(lambda, -2.9);
  std::vector<double> raw, transformed;
  float row[7];
  for (const auto& [id, s] : h.Customers()) {
    BuildRawVector(model->spec, s, model->proto.created_event_time_ms(), row);
    raw.push_back(row[2]);
    transformed.push_back(detail::YeoJohnson(row[2], lambda));
  }
  EXPECT_GT(Skewness(raw), 0.5);
  EXPECT_LT(std::abs(Skewness(transformed)), 0.5 * Skewness(raw));
  // The lambda belongs to the stored version.
  std::string stored;
  ASSERT_OK(h.store()->Get(Column::kModel, ModelVersionKey(model->version), &stored));
  v1::SegmentModel proto;
  ASSERT_OK(DecodeState(stored, &proto));
  EXPECT_EQ(proto.features(2).transform(), v1::FEATURE_TRANSFORM_YEO_JOHNSON);
  EXPECT_EQ(proto.features(2).lambda(), lambda);
  EXPECT_EQ(proto.features(1).transform(), v1::FEATURE_TRANSFORM_NONE);
}

TEST(KMeansSegmenterTest, ScoringUsesTheModelsTransformUntilTheNextRefit) {
  SegmenterHarness h(SmallConfig());
  h.Run(SyntheticEvents(300));
  ASSERT_EQ(h.segmenter().model_version(), 1u);
  ASSERT_EQ(h.segmenter().model()->transform.columns()[2].kind, FeatureTransformKind::kLog1p);

  // New transforms in the configuration: the stored model keeps scoring with its own.
  SegmentsConfig config = SmallConfig();
  config.transforms = "monetary:yeo-johnson";
  h.Reconfigure(config);
  h.Run(SyntheticEvents(30, 300));
  auto model = h.segmenter().model();
  EXPECT_EQ(model->version, 1u);
  EXPECT_EQ(model->transform.columns()[2].kind, FeatureTransformKind::kLog1p);
  for (const auto& [id, s] : h.Customers()) EXPECT_EQ(s.model_version(), 1u) << id;

  // The next full re-fit fits (and stores) the configured ones, and scores everyone with them.
  ASSERT_OK_AND_ASSIGN(report, h.segmenter().Refit(h.store()));
  EXPECT_EQ(report.model->version, 2u);
  EXPECT_EQ(report.model->transform.columns()[2].kind, FeatureTransformKind::kYeoJohnson);
  EXPECT_EQ(report.model->transform.columns()[0].kind, FeatureTransformKind::kLog1p);
  std::vector<float> row(7);
  for (const auto& [id, s] : h.Customers()) {
    EXPECT_EQ(s.model_version(), 2u) << id;
    BuildRawVector(report.model->spec, s, report.now_ms, row.data());
    report.model->transform.Apply(row.data(), row.data());
    const int nearest = NearestCentre(report.model->centres.data(), report.model->k, 7, row.data());
    EXPECT_EQ(s.cluster(), report.model->ids[nearest]) << id;
  }
}

// `customers` customers buying once each on 2012-12-`day`: far past the synthetic history, so
// every customer who does not buy again ages by a year.
std::vector<std::string> LateBuyers(int customers, int first_customer, int day) {
  std::vector<std::string> lines;
  char buf[256];
  for (int c = first_customer; c < first_customer + customers; ++c) {
    std::snprintf(buf, sizeof(buf), "n%05d,item%d,2012-12-%02dT10:00:00,1,40.00,40.00,web", c,
                  c % 17, day);
    lines.push_back(buf);
  }
  return lines;
}

TEST(KMeansSegmenterTest, RescoreSweepRelabelsCustomersWhoDoNotBuy) {
  SegmentsConfig config = SmallConfig();
  config.rescore_per_batch = 40;
  SegmenterHarness h(config);
  h.Run(SyntheticEvents(300));
  h.DrainChanges();
  auto before = h.Customers();

  // Ten batches of two late buyers each: the 300 stored customers (key order) are swept 40 per
  // batch, wrapping once.
  std::string previous_cursor = h.segmenter().CurrentProto().rescore_cursor();
  std::set<std::string> cursors;
  for (int b = 0; b < 10; ++b) {
    h.Run(LateBuyers(2, 2 * b, 1 + b), /*batch=*/2);
    const std::string cursor = h.segmenter().CurrentProto().rescore_cursor();
    EXPECT_NE(cursor, previous_cursor) << "batch " << b;
    cursors.insert(cursor);
    previous_cursor = cursor;
  }
  EXPECT_EQ(cursors.size(), 10u);

  // Customers who did not buy moved; each move is a SegmentChange, and only moves are.
  auto after = h.Customers();
  std::map<std::string, std::vector<v1::SegmentChange>> changes;
  for (const v1::SegmentChange& c : h.DrainChanges()) changes[c.customer_id()].push_back(c);
  size_t moved = 0;
  for (const auto& [id, s] : before) {
    const CustomerState& now = after[id];
    EXPECT_EQ(now.event_count(), s.event_count()) << id << " did not buy";
    const auto& list = changes[id];
    if (now.cluster() == s.cluster() && list.empty()) continue;
    ++moved;
    ASSERT_FALSE(list.empty()) << id << " moved without a SegmentChange";
    EXPECT_EQ(list.front().from_cluster(), s.cluster()) << id;
    EXPECT_EQ(list.back().to_cluster(), now.cluster()) << id;
    for (size_t i = 0; i < list.size(); ++i) {
      EXPECT_NE(list[i].from_cluster(), list[i].to_cluster()) << id;
      if (i > 0) {
        EXPECT_EQ(list[i].from_cluster(), list[i - 1].to_cluster()) << id;
      }
    }
  }
  EXPECT_GT(moved, 10u) << "a year without buying moves some customers";
  EXPECT_GT(h.segmenter().CurrentProto().online_rescored_points(), 0u);

  // A restart in the middle of the sweep continues exactly where an uninterrupted run is.
  SegmenterHarness straight(config), restarted(config);
  for (SegmenterHarness* x : {&straight, &restarted}) x->Run(SyntheticEvents(300));
  for (int b = 0; b < 6; ++b) {
    if (b == 3) restarted.Reopen();
    for (SegmenterHarness* x : {&straight, &restarted}) x->Run(LateBuyers(2, 2 * b, 1 + b), 2);
  }
  EXPECT_EQ(restarted.segmenter().CurrentProto().SerializeAsString(),
            straight.segmenter().CurrentProto().SerializeAsString());
  auto a = straight.Customers(), b = restarted.Customers();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [id, s] : a) EXPECT_EQ(b[id].SerializeAsString(), s.SerializeAsString()) << id;
}

// A background re-fit is swapped in without touching the store; the sweep then brings every
// stored customer to the new version (without it, customers who do not buy keep the old one).
TEST(KMeansSegmenterTest, RescoreSweepCarriesABackgroundRefitToEveryStoredCustomer) {
  for (int64_t per_batch : {int64_t{0}, int64_t{1000}}) {
    SegmentsConfig config = SmallConfig();
    config.rescore_per_batch = per_batch;
    config.refit_every_events = 25;
    SegmenterHarness h(config, /*background_refit=*/true);
    h.Run(SyntheticEvents(300));  // cold start (synchronous), then background re-fits
    h.segmenter().WaitForBackgroundRefit();
    h.Run(LateBuyers(1, 0, 1), 1);  // picks up the finished re-fit
    const uint64_t version = h.segmenter().model_version();
    ASSERT_GE(version, 2u);
    size_t stale = 0;
    for (const auto& [id, s] : h.Customers()) stale += s.model_version() != version;
    if (per_batch == 0) {
      EXPECT_GT(stale, 0u) << "without the sweep, customers who do not buy keep the old version";
    } else {
      EXPECT_EQ(stale, 0u);
    }
  }
}

// A background re-fit runs at segments.refit_nice, on a thread of its own name, so ingestion
// keeps the CPU when both want it; the consumer thread's priority is untouched.
TEST(KMeansSegmenterTest, BackgroundRefitRunsAtTheConfiguredLowerPriority) {
  const int own = ThisThreadNice();
  SegmentsConfig config = SmallConfig();
  config.refit_every_events = 25;
  config.refit_nice = std::min(own + 7, 19);
  SegmenterHarness h(config, /*background_refit=*/true);
  std::mutex mu;
  std::vector<int> nices;
  std::vector<std::string> names;
  h.OnRefitStart([&] {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    std::lock_guard<std::mutex> lock(mu);
    nices.push_back(ThisThreadNice());
    names.emplace_back(name);
  });
  h.Reopen();
  h.Run(SyntheticEvents(300));  // cold start (synchronous), then background re-fits
  h.segmenter().WaitForBackgroundRefit();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_FALSE(nices.empty()) << "no background re-fit ran";
  for (int nice : nices) EXPECT_EQ(nice, config.refit_nice);
  for (const std::string& name : names) EXPECT_EQ(name, "sr-segment-fit");
  EXPECT_EQ(ThisThreadNice(), own) << "the consumer thread keeps its priority";
}

// On a quiet stream the service installs a finished background re-fit and starts the one asked
// for while it ran (UpdateModelIdle, called between batches), instead of waiting for the next
// purchase; each installed version is stored by AppendWrites.
TEST(KMeansSegmenterTest, QuietStreamInstallsAFinishedRefitAndStartsTheOneAskedForMeanwhile) {
  constexpr int64_t kWaitMs = 60000;
  std::mutex mu;  // declared before the harness: its fits' hook uses them
  std::condition_variable cv;
  bool open = false;
  int started = 0;
  SegmenterHarness h(SmallConfig(), /*background_refit=*/true);
  h.OnRefitStart([&] {
    std::unique_lock<std::mutex> lock(mu);
    ++started;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
  });
  h.Reopen();
  h.Run(SyntheticEvents(300));  // cold start (synchronous): v1; no trigger after it
  ASSERT_EQ(h.segmenter().model_version(), 1u);
  EXPECT_FALSE(h.segmenter().UpdateModelIdle()) << "nothing finished, nothing due";

  ASSERT_TRUE(h.segmenter().RequestRefit());
  h.Run(LateBuyers(1, 0, 1), 1);  // the last purchase for a while: starts the fit
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] { return started == 1; }));
  }
  ASSERT_TRUE(h.segmenter().RequestRefit());  // asked for while that fit runs
  EXPECT_FALSE(h.segmenter().UpdateModelIdle()) << "still running: nothing to install or start";
  {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
  h.segmenter().WaitForBackgroundRefit();
  EXPECT_TRUE(h.segmenter().UpdateModelIdle()) << "the finished fit is installed";
  EXPECT_EQ(h.segmenter().model_version(), 2u);
  WriteSet writes;
  h.segmenter().AppendWrites(&writes);
  ASSERT_OK(h.store()->Write(writes));
  ASSERT_OK_AND_ASSIGN(stored, LoadStoredModel(h.store()));
  EXPECT_EQ(stored.version(), 2u);
  EXPECT_FALSE(h.segmenter().stats().refit_requested) << "the second request started its fit";

  h.segmenter().WaitForBackgroundRefit();
  EXPECT_TRUE(h.segmenter().UpdateModelIdle());
  EXPECT_EQ(h.segmenter().model_version(), 3u);
  EXPECT_FALSE(h.segmenter().UpdateModelIdle()) << "nothing more is due";
  EXPECT_FALSE(h.segmenter().stats().refit_running);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(started, 2);
  }

  // After a restart, before any batch: a request waits for one (no event time to fit at yet).
  h.Reopen();
  ASSERT_TRUE(h.segmenter().RequestRefit());
  EXPECT_FALSE(h.segmenter().UpdateModelIdle());
  EXPECT_FALSE(h.segmenter().stats().refit_running);
  EXPECT_TRUE(h.segmenter().stats().refit_requested);
}

// Several instances, one model: a follower never fits (not even its first model), adopts the
// versions the refitter publishes (newer ones only), and scores its customers with them; the
// refitter reports each version it fits, and drops a background fit that ends after it stopped
// being the refitter.
TEST(KMeansSegmenterTest, FollowerAdoptsTheRefittersVersionsAndNeverFits) {
  SegmentsConfig config = SmallConfig();
  config.rescore_per_batch = 1000;
  SegmenterHarness leader(config);
  std::vector<v1::SegmentModel> published;
  leader.segmenter().set_on_fitted([&](const v1::SegmentModel& m) { published.push_back(m); });
  leader.Run(SyntheticEvents(90));
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].version(), 1u);

  SegmenterHarness follower(config);
  follower.segmenter().SetRefitter(false);
  EXPECT_FALSE(follower.segmenter().RequestRefit()) << "a follower refuses a re-fit request";
  follower.Run(SyntheticEvents(90, 500));
  EXPECT_EQ(follower.segmenter().model(), nullptr) << "a follower never fits, not even the first";
  for (const auto& [id, s] : follower.Customers()) EXPECT_EQ(s.segment(), kUnscoredSegment) << id;

  ASSERT_OK(follower.segmenter().OfferModel(published[0]));
  follower.Run(SyntheticEvents(10, 700));  // the next batch adopts it
  ASSERT_NE(follower.segmenter().model(), nullptr);
  EXPECT_EQ(follower.segmenter().model_version(), 1u);
  EXPECT_EQ(follower.segmenter().adopted(), 1u);
  EXPECT_EQ(follower.segmenter().refits(), 0u);
  follower.Run(SyntheticEvents(10, 720));  // the sweep carries it to every stored customer
  for (const auto& [id, s] : follower.Customers()) {
    EXPECT_EQ(s.model_version(), 1u) << id;
    EXPECT_NE(s.segment(), kUnscoredSegment) << id;
  }
  // Stored like a fitted version: a restart keeps it.
  follower.Reopen();
  EXPECT_EQ(follower.segmenter().model_version(), 1u);

  // Older or equal versions are not adopted; a model of other features is refused, named.
  v1::SegmentModel older = published[0];
  ASSERT_OK(follower.segmenter().OfferModel(older));
  EXPECT_FALSE(follower.segmenter().AdoptOffered());
  SegmentsConfig other = config;
  other.features = "recency_days,frequency";
  SegmenterHarness stranger(other);
  std::vector<v1::SegmentModel> theirs;
  stranger.segmenter().set_on_fitted([&](const v1::SegmentModel& m) { theirs.push_back(m); });
  stranger.Run(SyntheticEvents(90));
  ASSERT_FALSE(theirs.empty());
  Status refused = follower.segmenter().OfferModel(theirs[0]);
  EXPECT_TRUE(refused.IsInvalidArgument()) << refused.ToString();
  EXPECT_NE(refused.message().find("recency_days,frequency"), std::string::npos) << refused.ToString();

  // A refitter that became a follower while its background fit ran drops the fit.
  config.refit_every_events = 25;
  SegmenterHarness demoted(config, /*background_refit=*/true);
  std::vector<v1::SegmentModel> fitted;
  demoted.segmenter().set_on_fitted([&](const v1::SegmentModel& m) { fitted.push_back(m); });
  demoted.Run(SyntheticEvents(300));  // cold start, then a background re-fit
  demoted.segmenter().WaitForBackgroundRefit();
  demoted.segmenter().SetRefitter(false);
  const uint64_t before = demoted.segmenter().model_version();
  demoted.Run(LateBuyers(1, 0, 1), 1);
  EXPECT_EQ(demoted.segmenter().model_version(), before);
  EXPECT_EQ(fitted.size(), static_cast<size_t>(before));
}

TEST(KMeansSegmenterTest, RescoreSweepWithoutMovingCentresOnlyRelabels) {
  SegmentsConfig off = SmallConfig();
  off.rescore_per_batch = 0;
  SegmentsConfig labels_only = SmallConfig();
  labels_only.rescore_per_batch = 40;
  labels_only.rescore_moves_centres = false;
  SegmenterHarness a(off), b(labels_only);
  for (SegmenterHarness* x : {&a, &b}) {
    x->Run(SyntheticEvents(300));
    for (int batch = 0; batch < 5; ++batch) x->Run(LateBuyers(2, 2 * batch, 1 + batch), 2);
  }
  // The same centres: the swept customers are scored, not learnt from.
  v1::SegmentModel pa = a.segmenter().CurrentProto(), pb = b.segmenter().CurrentProto();
  EXPECT_EQ(pa.online_centres().size(), pb.online_centres().size());
  for (int i = 0; i < pa.online_centres_size(); ++i) {
    EXPECT_EQ(pa.online_centres(i), pb.online_centres(i)) << i;
  }
  EXPECT_EQ(pb.online_rescored_points(), 0u);
  EXPECT_FALSE(pb.rescore_cursor().empty());
  EXPECT_TRUE(pa.rescore_cursor().empty());
}

TEST(KMeansSegmenterTest, OnlineRetailReplayGivesPlausibleNamedSegments) {
  const std::string input = testing::SharedDataDir() + "/online_retail/events.csv.gz";
  testing::TempDir dir;
  ReplayOptions options;
  options.config.state.path = dir.File("state");
  options.config.segments.method = "kmeans";
  options.config.catalog_path = testing::SharedDataDir() + "/online_retail/items.csv";
  options.input_path = input;
  ASSERT_OK_AND_ASSIGN(summary, RunReplay(options, SystemClock()));
  EXPECT_GT(summary.customers, 4000u);

  auto store_or = OpenRocksStateStore(options.config.state);
  ASSERT_TRUE(store_or.ok());
  auto store = std::move(store_or).value();
  ASSERT_OK_AND_ASSIGN(model, LoadStoredModel(store.get()));
  EXPECT_GE(model.version(), 2u);  // re-fitted as the population grew
  ASSERT_OK_AND_ASSIGN(profiles, ProfileSegments(store.get()));
  const SegmentProfile* champions = nullptr;
  const SegmentProfile* lapsed = nullptr;
  for (const SegmentProfile& p : profiles) {
    EXPECT_GE(p.cluster, 0) << p.segment << ": every customer is scored";
    if (p.segment == "Champions") champions = &p;
    if (p.segment == "Lost" || p.segment == "Hibernating") lapsed = &p;
  }
  ASSERT_NE(champions, nullptr);
  ASSERT_NE(lapsed, nullptr);
  EXPECT_GT(champions->mean_monetary, 2 * lapsed->mean_monetary);
  EXPECT_LT(champions->mean_recency_days, lapsed->mean_recency_days);
  EXPECT_GT(champions->mean_frequency, lapsed->mean_frequency);
}

}  // namespace
}  // namespace streamrec

namespace streamrec {
namespace {

// Without a store (the evaluation harness feeds one basket at a time), re-fits use every
// customer seen so far, not just the batch: a growth re-fit must succeed and move the version.
TEST(KMeansSegmenterStorelessTest, RefitsOnEveryCustomerSeen) {
  KMeansSegmenterOptions options;  // defaults: k auto, first fit at 200 customers
  options.logger = NewNullLogger();
  auto created = KMeansSegmenter::Create(options, nullptr);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::unique_ptr<KMeansSegmenter> segmenter = std::move(created).value();
  FeatureOptions features;
  const int64_t t0 = 1700000000000;
  std::vector<CustomerState> states;
  for (int i = 0; i < 600; ++i) {
    CustomerState s = NewCustomerState("c" + std::to_string(i));
    for (int j = 0; j <= i % 7; ++j) {
      PurchaseEvent e;
      e.customer_id = s.customer_id();
      e.item_id = "i" + std::to_string(j);
      e.event_time_ms = t0 + (i + j) * 3600000LL;
      e.amount = 5.0 * (1 + i % 11);
      ApplyEvent(features, e, nullptr, &s);
    }
    states.push_back(s);
  }
  for (int i = 0; i < 600; ++i) {  // one customer per batch
    CustomerState* one = &states[i];
    segmenter->AssignBatch(std::span<CustomerState* const>(&one, 1), t0 + i * 3600000LL);
  }
  EXPECT_GE(segmenter->model_version(), 2u) << "growth re-fits on the customers seen";
  for (int i = 550; i < 600; ++i) EXPECT_GE(states[i].cluster(), 0) << states[i].customer_id();
}

}  // namespace
}  // namespace streamrec
