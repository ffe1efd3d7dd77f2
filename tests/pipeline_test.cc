#include "streamrec/pipeline.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

#include "streamrec/blended_recommender.h"
#include "streamrec/kmeans_segmenter.h"
#include "streamrec/recommend_index.h"
#include "testutil/fault_store.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

constexpr const char* kHeader = "customer_id,item_id,timestamp,quantity,unit_price,amount,channel";

// Owns a store, decoder, segmenter, recommender and pipeline over an in-memory store.
class Harness {
 public:
  // `blended`: the blended recommender (it keeps an index of customers) instead of popularity.
  explicit Harness(StateStore* store = nullptr,
                   const std::function<void(PipelineOptions*)>& tweak = nullptr,
                   bool blended = false)
      : own_store_(NewMemStateStore()) {
    store_ = store != nullptr ? store : own_store_.get();
    options_.recommend.list_length = 3;
    options_.recommend.control_share = 0.0;
    if (tweak) tweak(&options_);
    decoder_ = std::move(NewCsvDecoder(DecoderOptions(), kHeader)).value();
    segmenter_ = NewRfmRuleSegmenter();
    if (blended) {
      recommender_ = std::move(NewBlendedRecommender(options_.recommend, nullptr)).value();
    } else {
      recommender_ = NewPopularityRecommender(options_.recommend, nullptr);
    }
    pipeline_ = std::make_unique<Pipeline>(options_, store_, nullptr, segmenter_.get(),
                                           recommender_.get());
    EXPECT_OK(pipeline_->Open());
  }

  Status Run(const std::vector<std::string>& lines, uint64_t first_offset, BatchResult* result) {
    return RunIn(0, lines, first_offset, result);
  }
  Status RunIn(uint32_t partition, const std::vector<std::string>& lines, uint64_t first_offset,
               BatchResult* result) {
    lines_ = lines;
    std::vector<SourceRecord> records;
    for (size_t i = 0; i < lines_.size(); ++i) {
      records.push_back(SourceRecord{first_offset + i, {}, lines_[i]});
    }
    return pipeline_->ProcessBatch(partition, records, decoder_.get(), result);
  }

  std::vector<v1::OutboxRecord> Drain() {
    std::vector<v1::OutboxRecord> out;
    auto n = DrainOutbox(store_, 0, [&](const v1::OutboxRecord& r) {
      out.push_back(r);
      return Status::OK();
    });
    EXPECT_TRUE(n.ok());
    return out;
  }

  CustomerState Customer(const std::string& id) {
    std::string value;
    CustomerState state;
    EXPECT_OK(store_->Get(Column::kCustomers, PartitionKey(0, id), &value));
    EXPECT_OK(DecodeState(value, &state));
    return state;
  }

  StateStore* store() { return store_; }
  Pipeline& pipeline() { return *pipeline_; }
  Recommender& recommender() { return *recommender_; }

 private:
  std::unique_ptr<StateStore> own_store_;
  StateStore* store_;
  PipelineOptions options_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<Segmenter> segmenter_;
  std::unique_ptr<Recommender> recommender_;
  std::unique_ptr<Pipeline> pipeline_;
  std::vector<std::string> lines_;
};

std::vector<std::string> Lists(const std::vector<v1::OutboxRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) {
    if (r.payload_case() == v1::OutboxRecord::kList) out.push_back(r.key());
  }
  return out;
}

TEST(PipelineTest, AppliesBatchAndStoresPositionAtomically) {
  Harness h;
  BatchResult r;
  ASSERT_OK(h.Run({"c1,A,2011-01-01 10:00:00,1,2.0,2.0,web",
                   "c1,B,2011-01-01 10:00:00,1,3.0,3.0,web",
                   "c2,A,2011-01-02 10:00:00,2,2.0,4.0,",
                   "c3,,2011-01-02 10:00:00,1,1,1,",   // invalid: no item
                   "c2,B,2011-01-03 10:00:00,1,,,"},  // valid: no price
                  0, &r));
  EXPECT_EQ(r.records, 5u);
  EXPECT_EQ(r.events, 4u);
  ASSERT_EQ(r.invalid.size(), 1u);
  EXPECT_EQ(r.invalid[0].offset, 3u);
  EXPECT_NE(r.invalid[0].status.message().find("item_id"), std::string::npos);
  EXPECT_EQ(r.new_customers, 2u);
  EXPECT_EQ(r.customers_changed, 2u);
  EXPECT_EQ(r.lists_published, 2u);

  CustomerState c1 = h.Customer("c1");
  EXPECT_EQ(c1.purchase_count(), 1u);
  EXPECT_DOUBLE_EQ(c1.total_spend(), 5.0);
  EXPECT_EQ(c1.segment(), "New");
  EXPECT_EQ(c1.list_version(), 1u);
  CustomerState c2 = h.Customer("c2");
  EXPECT_EQ(c2.purchase_count(), 2u);
  EXPECT_DOUBLE_EQ(c2.total_spend(), 4.0);  // the unpriced line adds nothing
  EXPECT_EQ(c2.segment(), "Promising");

  ASSERT_OK_AND_ASSIGN(pos, h.pipeline().Position(0));
  EXPECT_EQ(pos.next_offset(), 5u);
  EXPECT_EQ(pos.events(), 4u);
  EXPECT_EQ(pos.invalid(), 1u);
  EXPECT_EQ(pos.customers(), 2u);

  std::vector<v1::OutboxRecord> out = h.Drain();
  EXPECT_EQ(Lists(out), (std::vector<std::string>{"c1", "c2"}));
  EXPECT_TRUE(h.Drain().empty()) << "drained records are deleted";
}

// The hand-off to the outbox publisher: BatchResult::outbox is exactly what the batch committed
// to the outbox (place and record, byte for byte, in sequence order), and empty when the batch
// failed.
TEST(PipelineTest, BatchResultCarriesExactlyTheOutboxRecordsItCommitted) {
  std::unique_ptr<StateStore> base = NewMemStateStore();
  testing::FaultInjectingStore store(base.get());
  Harness h(&store, [](PipelineOptions* o) { o->dead_letters = true; });
  auto stored_from = [&](uint64_t first) {
    std::vector<std::pair<uint64_t, std::string>> out;
    EXPECT_OK(base->ScanFrom(Column::kOutbox, PartitionPrefix(0), OutboxKey(0, first),
                             [&](std::string_view key, std::string_view value) {
                               out.emplace_back(OutboxSequence(key), std::string(value));
                               return true;
                             }));
    return out;
  };
  auto handed_over = [](const BatchResult& r) {
    std::vector<std::pair<uint64_t, std::string>> out;
    for (const OutboxEntry& e : r.outbox) {
      EXPECT_EQ(e.partition, 0u);
      out.emplace_back(e.sequence, EncodeState(e.record));
    }
    return out;
  };

  BatchResult r1;
  ASSERT_OK(h.Run({"c1,A,2011-01-01 10:00:00,1,5,5,", "c2,,2011-01-01 10:00:00,1,1,1,",
                   "c2,B,2011-01-01 11:00:00,1,2,2,"},
                  0, &r1));
  EXPECT_EQ(r1.invalid.size(), 1u);
  EXPECT_EQ(r1.outbox.size(), 1 + r1.lists_published + r1.segment_changes);
  ASSERT_FALSE(r1.outbox.empty());
  EXPECT_EQ(r1.outbox.front().record.payload_case(), v1::OutboxRecord::kDeadLetter);
  EXPECT_EQ(handed_over(r1), stored_from(0));

  BatchResult r2;
  ASSERT_OK(h.Run({"c3,A,2011-01-02 10:00:00,1,1,1,", "c1,B,2011-01-02 10:00:00,1,1,1,"}, 3, &r2));
  ASSERT_FALSE(r2.outbox.empty());
  EXPECT_EQ(r2.outbox.front().sequence, r1.outbox.back().sequence + 1);
  EXPECT_EQ(handed_over(r2), stored_from(r2.outbox.front().sequence));

  store.FailNextWrites(1);
  BatchResult r3;
  EXPECT_FALSE(h.Run({"c4,A,2011-01-03 10:00:00,1,1,1,"}, 5, &r3).ok());
  EXPECT_TRUE(r3.outbox.empty());
  EXPECT_EQ(stored_from(r2.outbox.back().sequence + 1).size(), 0u);
}

TEST(PipelineTest, RedeliveredRecordsAreNotCountedTwice) {
  Harness h;
  BatchResult r;
  std::vector<std::string> batch = {"c1,A,2011-01-01 10:00:00,1,2.0,2.0,web",
                                    "c1,B,2011-01-02 10:00:00,1,2.0,2.0,web"};
  ASSERT_OK(h.Run(batch, 0, &r));
  auto digest = StateDigest(h.store());
  ASSERT_OK(h.Run(batch, 0, &r));  // the same offsets again (e.g. after a crash)
  EXPECT_EQ(r.records, 0u);
  EXPECT_EQ(*StateDigest(h.store()), *digest);
  // A batch that overlaps: only the new record is applied.
  ASSERT_OK(h.Run({"c1,B,2011-01-02 10:00:00,1,2.0,2.0,web", "c1,C,2011-01-03 10:00:00,1,2,2,"}, 1,
                  &r));
  EXPECT_EQ(r.records, 1u);
  EXPECT_EQ(h.Customer("c1").event_count(), 3u);
}

TEST(PipelineTest, ListPublishedOnlyWhenItChangesAndNeverFromTheFuture) {
  Harness h;
  BatchResult r;
  ASSERT_OK(h.Run({"c1,A,2011-01-01 10:00:00,1,1,1,", "c2,B,2011-01-01 11:00:00,1,1,1,"}, 0, &r));
  auto first = h.Drain();
  ASSERT_EQ(Lists(first), (std::vector<std::string>{"c1", "c2"}));
  // c1's list is built at as_of = the batch's newest event; item Z is bought only later.
  for (const auto& rec : first) {
    if (rec.payload_case() != v1::OutboxRecord::kList) continue;
    EXPECT_EQ(rec.list().as_of_ms(), 1293879600000);  // 2011-01-01T11:00:00Z
    for (const auto& item : rec.list().items()) EXPECT_NE(item.item_id(), "Z");
  }
  // c1 buys A again: the popularity list (B, owned A removed) is unchanged -> not published.
  ASSERT_OK(h.Run({"c1,A,2011-01-02 10:00:00,1,1,1,"}, 2, &r));
  EXPECT_EQ(r.lists_published, 0u);
  EXPECT_EQ(h.Customer("c1").list_version(), 1u);
  // New items change c1's list -> published with version 2.
  ASSERT_OK(h.Run({"c3,Z,2011-01-03 10:00:00,1,1,1,", "c1,Y,2011-01-03 10:00:00,1,1,1,"}, 3, &r));
  auto later = h.Drain();
  std::set<std::string> keys;
  for (const auto& rec : later) {
    if (rec.payload_case() != v1::OutboxRecord::kList) continue;
    keys.insert(rec.key());
    if (rec.key() == "c1") {
      EXPECT_EQ(rec.list().version(), 2u);
    }
  }
  EXPECT_EQ(keys, (std::set<std::string>{"c1", "c3"}));
}

// Popularity moves on without a quiet customer: a list older than refresh_after_days is
// recomputed in a later batch, at most refresh_per_batch per batch, and published only when it
// changed.
TEST(PipelineTest, StaleListsOfQuietCustomersAreRefreshedRateLimited) {
  Harness h(nullptr, [](PipelineOptions* o) {
    o->recommend.refresh_after_days = 7;
    o->recommend.refresh_per_batch = 1;
  });
  BatchResult r;
  ASSERT_OK(h.Run({"q1,A,2011-01-01 10:00:00,1,1,1,", "q2,A,2011-01-01 10:00:00,1,1,1,"}, 0, &r));
  ASSERT_OK(h.Run({"b1,B,2011-01-02 10:00:00,1,1,1,"}, 2, &r));
  EXPECT_EQ(r.lists_refreshed, 0u) << "nothing is a week old yet";
  h.Drain();
  // Day 10: every earlier list is stale; one is refreshed per batch, in key order (b1 first).
  ASSERT_OK(h.Run({"b2,C,2011-01-10 10:00:00,1,1,1,"}, 3, &r));
  EXPECT_EQ(r.lists_refreshed, 1u);
  EXPECT_EQ(Lists(h.Drain()), (std::vector<std::string>{"b2", "b1"}));
  ASSERT_OK(h.Run({"b3,C,2011-01-10 10:01:00,1,1,1,"}, 4, &r));
  EXPECT_EQ(r.lists_refreshed, 1u);
  EXPECT_EQ(Lists(h.Drain()), (std::vector<std::string>{"b3", "q1"})) << "b2 is fresh";
  ASSERT_OK(h.Run({"b4,C,2011-01-10 10:02:00,1,1,1,"}, 5, &r));
  EXPECT_EQ(Lists(h.Drain()), (std::vector<std::string>{"b4", "q2"}));
  EXPECT_EQ(h.Customer("q2").list_version(), 2u);
  EXPECT_EQ(h.Customer("q2").list_as_of_ms(), 1294653720000);  // 2011-01-10T10:02:00Z
}

TEST(PipelineTest, RefreshedListEqualToThePublishedOneIsNotPublishedAgain) {
  Harness h(nullptr, [](PipelineOptions* o) { o->recommend.refresh_after_days = 7; });
  BatchResult r;
  ASSERT_OK(h.Run({"q1,A,2011-01-01 10:00:00,1,1,1,", "b1,B,2011-01-01 10:00:00,1,1,1,"}, 0, &r));
  h.Drain();
  // Day 9: both lists are stale and recomputed, but A and B are still the only items.
  ASSERT_OK(h.Run({"b2,B,2011-01-09 10:00:00,1,1,1,"}, 2, &r));
  EXPECT_EQ(r.lists_refreshed, 2u);
  EXPECT_EQ(Lists(h.Drain()), (std::vector<std::string>{"b2"}));
  CustomerState q1 = h.Customer("q1");
  EXPECT_EQ(q1.list_version(), 1u);
  EXPECT_EQ(q1.list_as_of_ms(), 1293876000000);    // published 2011-01-01T10:00:00Z
  EXPECT_EQ(q1.list_checked_ms(), 1294567200000);  // recomputed 2011-01-09T10:00:00Z
  // Checked a moment ago: the next batch leaves it alone.
  ASSERT_OK(h.Run({"b3,B,2011-01-09 11:00:00,1,1,1,"}, 3, &r));
  EXPECT_EQ(r.lists_refreshed, 0u);
}

TEST(PipelineTest, SegmentChangesGoToTheOutbox) {
  Harness h;
  BatchResult r;
  ASSERT_OK(h.Run({"c1,A,2011-01-01 10:00:00,1,1,1,"}, 0, &r));
  EXPECT_EQ(r.segment_changes, 1u);  // unassigned -> New
  ASSERT_OK(h.Run({"c1,A,2011-01-02 10:00:00,1,1,1,"}, 1, &r));
  EXPECT_EQ(r.segment_changes, 1u);  // New -> Promising
  ASSERT_OK(h.Run({"c1,A,2011-01-03 10:00:00,1,1,1,"}, 2, &r));
  EXPECT_EQ(r.segment_changes, 0u);  // still Promising
  std::vector<std::string> moves;
  for (const auto& rec : h.Drain()) {
    if (rec.payload_case() == v1::OutboxRecord::kSegmentChange) {
      moves.push_back(rec.segment_change().from_segment() + ">" + rec.segment_change().to_segment());
    }
  }
  EXPECT_EQ(moves, (std::vector<std::string>{">New", "New>Promising"}));
}

// Labels batch customers "New" and, at every batch, moves stored customer x9 (partition 7) to
// the next cluster without a purchase, as a re-fit or the rescore sweep does.
class RelabellingSegmenter : public Segmenter {
 public:
  explicit RelabellingSegmenter(StateStore* store) : store_(store) {}
  void AssignBatch(std::span<CustomerState* const> changed, int64_t now_ms) override {
    for (CustomerState* s : changed) {
      s->set_cluster(0);
      s->set_segment("New");
    }
    std::string value;
    EXPECT_OK(store_->Get(Column::kCustomers, PartitionKey(7, "x9"), &value));
    EXPECT_OK(DecodeState(value, &x9_));
    SegmentRelabel r;
    r.key = PartitionKey(7, "x9");
    r.change.set_customer_id("x9");
    r.change.set_from_cluster(x9_.cluster());
    r.change.set_from_segment(x9_.segment());
    x9_.set_cluster(x9_.cluster() + 1);
    x9_.set_segment("Moved " + std::to_string(x9_.cluster()));
    r.change.set_to_cluster(x9_.cluster());
    r.change.set_to_segment(x9_.segment());
    r.change.set_event_time_ms(now_ms);
    relabels_ = {r};
  }
  void AppendWrites(WriteSet* writes) override {
    writes->Put(Column::kCustomers, PartitionKey(7, "x9"), EncodeState(x9_));
  }
  void TakeRelabels(std::vector<SegmentRelabel>* out) override {
    out->clear();
    out->swap(relabels_);
  }
  uint64_t model_version() const override { return 1; }
  std::vector<SegmentInfo> Segments() const override { return {}; }

 private:
  StateStore* store_;
  CustomerState x9_;
  std::vector<SegmentRelabel> relabels_;
};

// Popularity lists, and a record of the customers relabelled without a purchase.
class RelabelRecorder : public Recommender {
 public:
  RelabelRecorder() : lists_(NewPopularityRecommender(RecommenderOptions(), nullptr)) {}
  bool ObservesCustomers() const override { return true; }
  void ObserveRelabel(const CustomerState& state) override {
    relabelled.push_back(state.customer_id() + ":" + std::to_string(state.cluster()));
  }
  void BeginBatch(const ItemStatsTable& items, int64_t now_ms) override {
    lists_->BeginBatch(items, now_ms);
  }
  void Recommend(const CustomerState& c, std::vector<Recommendation>* out) override {
    lists_->Recommend(c, out);
  }
  std::vector<std::string> relabelled;

 private:
  std::unique_ptr<Recommender> lists_;
};

TEST(PipelineTest, StoredCustomersTheSegmenterRelabelsGetASegmentChangeInTheirOwnPartition) {
  std::unique_ptr<StateStore> store = NewMemStateStore();
  {
    WriteSet w;
    CustomerState x9 = NewCustomerState("x9");
    x9.set_cluster(1);
    x9.set_segment("Loyal");
    w.Put(Column::kCustomers, PartitionKey(7, "x9"), EncodeState(x9));
    v1::SourcePosition p7;
    p7.set_source("file");
    p7.set_partition(7);
    p7.set_outbox_seq(5);
    w.Put(Column::kPositions, PositionKey("file", 7), EncodeState(p7));
    ASSERT_OK(store->Write(w));
  }
  RelabellingSegmenter segmenter(store.get());
  RelabelRecorder recommender;
  Pipeline pipeline(PipelineOptions(), store.get(), nullptr, &segmenter, &recommender);
  ASSERT_OK(pipeline.Open());
  auto decoder = std::move(NewCsvDecoder(DecoderOptions(), kHeader)).value();
  const std::string lines[] = {"c1,A,2011-01-01 10:00:00,1,1,1,",
                               "c1,A,2011-01-02 10:00:00,1,1,1,"};
  for (uint64_t offset = 0; offset < 2; ++offset) {
    BatchResult r;
    ASSERT_OK(
        pipeline.ProcessBatch(0, {SourceRecord{offset, {}, lines[offset]}}, decoder.get(), &r));
    EXPECT_EQ(r.segment_changes, offset == 0 ? 2u : 1u);  // c1 scored once; x9 moves each time
    EXPECT_EQ(r.other_outbox_partitions, std::vector<uint32_t>{7});
    // Handed over too, with their places: x9's change at partition 7's next sequence.
    size_t to_7 = 0;
    for (const OutboxEntry& e : r.outbox) {
      if (e.partition != 7) continue;
      ++to_7;
      EXPECT_EQ(e.sequence, 5 + offset);
      EXPECT_EQ(e.record.key(), "x9");
    }
    EXPECT_EQ(to_7, 1u);
  }
  // The recommender's index followed both moves.
  EXPECT_EQ(recommender.relabelled, (std::vector<std::string>{"x9:2", "x9:3"}));
  // Partition 7's outbox holds x9's changes, in order, after its stored sequence numbers.
  std::vector<std::string> moves;
  std::vector<uint64_t> seqs;
  ASSERT_OK(store->Scan(Column::kOutbox, PartitionPrefix(7),
                        [&](std::string_view key, std::string_view value) {
                          v1::OutboxRecord record;
                          EXPECT_OK(DecodeState(value, &record));
                          EXPECT_EQ(record.key(), "x9");
                          moves.push_back(record.segment_change().from_segment() + ">" +
                                          record.segment_change().to_segment());
                          seqs.push_back(OutboxSequence(key));
                          return true;
                        }));
  EXPECT_EQ(moves, (std::vector<std::string>{"Loyal>Moved 2", "Moved 2>Moved 3"}));
  EXPECT_EQ(seqs, (std::vector<uint64_t>{5, 6}));
  ASSERT_OK_AND_ASSIGN(p7, pipeline.Position(7));
  EXPECT_EQ(p7.outbox_seq(), 7u);
  std::string value;
  ASSERT_OK(store->Get(Column::kPositions, PositionKey("file", 7), &value));
  v1::SourcePosition stored;
  ASSERT_OK(DecodeState(value, &stored));
  EXPECT_EQ(stored.outbox_seq(), 7u);
  // Partition 0's outbox has c1's own change only.
  size_t changes0 = 0;
  ASSERT_OK(DrainOutbox(store.get(), 0, [&](const v1::OutboxRecord& r) {
              changes0 += r.payload_case() == v1::OutboxRecord::kSegmentChange;
              return Status::OK();
            }).status());
  EXPECT_EQ(changes0, 1u);
}

TEST(PipelineTest, FailedWriteLeavesNoTraceAndRetrySucceeds) {
  std::vector<std::string> b1 = {"c1,A,2011-01-01 10:00:00,1,1,1,", "c2,B,2011-01-01 10:00:00,1,1,1,"};
  std::vector<std::string> b2 = {"c1,B,2011-01-02 10:00:00,1,1,1,", "c3,A,2011-01-02 10:00:00,1,1,1,"};
  Harness clean;
  BatchResult r;
  ASSERT_OK(clean.Run(b1, 0, &r));
  ASSERT_OK(clean.Run(b2, 2, &r));

  auto base = NewMemStateStore();
  testing::FaultInjectingStore faulty(base.get());
  Harness h(&faulty);
  ASSERT_OK(h.Run(b1, 0, &r));
  auto before = StateDigest(base.get());
  faulty.FailNextWrites(1);
  Status s = h.Run(b2, 2, &r);
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_EQ(*StateDigest(base.get()), *before);
  ASSERT_OK(h.Run(b2, 2, &r));  // retry of the same batch
  EXPECT_EQ(*StateDigest(base.get()), *StateDigest(clean.store()));
  // In-memory item statistics were rolled back too: B counted once.
  EXPECT_EQ(h.pipeline().item_stats().at("B").count(), 2u);
}

// Item statistics are partition state: each partition stores its own, and item_stats() sums
// them. An instance that owns some partitions sums the others' from what their owners publish
// (ApplyRemoteItemStats): the same totals as one pipeline that saw every purchase.
TEST(PipelineTest, ItemStatisticsArePartitionStateSummedOverPartitions) {
  const std::vector<std::string> p0 = {"c1,A,2011-01-01 10:00:00,1,2.0,2.0,",
                                       "c2,B,2011-01-02 10:00:00,2,3.0,6.0,"};
  const std::vector<std::string> p1 = {"c3,A,2011-01-20 10:00:00,3,2.5,7.5,",
                                       "c4,A,2011-01-03 10:00:00,1,2.0,2.0,",
                                       "c3,A,2011-01-21 10:00:00,1,2.5,2.5,"};
  Harness one;  // every purchase in one partition
  std::vector<std::string> all = p0;
  all.insert(all.end(), p1.begin(), p1.end());
  BatchResult r;
  ASSERT_OK(one.Run(all, 0, &r));
  Harness two;  // the same purchases in partitions 0 and 1
  ASSERT_OK(two.RunIn(0, p0, 0, &r));
  ASSERT_OK(two.RunIn(1, p1, 0, &r));
  std::string value;
  ASSERT_OK(two.store()->Get(Column::kItems, PartitionKey(0, "A"), &value));
  ASSERT_OK(two.store()->Get(Column::kItems, PartitionKey(1, "A"), &value));
  EXPECT_TRUE(two.store()->Get(Column::kItems, PartitionKey(1, "B"), &value).IsNotFound());
  ASSERT_NE(two.pipeline().PartitionItemStats(1, "A"), nullptr);
  EXPECT_EQ(two.pipeline().PartitionItemStats(1, "A")->count(), 3u);

  auto expect_same = [](const ItemStats& got, const ItemStats& want) {
    EXPECT_EQ(got.item_id(), want.item_id());
    EXPECT_EQ(got.count(), want.count());
    EXPECT_EQ(got.customers(), want.customers());
    EXPECT_DOUBLE_EQ(got.quantity(), want.quantity());
    EXPECT_DOUBLE_EQ(got.revenue(), want.revenue());
    EXPECT_EQ(got.first_time_ms(), want.first_time_ms());
    EXPECT_EQ(got.last_time_ms(), want.last_time_ms());
    EXPECT_NEAR(got.decayed_count(), want.decayed_count(), 1e-12);
    EXPECT_DOUBLE_EQ(got.last_price(), want.last_price());
  };
  const ItemStats& want_a = one.pipeline().item_stats().at("A");
  EXPECT_EQ(want_a.count(), 4u);
  EXPECT_EQ(want_a.customers(), 3u);
  expect_same(two.pipeline().item_stats().at("A"), want_a);
  expect_same(two.pipeline().item_stats().at("B"), one.pipeline().item_stats().at("B"));
  EXPECT_EQ(two.pipeline().item_purchases(), 5u);
  EXPECT_EQ(two.pipeline().item_buyers(), 4u);

  // A store reopened sums the same.
  Harness reopened(two.store());
  expect_same(reopened.pipeline().item_stats().at("A"), want_a);

  // An instance owning partition 0 only, told partition 1's statistics by their owner.
  Harness mine;
  ASSERT_OK(mine.pipeline().SetOwnedPartitions({0}));
  ASSERT_OK(mine.RunIn(0, p0, 0, &r));
  EXPECT_EQ(mine.pipeline().item_stats().at("A").count(), 1u);
  mine.pipeline().ApplyRemoteItemStats(1, *two.pipeline().PartitionItemStats(1, "A"));
  expect_same(mine.pipeline().item_stats().at("A"), want_a);
  // Cumulative records: one received twice counts once.
  mine.pipeline().ApplyRemoteItemStats(1, *two.pipeline().PartitionItemStats(1, "A"));
  expect_same(mine.pipeline().item_stats().at("A"), want_a);
  EXPECT_EQ(mine.pipeline().item_purchases(), 5u);
  // A record of an owned partition (its own, come back from the topic) is not used: the store
  // is newer.
  ItemStats stale = *two.pipeline().PartitionItemStats(0, "A");
  stale.set_count(100);
  mine.pipeline().ApplyRemoteItemStats(0, stale);
  expect_same(mine.pipeline().item_stats().at("A"), want_a);
  // Partition 0 handed over: from now on its owner's records count, not the store's.
  ASSERT_OK(mine.pipeline().SetOwnedPartitions({}));
  EXPECT_EQ(mine.pipeline().item_stats().at("A").count(), 103u);
  EXPECT_EQ(mine.pipeline().item_stats().count("B"), 0u) << "no record of partition 0's B yet";
  ASSERT_OK(mine.pipeline().SetOwnedPartitions({0}));
  expect_same(mine.pipeline().item_stats().at("A"), want_a);
}

// Co-occurrence is shared like the item statistics, but as rows (an item's buyers and
// neighbours in one partition) an instance publishes for its owned partitions: with every
// other partition's rows added, each instance's co-occurrence is that of one pipeline over
// every customer. Rows are cumulative (applying one twice changes nothing), only what changed
// is handed out, and a new owner hands out whatever the topic lacks.
TEST(PipelineTest, RestoredPartitionsAndANewOwnedSetRebuildTheIndexOnce) {
  // A rebalance that restores partitions from the changelog and changes the owned set scans the
  // store once for the recommender's index, not once for each.
  const std::vector<std::string> p0 = {
      "c1,A,2011-01-01 10:00:00,1,2.0,2.0,", "c1,B,2011-01-01 10:00:00,1,3.0,3.0,",
      "c2,A,2011-01-02 10:00:00,2,2.0,4.0,", "c2,C,2011-01-02 10:00:00,1,5.0,5.0,"};
  const std::vector<std::string> p1 = {"c3,A,2011-01-03 10:00:00,1,2.0,2.0,",
                                       "c3,B,2011-01-03 10:00:00,1,3.0,3.0,"};
  auto shared = [](PipelineOptions* o) { o->share_cooccurrence = true; };
  BatchResult r;
  Harness a(nullptr, shared, /*blended=*/true);
  ASSERT_OK(a.pipeline().SetOwnedPartitions({0, 1}));
  ASSERT_OK(a.RunIn(0, p0, 0, &r));
  ASSERT_OK(a.RunIn(1, p1, 0, &r));
  const auto totals = a.recommender().cooccurrence_totals();
  ASSERT_GT(totals.second, 0u);
  ASSERT_OK(a.pipeline().SetOwnedPartitions({0}));
  const uint64_t before = a.pipeline().recommender_index_rebuilds();
  EXPECT_NE(a.recommender().cooccurrence_totals(), totals) << "partition 1 went";
  ASSERT_OK(a.pipeline().PartitionsReplaced({1}));
  EXPECT_EQ(a.pipeline().recommender_index_rebuilds(), before) << "not yet";
  ASSERT_OK(a.pipeline().SetOwnedPartitions({0, 1}));
  EXPECT_EQ(a.pipeline().recommender_index_rebuilds(), before + 1);
  ASSERT_OK(a.pipeline().EnsureRecommenderIndex());
  EXPECT_EQ(a.pipeline().recommender_index_rebuilds(), before + 1);
  EXPECT_EQ(a.recommender().cooccurrence_totals(), totals);

  // Without shared co-occurrence the owned set does not touch the index; the next batch
  // rebuilds it after a restore (or the service, at the end of the rebalance).
  Harness b(nullptr, nullptr, /*blended=*/true);
  ASSERT_OK(b.RunIn(0, p0, 0, &r));
  const auto b_totals = b.recommender().cooccurrence_totals();
  const uint64_t b_before = b.pipeline().recommender_index_rebuilds();
  ASSERT_OK(b.pipeline().PartitionsReplaced({0}));
  ASSERT_OK(b.RunIn(1, p1, 0, &r));
  EXPECT_EQ(b.pipeline().recommender_index_rebuilds(), b_before + 1);
  ASSERT_OK(b.RunIn(1, {"c3,C,2011-01-04 10:00:00,1,5.0,5.0,"}, 2, &r));
  EXPECT_EQ(b.pipeline().recommender_index_rebuilds(), b_before + 1) << "once";
  EXPECT_NE(b.recommender().cooccurrence_totals(), b_totals) << "c3's baskets were observed";
}

TEST(PipelineTest, CooccurrenceRowsOfOtherPartitionsAddUpToOnePipelines) {
  const std::vector<std::string> p0 = {
      "c1,A,2011-01-01 10:00:00,1,2.0,2.0,", "c1,B,2011-01-01 10:00:00,1,3.0,3.0,",
      "c2,A,2011-01-02 10:00:00,2,2.0,4.0,", "c2,C,2011-01-02 10:00:00,1,5.0,5.0,"};
  const std::vector<std::string> p1 = {
      "c3,A,2011-01-03 10:00:00,1,2.0,2.0,", "c3,B,2011-01-03 10:00:00,1,3.0,3.0,",
      "c4,B,2011-01-04 10:00:00,1,3.0,3.0,", "c4,D,2011-01-04 10:00:00,1,4.0,4.0,",
      "c4,C,2011-01-05 10:00:00,1,5.0,5.0,"};
  const std::vector<std::string> more = {"c1,D,2011-01-06 10:00:00,1,4.0,4.0,"};
  auto shared = [](PipelineOptions* o) {
    o->share_cooccurrence = true;
    o->cooccurrence_neighbours = 0;  // uncut rows: exact sums
  };
  BatchResult r;
  Harness one(nullptr, nullptr, /*blended=*/true);  // both partitions in one pipeline
  ASSERT_OK(one.RunIn(0, p0, 0, &r));
  ASSERT_OK(one.RunIn(1, p1, 0, &r));
  const auto want = one.recommender().cooccurrence_totals();
  ASSERT_GT(want.second, 0u);

  Harness a(nullptr, shared, true), b(nullptr, shared, true);
  ASSERT_OK(a.pipeline().SetOwnedPartitions({0}));
  ASSERT_OK(b.pipeline().SetOwnedPartitions({1}));
  ASSERT_OK(a.RunIn(0, p0, 0, &r));
  ASSERT_OK(b.RunIn(1, p1, 0, &r));
  EXPECT_NE(a.recommender().cooccurrence_totals(), want) << "partition 0's customers alone";
  // Each hands its rows to the other, through the topic's encoding.
  // `predecoded`: as the exchange hands rows over, with the decoding its feed thread made.
  auto exchange = [](Harness& from, Harness& to, bool predecoded = false) {
    auto rows = from.pipeline().TakeCooccurrenceRows();
    for (const auto& row : rows) {
      std::string_view value = row.encoded.has_value() ? std::string_view(*row.encoded) : "";
      CooccurrenceRow decoded;
      if (predecoded && row.encoded) EXPECT_OK(DecodeCooccurrenceRow(row.item_id, value, &decoded));
      EXPECT_OK(to.pipeline().ApplyRemoteCooccurrence(
          row.partition, row.item_id, row.encoded ? &value : nullptr,
          predecoded && row.encoded ? &decoded : nullptr));
      // Its own row come back from the topic changes nothing: the partition is owned.
      EXPECT_OK(from.pipeline().ApplyRemoteCooccurrence(row.partition, row.item_id,
                                                        row.encoded ? &value : nullptr));
    }
    return rows;
  };
  auto rows_a = exchange(a, b);
  EXPECT_EQ(rows_a.size(), 3u) << "A, B and C of partition 0";
  for (const auto& row : rows_a) EXPECT_EQ(row.partition, 0u);
  auto rows_b = exchange(b, a, /*predecoded=*/true);
  EXPECT_EQ(rows_b.size(), 4u) << "A, B, C and D of partition 1";
  EXPECT_EQ(a.recommender().cooccurrence_totals(), want);
  EXPECT_EQ(b.recommender().cooccurrence_totals(), want);
  EXPECT_EQ(a.pipeline().cooccurrence_remote_rows(), 4u);
  EXPECT_TRUE(a.pipeline().TakeCooccurrenceRows().empty()) << "nothing changed since";
  // A row received twice counts once.
  exchange(b, a);
  for (const auto& row : rows_b) {
    std::string_view value(*row.encoded);
    ASSERT_OK(a.pipeline().ApplyRemoteCooccurrence(row.partition, row.item_id, &value));
  }
  EXPECT_EQ(a.recommender().cooccurrence_totals(), want);

  // c1 buys D: only the rows of c1's items change (A, B, D; not C), and B follows.
  ASSERT_OK(one.RunIn(0, more, 4, &r));
  ASSERT_OK(a.RunIn(0, more, 4, &r));
  rows_a = exchange(a, b);
  std::set<std::string> changed;
  for (const auto& row : rows_a) changed.insert(row.item_id);
  EXPECT_EQ(changed, (std::set<std::string>{"A", "B", "D"}));
  EXPECT_EQ(b.recommender().cooccurrence_totals(), one.recommender().cooccurrence_totals());
  EXPECT_EQ(a.recommender().cooccurrence_totals(), one.recommender().cooccurrence_totals());

  // A row that did not reach the topic is handed out again.
  a.pipeline().CooccurrenceRowNotPublished(0, "C");
  rows_a = a.pipeline().TakeCooccurrenceRows();
  ASSERT_EQ(rows_a.size(), 1u);
  EXPECT_EQ(rows_a[0].item_id, "C");

  // A bad row is refused naming its partition and item, and changes nothing.
  const std::string_view garbage("\xff\xff\xff");
  Status s = b.pipeline().ApplyRemoteCooccurrence(0, "A", &garbage);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("partition 0 item 'A'"), std::string::npos) << s.ToString();
  EXPECT_EQ(b.recommender().cooccurrence_totals(), one.recommender().cooccurrence_totals());

  // Partition 0's next owner (A's store reopened): what the topic has is not handed out again,
  // what it lacks is.
  Harness next(a.store(), shared, true);
  ASSERT_OK(next.pipeline().SetOwnedPartitions({0}));
  auto all_rows = next.pipeline().TakeCooccurrenceRows();
  EXPECT_EQ(all_rows.size(), 4u) << "nothing known of the topic: every row of partition 0";
  Harness later(a.store(), shared, true);
  ASSERT_OK(later.pipeline().SetOwnedPartitions({0}));
  for (const auto& row : all_rows) {
    if (row.item_id == "D") continue;  // the topic lacks D
    std::string_view value(*row.encoded);
    ASSERT_OK(later.pipeline().ApplyRemoteCooccurrence(0, row.item_id, &value));
  }
  auto missing = later.pipeline().TakeCooccurrenceRows();
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0].item_id, "D");
}

TEST(PipelineTest, StateCacheServesRepeatCustomersAndChangesNothing) {
  const std::vector<std::vector<std::string>> batches = {
      {"c1,A,2011-01-01 10:00:00,1,1,1,", "c2,B,2011-01-01 10:00:00,1,1,1,"},
      {"c1,B,2011-01-02 10:00:00,1,1,1,", "c3,A,2011-01-02 10:00:00,1,1,1,"},
      {"c1,C,2011-01-03 10:00:00,2,1,1,", "c2,C,2011-01-03 10:00:00,1,1,1,",
       "c3,B,2011-01-03 11:00:00,1,1,1,"}};
  Harness cached;  // the default cache
  Harness uncached(nullptr, [](PipelineOptions* o) { o->state_cache_customers = 0; });
  Harness tiny(nullptr, [](PipelineOptions* o) { o->state_cache_customers = 1; });
  uint64_t offset = 0;
  std::vector<std::pair<uint64_t, uint64_t>> hits_misses;
  for (const auto& batch : batches) {
    BatchResult r, u, t;
    ASSERT_OK(cached.Run(batch, offset, &r));
    ASSERT_OK(uncached.Run(batch, offset, &u));
    ASSERT_OK(tiny.Run(batch, offset, &t));
    offset += batch.size();
    hits_misses.emplace_back(r.cache_hits, r.cache_misses);
    EXPECT_EQ(u.cache_hits, 0u);
    EXPECT_EQ(r.lists_published, u.lists_published);
    EXPECT_EQ(t.lists_published, u.lists_published);
  }
  // c1, c2 new; then c1 cached, c3 new; then all three cached.
  EXPECT_EQ(hits_misses[0], std::make_pair(uint64_t{0}, uint64_t{2}));
  EXPECT_EQ(hits_misses[1], std::make_pair(uint64_t{1}, uint64_t{1}));
  EXPECT_EQ(hits_misses[2], std::make_pair(uint64_t{3}, uint64_t{0}));
  EXPECT_EQ(*StateDigest(cached.store()), *StateDigest(uncached.store()));
  EXPECT_EQ(*StateDigest(tiny.store()), *StateDigest(uncached.store()));
  EXPECT_EQ(Lists(cached.Drain()), Lists(uncached.Drain()));
}

TEST(PipelineTest, StateCacheForgetsAPartitionThatWasAwayAndAFailedBatch) {
  auto base = NewMemStateStore();
  testing::FaultInjectingStore faulty(base.get());
  Harness h(&faulty);
  BatchResult r;
  ASSERT_OK(h.Run({"c1,A,2011-01-01 10:00:00,1,1,1,"}, 0, &r));
  // A failed batch: c1 was taken out of the cache and is read from the store again.
  faulty.FailNextWrites(1);
  EXPECT_FALSE(h.Run({"c1,B,2011-01-02 10:00:00,1,1,1,"}, 1, &r).ok());
  ASSERT_OK(h.Run({"c1,B,2011-01-02 10:00:00,1,1,1,"}, 1, &r));
  EXPECT_EQ(r.cache_hits, 0u);
  EXPECT_EQ(h.Customer("c1").items_size(), 2);
  // The partition goes to another instance, which applies more of c1's purchases; when it
  // comes back the cached c1 must not hide them.
  h.pipeline().ForgetPosition(0);
  CustomerState elsewhere = h.Customer("c1");
  elsewhere.set_event_count(99);
  WriteSet w;
  w.Put(Column::kCustomers, PartitionKey(0, "c1"), EncodeState(elsewhere));
  ASSERT_OK(base->Write(w));
  ASSERT_OK(h.Run({"c1,C,2011-01-03 10:00:00,1,1,1,"}, 2, &r));
  EXPECT_EQ(r.cache_hits, 0u);
  EXPECT_EQ(h.Customer("c1").event_count(), 100u);
}

TEST(PipelineTest, ListJsonShape) {
  v1::RecommendationList list;
  list.set_customer_id("17850");
  list.set_version(3);
  list.set_as_of_ms(1323435000000);
  list.set_segment("Loyal");
  list.set_cluster(2);
  list.set_group(v1::RecommendationList::CONTROL);
  auto* item = list.add_items();
  item->set_item_id("85123A");
  item->set_score(0.5);
  item->set_strategy("popularity");
  item->set_reason("say \"hi\"");
  EXPECT_EQ(RecommendationListToJson(list),
            R"({"customer_id":"17850","version":3,"as_of":"2011-12-09T12:50:00Z","segment":"Loyal",)"
            R"("cluster":2,"group":"control","model_version":0,"items":[{"item_id":"85123A",)"
            R"("score":0.5,"strategy":"popularity","reason":"say \"hi\""}]})");
}

TEST(PipelineTest, ControlGroupIsDeterministicAndSized) {
  int control = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string id = "c" + std::to_string(i);
    bool in = InControlGroup(id, 0.1);
    EXPECT_EQ(in, InControlGroup(id, 0.1));
    control += in;
  }
  EXPECT_NEAR(control / 20000.0, 0.1, 0.01);
  // Short numeric ids (retail customer numbers, MSISDNs) differ only in their last characters:
  // the hash must still spread them (plain FNV-1a put none of 12346..18287 below 0.05).
  for (auto [first, last] : {std::pair<int64_t, int64_t>{12346, 18287},
                             std::pair<int64_t, int64_t>{628120000000, 628120010000}}) {
    int in = 0;
    for (int64_t id = first; id <= last; ++id) in += InControlGroup(std::to_string(id), 0.05);
    EXPECT_NEAR(static_cast<double>(in) / (last - first + 1), 0.05, 0.01) << first;
  }
  EXPECT_FALSE(InControlGroup("x", 0.0));
  EXPECT_TRUE(InControlGroup("x", 1.0));
}

}  // namespace
}  // namespace streamrec

namespace streamrec {
namespace {

// A pipeline with the blended recommender and only the ALS strategy, over a given store.
struct AlsPipeline {
  explicit AlsPipeline(StateStore* store, AlsRefitOptions refit = {}) {
    options.recommend.list_length = 3;
    options.recommend.control_share = 0.0;
    options.recommend.weights = "als=1";
    options.recommend.segment_weights = "";
    options.recommend.als_refit_every_events = 8;
    options.recommend.als_factors = 2;
    options.recommend.als_iterations = 8;
    options.recommend.als_threads = 1;
    decoder = std::move(NewCsvDecoder(DecoderOptions(), kHeader)).value();
    segmenter = NewRfmRuleSegmenter();
    recommender =
        std::move(NewBlendedRecommender(options.recommend, nullptr, std::move(refit))).value();
    pipeline = std::make_unique<Pipeline>(options, store, nullptr, segmenter.get(),
                                          recommender.get());
  }
  Status Run(const std::vector<std::string>& lines, uint64_t first_offset) {
    std::vector<SourceRecord> records;
    for (size_t i = 0; i < lines.size(); ++i) {
      records.push_back(SourceRecord{first_offset + i, {}, lines[i]});
    }
    BatchResult result;
    return pipeline->ProcessBatch(0, records, decoder.get(), &result);
  }

  PipelineOptions options;
  std::unique_ptr<Decoder> decoder;
  std::unique_ptr<Segmenter> segmenter;
  std::unique_ptr<Recommender> recommender;
  std::unique_ptr<Pipeline> pipeline;
};

// customer id -> "item/strategy,..." of the lists in the outbox.
std::map<std::string, std::string> AlsLists(StateStore* store) {
  std::map<std::string, std::string> out;
  auto n = DrainOutbox(store, 0, [&](const v1::OutboxRecord& r) {
    if (r.payload_case() != v1::OutboxRecord::kList) return Status::OK();
    std::string& s = out[r.key()];
    s.clear();
    for (const auto& item : r.list().items()) s += item.item_id() + "/" + item.strategy() + ",";
    return Status::OK();
  });
  EXPECT_TRUE(n.ok());
  return out;
}

// Two tastes, {A, B, C} and {X, Y, Z}: a first batch of 10 events by four customers, then one
// newcomer of each taste.
const std::vector<std::string> kTwoTastesFirstBatch = {
    "c1,A,2011-01-01 10:00:00,1,1,1,", "c1,B,2011-01-01 10:00:00,1,1,1,",
    "c2,A,2011-01-01 10:00:00,1,1,1,", "c2,B,2011-01-01 10:00:00,1,1,1,",
    "c2,C,2011-01-01 10:00:00,1,1,1,", "c3,X,2011-01-01 10:00:00,1,1,1,",
    "c3,Y,2011-01-01 10:00:00,1,1,1,", "c4,X,2011-01-01 10:00:00,1,1,1,",
    "c4,Y,2011-01-01 10:00:00,1,1,1,", "c4,Z,2011-01-01 10:00:00,1,1,1,"};
const std::vector<std::string> kTwoTastesSecondBatch = {"c5,A,2011-01-02 10:00:00,1,1,1,",
                                                        "c6,X,2011-01-02 10:00:00,1,1,1,"};

TEST(PipelineAlsTest, ModelIsStoredWithTheBatchAndReloadedAtOpen) {
  // Two tastes: {A, B, C} and {X, Y, Z}. The first batch crosses 8 events: the model is fitted
  // on it and stored with it; the second does not re-fit.
  const std::vector<std::string>& b1 = kTwoTastesFirstBatch;
  const std::vector<std::string>& b2 = kTwoTastesSecondBatch;
  auto clean_store = NewMemStateStore();
  AlsPipeline clean(clean_store.get());
  ASSERT_OK(clean.pipeline->Open());
  ASSERT_OK(clean.Run(b1, 0));
  std::string value;
  ASSERT_OK(clean_store->Get(Column::kModel, "als", &value));
  ASSERT_OK(clean.Run(b2, b1.size()));
  auto expected = AlsLists(clean_store.get());

  // The same batches with a restart in between: the second pipeline loads the stored model.
  auto store = NewMemStateStore();
  {
    AlsPipeline first(store.get());
    ASSERT_OK(first.pipeline->Open());
    ASSERT_OK(first.Run(b1, 0));
  }
  AlsPipeline second(store.get());
  ASSERT_OK(second.pipeline->Open());
  ASSERT_OK(second.Run(b2, b1.size()));
  auto got = AlsLists(store.get());
  EXPECT_EQ(got, expected);
  // The newcomers are offered their group's items first, by ALS.
  ASSERT_EQ(got.count("c5"), 1u);
  ASSERT_EQ(got.count("c6"), 1u);
  EXPECT_TRUE(got["c5"].rfind("B/als,C/als,", 0) == 0 || got["c5"].rfind("C/als,B/als,", 0) == 0)
      << got["c5"];
  EXPECT_TRUE(got["c6"].rfind("Y/als,Z/als,", 0) == 0 || got["c6"].rfind("Z/als,Y/als,", 0) == 0)
      << got["c6"];
}

TEST(PipelineAlsTest, BackgroundRefitIsInstalledByALaterBatchCommittedAndRefreshesLists) {
  const std::vector<std::string>& b1 = kTwoTastesFirstBatch;
  const std::vector<std::string>& b2 = kTwoTastesSecondBatch;
  // The synchronous reference: the model fitted inside the first batch.
  auto sync_store = NewMemStateStore();
  std::string expected_model;
  {
    AlsPipeline sync(sync_store.get());
    ASSERT_OK(sync.pipeline->Open());
    ASSERT_OK(sync.Run(b1, 0));
    ASSERT_OK(sync_store->Get(Column::kModel, "als", &expected_model));
  }

  auto store = NewMemStateStore();
  {
    AlsRefitOptions refit;
    refit.background = true;
    refit.logger = NewNullLogger();
    AlsPipeline bg(store.get(), refit);
    ASSERT_OK(bg.pipeline->Open());
    ASSERT_OK(bg.Run(b1, 0));
    // The triggering batch commits without waiting for its fit: no model yet (lists of the ALS
    // strategy alone are empty), and the trigger is stored.
    std::string value;
    EXPECT_TRUE(store->Get(Column::kModel, "als", &value).IsNotFound());
    EXPECT_OK(store->Get(Column::kModel, "als_refit_due", &value));
    for (const auto& [customer, list] : AlsLists(store.get())) EXPECT_EQ(list, "") << customer;

    ASSERT_TRUE(bg.recommender->WaitForBackgroundRefit(60000));
    ASSERT_OK(bg.Run(b2, b1.size()));
    // The next batch installed it and committed it: the fit of the first batch's snapshot, bit
    // for bit the synchronous one; the trigger is gone.
    ASSERT_OK(store->Get(Column::kModel, "als", &value));
    EXPECT_TRUE(value == expected_model);
    ASSERT_OK(store->Get(Column::kModel, "als_version", &value));
    EXPECT_EQ(value, "1");
    EXPECT_TRUE(store->Get(Column::kModel, "als_refit_due", &value).IsNotFound());
    // Its lists use the model, and so do the quiet customers' lists: the sweep refreshes lists
    // computed under an older recommender model (c2 and c4 own their whole group: nothing new).
    auto got = AlsLists(store.get());
    for (const char* c : {"c1", "c3", "c5", "c6"}) {
      ASSERT_EQ(got.count(c), 1u) << c;
      EXPECT_NE(got[c].find("/als,"), std::string::npos) << c << ": " << got[c];
    }
    EXPECT_EQ(got["c1"].rfind("C/als,", 0), 0u) << got["c1"];
    EXPECT_EQ(got["c3"].rfind("Z/als,", 0), 0u) << got["c3"];
  }
  // A restart resumes with the installed model.
  AlsPipeline reopened(store.get());
  ASSERT_OK(reopened.pipeline->Open());
  EXPECT_EQ(reopened.recommender->model_version(), 1u);
  EXPECT_FALSE(reopened.recommender->refit_stats().pending);
}

// The reason of an invalid record is a metric label and a dead-letter header: the field, never
// its value, whether the decoder quoted the value or not.
TEST(PipelineTest, InvalidReasonNamesTheFieldNeverTheValue) {
  DecoderOptions options;
  options.fields.customer_id = "MSISDN";
  auto json = NewJsonDecoder(options);
  PurchaseEvent e;
  auto reason = [&](const std::string& record) { return InvalidReason(json->Decode(record, &e)); };
  EXPECT_EQ(reason(R"({"MSISDN":{"n":6281288888888},"item_id":"A","timestamp":"2011-01-01"})"),
            "bad customer_id");
  EXPECT_EQ(reason(R"({"MSISDN":"6281","item_id":"A","timestamp":"2011-01-01","quantity":-2})"),
            "bad quantity");
  EXPECT_EQ(reason(R"({"MSISDN":"6281","item_id":"A","timestamp":"2011-01-01","quantity":"x"})"),
            "bad quantity");
  EXPECT_EQ(reason(R"({"MSISDN":"6281","item_id":"A","timestamp":"2300-01-01"})"),
            "event_time out of range");
  EXPECT_EQ(reason(R"({"item_id":"A","timestamp":"2011-01-01"})"), "missing customer_id");
  EXPECT_EQ(reason(R"(["6281288888888"])"), "JSON record is not an object");
  EXPECT_EQ(reason("{not json 6281288888888"), "bad JSON record");
  EXPECT_EQ(reason(R"({"MSISDN":"6281","item_id":"A","timestamp":"yesterday"})"),
            "bad event time");
}

// ---- The changelog ------------------------------------------------------------------------------

void WithChangelog(PipelineOptions* options) { options->changelog = true; }

struct ChangelogEntry {
  std::string key;
  std::string value;
};

// The changelog records of `records` (outbox order), as the publisher would produce them.
std::vector<ChangelogEntry> ChangelogOf(const std::vector<v1::OutboxRecord>& records) {
  std::vector<ChangelogEntry> out;
  for (const v1::OutboxRecord& r : records) {
    if (r.topic_kind() != "changelog") continue;
    if (r.payload_case() == v1::OutboxRecord::kChangelogState) {
      out.push_back({r.key(), r.changelog_state()});
    } else if (r.payload_case() == v1::OutboxRecord::kChangelogList) {
      EXPECT_EQ(r.key().rfind(kChangelogListPrefix, 0), 0u) << r.key();
      out.push_back({r.key(), r.changelog_list()});
    } else if (r.payload_case() == v1::OutboxRecord::kChangelogItem) {
      EXPECT_EQ(r.key().rfind(kChangelogItemPrefix, 0), 0u) << r.key();
      out.push_back({r.key(), r.changelog_item()});
    } else {
      EXPECT_EQ(r.payload_case(), v1::OutboxRecord::kChangelogPosition);
      EXPECT_EQ(r.key(), kChangelogPositionKey);
      out.push_back({r.key(), EncodeState(r.changelog_position())});
    }
  }
  return out;
}

// The changelog's state and position records alone (no lists, no item statistics).
std::vector<ChangelogEntry> StatesOf(const std::vector<ChangelogEntry>& changelog) {
  std::vector<ChangelogEntry> out;
  for (const ChangelogEntry& e : changelog) {
    if (e.key.rfind(kChangelogListPrefix, 0) != 0 && e.key.rfind(kChangelogItemPrefix, 0) != 0) {
      out.push_back(e);
    }
  }
  return out;
}

// Every (key, value) of a column.
std::map<std::string, std::string> StoredColumn(StateStore* store, Column column) {
  std::map<std::string, std::string> out;
  Status s = store->Scan(column, "", [&](std::string_view key, std::string_view value) {
    out.emplace(std::string(key), std::string(value));
    return true;
  });
  EXPECT_OK(s);
  return out;
}

// Every (key, value) of the lists column.
std::map<std::string, std::string> StoredLists(StateStore* store) {
  return StoredColumn(store, Column::kLists);
}

Status Load(StateStore* store, const std::vector<ChangelogEntry>& changelog) {
  ChangelogLoader loader(store, "file", 0, /*batch_records=*/2);
  for (size_t i = 0; i < changelog.size(); ++i) {
    std::string_view value = changelog[i].value;
    STREAMREC_RETURN_IF_ERROR(loader.Add(i, changelog[i].key, &value));
  }
  return loader.Finish();
}

const std::vector<std::string> kBatch1 = {"c1,A,2011-01-01 10:00:00,1,2.0,2.0,web",
                                          "c2,B,2011-01-01 11:00:00,1,3.0,3.0,web",
                                          "c1,B,2011-01-02 10:00:00,2,3.0,6.0,web"};
const std::vector<std::string> kBatch2 = {"c1,C,2011-01-05 10:00:00,1,4.0,4.0,web",
                                          "c3,A,2011-01-05 11:00:00,1,2.0,2.0,",
                                          "c2,C,2011-01-06 10:00:00,1,4.0,4.0,web"};
const std::vector<std::string> kBatch3 = {"c2,A,2011-01-09 10:00:00,1,2.0,2.0,web",
                                          "c4,B,2011-01-09 11:00:00,3,3.0,9.0,"};

TEST(PipelineChangelogTest, EveryStateWrittenThenThePositionGoToTheOutbox) {
  Harness h(nullptr, WithChangelog);
  BatchResult r;
  ASSERT_OK(h.Run(kBatch1, 0, &r));
  const std::vector<ChangelogEntry> all = ChangelogOf(h.Drain());
  // Each customer's list as stored, keyed with the list prefix.
  std::map<std::string, std::string> lists;
  for (const ChangelogEntry& e : all) {
    if (e.key.rfind(kChangelogListPrefix, 0) == 0) {
      lists.emplace(ListKey(0, e.key.substr(kChangelogListPrefix.size())), e.value);
    }
  }
  EXPECT_EQ(lists, StoredLists(h.store())) << "c1's and c2's lists, as stored";
  EXPECT_EQ(lists.size(), 2u);
  // The partition's statistics of the items the batch touched, as stored, before the position.
  std::map<std::string, std::string> items;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].key.rfind(kChangelogItemPrefix, 0) != 0) continue;
    items.emplace(PartitionKey(0, all[i].key.substr(kChangelogItemPrefix.size())), all[i].value);
    EXPECT_EQ(all.back().key, kChangelogPositionKey);
  }
  EXPECT_EQ(items, StoredColumn(h.store(), Column::kItems)) << "items A and B of partition 0";
  EXPECT_EQ(items.size(), 2u);
  std::vector<ChangelogEntry> changelog = StatesOf(all);
  ASSERT_EQ(changelog.size(), 3u) << "c1, c2, then the position";
  std::set<std::string> customers;
  for (size_t i = 0; i + 1 < changelog.size(); ++i) {
    customers.insert(changelog[i].key);
    std::string stored;
    ASSERT_OK(h.store()->Get(Column::kCustomers, PartitionKey(0, changelog[i].key), &stored));
    EXPECT_EQ(changelog[i].value, stored) << changelog[i].key << ": the state as stored";
    CustomerState state;
    ASSERT_OK(DecodeState(changelog[i].value, &state));
    EXPECT_EQ(state.source_next_offset(), 3u);
  }
  EXPECT_EQ(customers, (std::set<std::string>{"c1", "c2"}));
  ASSERT_EQ(changelog.back().key, kChangelogPositionKey);
  v1::SourcePosition position;
  ASSERT_OK(DecodeState(changelog.back().value, &position));
  ASSERT_OK_AND_ASSIGN(stored, h.pipeline().Position(0));
  EXPECT_EQ(position.SerializeAsString(), stored.SerializeAsString());
  EXPECT_EQ(position.next_offset(), 3u);

  // Without the option: no changelog records.
  Harness plain;
  ASSERT_OK(plain.Run(kBatch1, 0, &r));
  EXPECT_TRUE(ChangelogOf(plain.Drain()).empty());
}

// The writer died after producing part of batch 2's states and before its position: the
// restored partition resumes at batch 1's position, with c1 (whose batch-2 state made it) ahead
// of it. Batch 2 applied again changes only c2 and c3; c1's records are skipped. The state ends
// equal to the writer's, and stays equal as both go on.
// kafka.sample_topic: the state of every customer a batch writes whose id hashes below the share
// goes to the outbox as a "fit-sample" record, as stored; the sample depends only on the id.
TEST(PipelineTest, SampledCustomersStatesGoToTheOutboxForTheSharedFits) {
  auto sampled = [](double share) {
    Harness h(nullptr, [share](PipelineOptions* o) { o->sample_share = share; });
    BatchResult r;
    EXPECT_OK(h.Run(kBatch1, 0, &r));
    EXPECT_OK(h.Run(kBatch2, 3, &r));
    std::set<std::string> ids;
    for (const v1::OutboxRecord& record : h.Drain()) {
      if (record.payload_case() != v1::OutboxRecord::kFitSample) continue;
      EXPECT_EQ(record.topic_kind(), "fit-sample");
      CustomerState state;
      EXPECT_OK(DecodeState(record.fit_sample(), &state));
      EXPECT_EQ(state.customer_id(), record.key());
      ids.insert(record.key());
    }
    // The last sample of each customer is its stored state.
    return ids;
  };
  EXPECT_EQ(sampled(1.0), (std::set<std::string>{"c1", "c2", "c3"}));
  EXPECT_TRUE(sampled(0.0).empty()) << "off";
  std::set<std::string> expected;
  for (const char* id : {"c1", "c2", "c3"}) {
    if (UniformHash(id, kSegmentFitSampleSalt) < 0.5) expected.insert(id);
  }
  EXPECT_EQ(sampled(0.5), expected);
}

// Changelog first: in each batch's outbox the changelog records take the first sequences and
// the outputs follow, so the publisher can hold each output until the changelog before it is
// acknowledged (the output topic never runs ahead of the changelog).
TEST(PipelineChangelogTest, EachBatchsChangelogRecordsPrecedeItsOutputs) {
  Harness h(nullptr, WithChangelog);
  for (const auto* batch : {&kBatch1, &kBatch2, &kBatch3}) {
    BatchResult r;
    const uint64_t first = batch == &kBatch1 ? 0 : batch == &kBatch2 ? 3 : 6;
    ASSERT_OK(h.Run(*batch, first, &r));
    ASSERT_FALSE(r.outbox.empty());
    size_t changelog = 0, outputs = 0;
    for (size_t i = 0; i < r.outbox.size(); ++i) {
      const OutboxEntry& e = r.outbox[i];
      if (i > 0) {
        EXPECT_EQ(e.sequence, r.outbox[i - 1].sequence + 1) << "one batch, one range";
      }
      if (IsChangelogRecord(e.record)) {
        ++changelog;
        EXPECT_EQ(outputs, 0u) << "changelog record at " << e.sequence << " after an output";
      } else {
        ++outputs;
      }
    }
    EXPECT_GT(changelog, 0u);
    EXPECT_GT(outputs, 0u) << "the batch's lists";
    // As handed over, so stored.
    std::vector<v1::OutboxRecord> stored = h.Drain();
    ASSERT_EQ(stored.size(), r.outbox.size());
    for (size_t i = 0; i < stored.size(); ++i) {
      EXPECT_EQ(stored[i].SerializeAsString(), r.outbox[i].record.SerializeAsString()) << i;
    }
  }
}

// The publisher's progress marks: the lists after the latest mark may be unpublished (their
// writer died first), and the loader hands them over, each version as read, in changelog order.
TEST(PipelineChangelogTest, LoaderHandsOverTheListsAfterTheLatestProgressMark) {
  auto list = [](const std::string& customer, uint64_t version) {
    v1::RecommendationList l;
    l.set_customer_id(customer);
    l.set_version(version);
    l.add_items()->set_item_id("A");
    return EncodeState(l);
  };
  v1::SourcePosition position;
  position.set_next_offset(3);
  const std::string encoded_position = EncodeState(position);
  const std::vector<ChangelogEntry> changelog = {
      {kChangelogListPrefix + "c1", list("c1", 1)},  // 0: published (below the mark)
      {kChangelogPositionKey, encoded_position},     // 1
      {kChangelogListPrefix + "c2", list("c2", 1)},  // 2: at the mark
      {kChangelogPublishedKey, "2"},                 // 3: lists below offset 2 are published
      {kChangelogListPrefix + "c1", list("c1", 2)},  // 4
      {kChangelogPositionKey, encoded_position},     // 5
  };
  auto unpublished = [&](size_t records, bool collect) {
    auto store = NewMemStateStore();
    ChangelogLoader loader(store.get(), "file", 0);
    loader.set_collect_lists(collect);
    for (size_t i = 0; i < records; ++i) {
      std::string_view value = changelog[i].value;
      EXPECT_OK(loader.Add(i, changelog[i].key, &value));
    }
    EXPECT_OK(loader.Finish());
    std::vector<std::string> out;
    for (const std::string& encoded : loader.TakeUnpublishedLists()) {
      v1::RecommendationList l;
      EXPECT_OK(DecodeState(encoded, &l));
      out.push_back(l.customer_id() + " v" + std::to_string(l.version()));
    }
    return out;
  };
  EXPECT_EQ(unpublished(changelog.size(), true), (std::vector<std::string>{"c2 v1", "c1 v2"}));
  EXPECT_EQ(unpublished(3, true), (std::vector<std::string>{"c1 v1", "c2 v1"}))
      << "no mark yet: every list may be unpublished";
  EXPECT_TRUE(unpublished(changelog.size(), false).empty()) << "a standby copy's are not placed";

  // Only noting (before a standby copy's offset): the mark read from the copy places them.
  auto store = NewMemStateStore();
  ChangelogLoader loader(store.get(), "file", 0);
  std::string_view mark = "2";
  ASSERT_OK(loader.Add(9, kChangelogPublishedKey, &mark));
  EXPECT_EQ(loader.published_mark(), 2);
  for (size_t i = 0; i < changelog.size(); ++i) {
    std::string_view value = changelog[i].value;
    loader.NoteList(i, changelog[i].key, &value);
  }
  EXPECT_EQ(loader.TakeUnpublishedLists().size(), 2u);
  std::string_view bad = "x2";
  Status refused = loader.Add(12, kChangelogPublishedKey, &bad);
  EXPECT_TRUE(refused.IsCorruption()) << refused.ToString();
  EXPECT_NE(refused.message().find("progress mark at offset 12"), std::string::npos)
      << refused.ToString();
}

TEST(PipelineChangelogTest, RestoreFromAPartialBatchNeitherLosesNorDoubleCounts) {
  Harness writer(nullptr, WithChangelog);
  BatchResult r;
  ASSERT_OK(writer.Run(kBatch1, 0, &r));
  ASSERT_OK(writer.Run(kBatch2, 3, &r));
  std::vector<ChangelogEntry> changelog = ChangelogOf(writer.Drain());
  const std::vector<ChangelogEntry> states = StatesOf(changelog);
  ASSERT_EQ(states.size(), 3u + 4u) << "c1, c2, position; c1, c3, c2, position";
  ASSERT_EQ(states[3].key, "c1");
  // Batch 2's c3, c2 and position never reached the changelog: cut after batch 2's c1.
  size_t seen = 0;
  for (size_t i = 0; i < changelog.size(); ++i) {
    if (changelog[i].key == "c1" && ++seen == 2) {
      changelog.resize(i + 1);
      break;
    }
  }
  ASSERT_EQ(seen, 2u);

  Harness restored(nullptr, WithChangelog);
  ASSERT_OK(Load(restored.store(), changelog));
  ASSERT_OK_AND_ASSIGN(position, restored.pipeline().Position(0));
  EXPECT_EQ(position.next_offset(), 3u) << "batch 1's position";
  EXPECT_EQ(position.restored_through(), 6u) << "c1 reflects batch 2";
  EXPECT_EQ(restored.Customer("c1").purchase_count(), 3u);

  ASSERT_OK(restored.Run(kBatch2, 3, &r));
  EXPECT_EQ(r.skipped_restored, 1u) << "c1's batch-2 record is in its restored state";
  EXPECT_EQ(r.events, 2u);
  ASSERT_OK_AND_ASSIGN(want, StateDigest(writer.store()));
  ASSERT_OK_AND_ASSIGN(got, StateDigest(restored.store()));
  EXPECT_EQ(got, want);
  EXPECT_EQ(restored.Customer("c1").purchase_count(), writer.Customer("c1").purchase_count());

  ASSERT_OK(writer.Run(kBatch3, 6, &r));
  ASSERT_OK(restored.Run(kBatch3, 6, &r));
  EXPECT_EQ(r.skipped_restored, 0u);
  ASSERT_OK_AND_ASSIGN(want3, StateDigest(writer.store()));
  ASSERT_OK_AND_ASSIGN(got3, StateDigest(restored.store()));
  EXPECT_EQ(got3, want3);
}

// A restore replaces what the store held for the partition (customers and lists), keeps its
// outbox numbering ahead, and refuses records it cannot decode, naming their offset.
TEST(PipelineChangelogTest, LoaderReplacesThePartitionAndNamesBadRecords) {
  Harness writer(nullptr, WithChangelog);
  BatchResult r;
  ASSERT_OK(writer.Run(kBatch1, 0, &r));
  std::vector<ChangelogEntry> changelog = ChangelogOf(writer.Drain());

  Harness other;  // holds an older, different history of partition 0
  ASSERT_OK(other.Run(kBatch3, 0, &r));
  ASSERT_OK_AND_ASSIGN(before, other.pipeline().Position(0));
  ASSERT_OK(Load(other.store(), changelog));
  other.pipeline().ForgetPosition(0);
  ASSERT_OK_AND_ASSIGN(after, other.pipeline().Position(0));
  EXPECT_EQ(after.next_offset(), 3u);
  EXPECT_GE(after.outbox_seq(), before.outbox_seq());
  std::string value;
  EXPECT_TRUE(other.store()->Get(Column::kCustomers, PartitionKey(0, "c4"), &value).IsNotFound())
      << "c4 was never in the restored partition";
  EXPECT_TRUE(other.store()->Get(Column::kLists, ListKey(0, "c4"), &value).IsNotFound());
  ASSERT_OK_AND_ASSIGN(want, StateDigest(writer.store()));
  ASSERT_OK_AND_ASSIGN(got, StateDigest(other.store()));
  EXPECT_EQ(got, want);
  EXPECT_EQ(StoredLists(other.store()), StoredLists(writer.store()))
      << "the lists column is restored too (what the query API serves)";
  EXPECT_EQ(StoredLists(other.store()).size(), 2u);
  EXPECT_EQ(StoredColumn(other.store(), Column::kItems), StoredColumn(writer.store(), Column::kItems))
      << "the partition's item statistics are replaced too (c4's purchase of B is gone)";
  other.pipeline().ForgetPosition(0);
  ASSERT_OK(other.pipeline().PartitionsReplaced({0}));
  EXPECT_EQ(other.pipeline().item_stats().at("B").count(), 2u) << "c2's and c1's, not c4's";
  EXPECT_EQ(other.pipeline().item_purchases(), 3u);

  auto store = NewMemStateStore();
  ChangelogLoader loader(store.get(), "file", 0);
  ASSERT_OK_AND_ASSIGN(before_any, RestoreIncomplete(store.get(), "file", 0));
  EXPECT_FALSE(before_any);
  std::string_view garbage = "\xff\xff\xff";
  Status bad = loader.Add(41, "c1", &garbage);
  EXPECT_TRUE(bad.IsCorruption()) << bad.ToString();
  EXPECT_NE(bad.message().find("offset 41"), std::string::npos) << bad.ToString();
  // A state cut short (its last field incomplete) is refused too.
  const std::string state = StatesOf(changelog).front().value;
  std::string_view truncated(state.data(), state.size() - 1);
  Status cut = loader.Add(43, "c1", &truncated);
  EXPECT_TRUE(cut.IsCorruption()) << cut.ToString();
  EXPECT_NE(cut.message().find("offset 43"), std::string::npos) << cut.ToString();
  Status bad_item = loader.Add(44, kChangelogItemPrefix + "A", &garbage);
  EXPECT_TRUE(bad_item.IsCorruption()) << bad_item.ToString();
  EXPECT_NE(bad_item.message().find("item statistics at offset 44"), std::string::npos)
      << bad_item.ToString();
  Status keyless = loader.Add(42, "", &garbage);
  EXPECT_NE(keyless.message().find("without a key at offset 42"), std::string::npos)
      << keyless.ToString();
  // Begun, not finished: the partition is marked until a restore finishes.
  ASSERT_OK_AND_ASSIGN(unfinished, RestoreIncomplete(store.get(), "file", 0));
  EXPECT_TRUE(unfinished);
  ASSERT_OK(Load(store.get(), changelog));
  ASSERT_OK_AND_ASSIGN(finished, RestoreIncomplete(store.get(), "file", 0));
  EXPECT_FALSE(finished);
}

}  // namespace
}  // namespace streamrec
