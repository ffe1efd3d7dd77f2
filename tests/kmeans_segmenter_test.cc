#include "streamrec/kmeans_segmenter.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>

#include "streamrec/clock.h"
#include "streamrec/pipeline.h"
#include "streamrec/replay.h"
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

class SegmenterHarness {
 public:
  explicit SegmenterHarness(SegmentsConfig config) : store_(NewMemStateStore()), config_(config) {
    decoder_ = std::move(NewCsvDecoder(DecoderOptions(), kHeader)).value();
    recommender_ = NewPopularityRecommender(RecommenderOptions(), nullptr);
    Reopen();
  }

  // A new segmenter and pipeline on the same store (a restart).
  void Reopen() {
    KMeansSegmenterOptions options;
    options.config = config_;
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

  StateStore* store() { return store_.get(); }
  KMeansSegmenter& segmenter() { return *segmenter_; }

 private:
  std::unique_ptr<StateStore> store_;
  SegmentsConfig config_;
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
