#include "streamrec/state_store.h"

#include <gtest/gtest.h>

#include <thread>

#include "streamrec/features.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::TempDir;

// The same contract for both stores.
class StateStoreContractTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      StoreOptions options;
      options.path = dir_.File("db");
      auto store = OpenRocksStateStore(options);
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      store_ = std::move(store).value();
    } else {
      store_ = NewMemStateStore();
    }
  }
  TempDir dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_P(StateStoreContractTest, PutGetMultiGetDeleteScan) {
  WriteSet w;
  w.Put(Column::kCustomers, PartitionKey(1, "b"), "vb");
  w.Put(Column::kCustomers, PartitionKey(1, "a"), "va");
  w.Put(Column::kCustomers, PartitionKey(2, "a"), "v2a");
  w.Put(Column::kItems, "a", "item");
  ASSERT_OK(store_->Write(w));

  std::string value;
  ASSERT_OK(store_->Get(Column::kCustomers, PartitionKey(1, "a"), &value));
  EXPECT_EQ(value, "va");
  EXPECT_TRUE(store_->Get(Column::kItems, "zz", &value).IsNotFound());
  // Column families are separate key spaces.
  EXPECT_TRUE(store_->Get(Column::kItems, PartitionKey(1, "a"), &value).IsNotFound());

  std::vector<std::string> values;
  std::vector<bool> found;
  ASSERT_OK(store_->MultiGet(Column::kCustomers,
                             {PartitionKey(1, "a"), PartitionKey(1, "x"), PartitionKey(2, "a")},
                             &values, &found));
  EXPECT_EQ(found, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(values[0], "va");
  EXPECT_EQ(values[2], "v2a");

  std::vector<std::string> keys;
  ASSERT_OK(store_->Scan(Column::kCustomers, PartitionPrefix(1),
                         [&](std::string_view k, std::string_view) {
                           keys.emplace_back(k.substr(4));
                           return true;
                         }));
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));

  WriteSet d;
  d.Delete(Column::kCustomers, PartitionKey(1, "a"));
  ASSERT_OK(store_->Write(d));
  EXPECT_TRUE(store_->Get(Column::kCustomers, PartitionKey(1, "a"), &value).IsNotFound());
}

TEST_P(StateStoreContractTest, OutboxKeysSortBySequence) {
  WriteSet w;
  for (uint64_t seq : {300u, 2u, 70000u, 1u}) w.Put(Column::kOutbox, OutboxKey(0, seq), std::to_string(seq));
  ASSERT_OK(store_->Write(w));
  std::vector<std::string> order;
  ASSERT_OK(store_->Scan(Column::kOutbox, PartitionPrefix(0), [&](std::string_view, std::string_view v) {
    order.emplace_back(v);
    return true;
  }));
  EXPECT_EQ(order, (std::vector<std::string>{"1", "2", "300", "70000"}));
}

TEST_P(StateStoreContractTest, DeleteRangeDeletesTheHalfOpenRangeInWriteOrder) {
  WriteSet w;
  for (uint64_t seq = 0; seq < 10; ++seq) {
    w.Put(Column::kOutbox, OutboxKey(3, seq), "p3-" + std::to_string(seq));
    w.Put(Column::kOutbox, OutboxKey(4, seq), "p4-" + std::to_string(seq));
  }
  w.Put(Column::kCustomers, OutboxKey(3, 5), "another column");
  ASSERT_OK(store_->Write(w));
  auto sequences = [&](uint32_t partition) {
    std::vector<uint64_t> out;
    EXPECT_OK(store_->Scan(Column::kOutbox, PartitionPrefix(partition),
                           [&](std::string_view key, std::string_view) {
                             uint64_t seq = 0;
                             for (size_t i = 4; i < key.size(); ++i) {
                               seq = (seq << 8) | static_cast<unsigned char>(key[i]);
                             }
                             out.push_back(seq);
                             return true;
                           }));
    return out;
  };

  // [2, 6) of partition 3 goes; 6, the end, stays; partition 4 and other columns are untouched.
  WriteSet d;
  d.DeleteRange(Column::kOutbox, OutboxKey(3, 2), OutboxKey(3, 6));
  EXPECT_EQ(d.size(), 1u) << "one operation for the whole range";
  ASSERT_OK(store_->Write(d));
  EXPECT_EQ(sequences(3), (std::vector<uint64_t>{0, 1, 6, 7, 8, 9}));
  EXPECT_EQ(sequences(4).size(), 10u);
  std::string value;
  ASSERT_OK(store_->Get(Column::kCustomers, OutboxKey(3, 5), &value));
  EXPECT_TRUE(store_->Get(Column::kOutbox, OutboxKey(3, 5), &value).IsNotFound());
  ASSERT_OK(store_->Get(Column::kOutbox, OutboxKey(3, 6), &value));
  EXPECT_EQ(value, "p3-6");

  // An empty or inverted range is no operation at all.
  WriteSet none;
  none.DeleteRange(Column::kOutbox, OutboxKey(3, 7), OutboxKey(3, 7));
  none.DeleteRange(Column::kOutbox, OutboxKey(3, 9), OutboxKey(3, 7));
  EXPECT_TRUE(none.empty());

  // Operations apply in order: a put before the range is deleted, a put after it survives,
  // keys that were never there cost nothing, and the range may reach past the last key.
  WriteSet mixed;
  mixed.Put(Column::kOutbox, OutboxKey(3, 20), "before");
  mixed.DeleteRange(Column::kOutbox, OutboxKey(3, 0), OutboxKey(3, 100));
  mixed.Put(Column::kOutbox, OutboxKey(3, 50), "after");
  ASSERT_OK(store_->Write(mixed));
  EXPECT_EQ(sequences(3), (std::vector<uint64_t>{50}));
  EXPECT_EQ(sequences(4).size(), 10u);

  // Still so once the memtable is on disk (RocksDB: the range tombstone is flushed with it).
  ASSERT_OK(store_->Flush());
  ASSERT_OK(store_->CompactAll());
  EXPECT_EQ(sequences(3), (std::vector<uint64_t>{50}));
  EXPECT_EQ(sequences(4).size(), 10u);
}

TEST_P(StateStoreContractTest, OneWriteAppliesItsOperationsInOrderWhateverTheKeyOrder) {
  // RocksDB inserts a write's keys sorted (cheaper memtable inserts): the outcome must be that
  // of the written order, for repeated keys and around a range deletion alike.
  WriteSet w;
  w.Put(Column::kCustomers, "k9", "first");
  w.Put(Column::kCustomers, "k1", "first");
  w.Delete(Column::kCustomers, "k9");
  w.Put(Column::kCustomers, "k9", "second");
  w.Put(Column::kCustomers, "k5", "gone");
  w.Delete(Column::kCustomers, "k5");
  w.Put(Column::kCustomers, "k1", "second");
  w.Put(Column::kLists, "k1", "another column");
  w.Put(Column::kOutbox, OutboxKey(1, 30), "before the range, sorts after what follows it");
  w.Put(Column::kOutbox, OutboxKey(1, 10), "before the range");
  w.DeleteRange(Column::kOutbox, OutboxKey(1, 0), OutboxKey(1, 100));
  w.Put(Column::kOutbox, OutboxKey(1, 40), "after the range");
  w.Put(Column::kOutbox, OutboxKey(1, 20), "after the range, sorts before");
  ASSERT_OK(store_->Write(w));
  std::string value;
  ASSERT_OK(store_->Get(Column::kCustomers, "k9", &value));
  EXPECT_EQ(value, "second");
  ASSERT_OK(store_->Get(Column::kCustomers, "k1", &value));
  EXPECT_EQ(value, "second");
  EXPECT_TRUE(store_->Get(Column::kCustomers, "k5", &value).IsNotFound());
  ASSERT_OK(store_->Get(Column::kLists, "k1", &value));
  EXPECT_EQ(value, "another column");
  std::vector<std::string> outbox;
  ASSERT_OK(store_->Scan(Column::kOutbox, PartitionPrefix(1),
                         [&](std::string_view, std::string_view v) {
                           outbox.emplace_back(v);
                           return true;
                         }));
  EXPECT_EQ(outbox, (std::vector<std::string>{"after the range, sorts before", "after the range"}));
}

TEST_P(StateStoreContractTest, SnapshotIsAReadOnlyViewFrozenAtItsCreation) {
  WriteSet w;
  for (int i = 0; i < 100; ++i) {
    w.Put(Column::kCustomers, PartitionKey(0, "c" + std::to_string(1000 + i)), "v1");
  }
  w.Put(Column::kModel, "m", "old");
  ASSERT_OK(store_->Write(w));
  std::unique_ptr<StateStore> view = store_->Snapshot();
  ASSERT_NE(view, nullptr);

  // The view is read on another thread while the store keeps changing every key it holds.
  std::vector<std::string> seen;
  std::string model;
  Status read_status;
  std::thread reader([&] {
    read_status = view->Scan(Column::kCustomers, "", [&](std::string_view, std::string_view v) {
      seen.emplace_back(v);
      return true;
    });
    if (read_status.ok()) read_status = view->Get(Column::kModel, "m", &model);
  });
  for (int round = 0; round < 20; ++round) {
    WriteSet u;
    for (int i = 0; i < 100; i += 2) {
      u.Put(Column::kCustomers, PartitionKey(0, "c" + std::to_string(1000 + i)), "v2");
      u.Delete(Column::kCustomers, PartitionKey(0, "c" + std::to_string(1001 + i)));
    }
    u.Put(Column::kCustomers, PartitionKey(0, "new" + std::to_string(round)), "v2");
    u.Put(Column::kModel, "m", "new");
    ASSERT_OK(store_->Write(u));
  }
  reader.join();
  ASSERT_OK(read_status);
  EXPECT_EQ(seen, std::vector<std::string>(100, "v1"));
  EXPECT_EQ(model, "old");
  std::vector<std::string> values;
  std::vector<bool> found;
  ASSERT_OK(view->MultiGet(Column::kCustomers, {PartitionKey(0, "c1001"), PartitionKey(0, "new0")},
                           &values, &found));
  EXPECT_EQ(found, (std::vector<bool>{true, false}));

  // Read-only; the store itself moved on.
  WriteSet x;
  x.Put(Column::kModel, "m", "x");
  EXPECT_TRUE(view->Write(x).IsNotSupported());
  ASSERT_OK(view->Flush());
  std::string value;
  ASSERT_OK(store_->Get(Column::kModel, "m", &value));
  EXPECT_EQ(value, "new");
  EXPECT_TRUE(store_->Get(Column::kCustomers, PartitionKey(0, "c1001"), &value).IsNotFound());
}

TEST_P(StateStoreContractTest, DigestCoversCustomerFeaturesOnly) {
  auto empty = StateDigest(store_.get());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size(), 32u);
  WriteSet w;
  w.Put(Column::kOutbox, OutboxKey(0, 1), "x");
  w.Put(Column::kItems, "A", "y");
  ASSERT_OK(store_->Write(w));
  EXPECT_EQ(*StateDigest(store_.get()), *empty);

  CustomerState state = NewCustomerState("a");
  state.set_event_count(1);
  WriteSet c;
  c.Put(Column::kCustomers, PartitionKey(0, "a"), EncodeState(state));
  ASSERT_OK(store_->Write(c));
  std::string with_a = *StateDigest(store_.get());
  EXPECT_NE(with_a, *empty);

  // Publication bookkeeping does not count...
  state.set_list_version(7);
  state.set_list_hash(99);
  state.set_list_model_version(3);
  state.set_list_recommender_version(2);
  WriteSet c2;
  c2.Put(Column::kCustomers, PartitionKey(0, "a"), EncodeState(state));
  ASSERT_OK(store_->Write(c2));
  EXPECT_EQ(*StateDigest(store_.get()), with_a);
  // ...features do.
  state.set_total_spend(1.5);
  WriteSet c3;
  c3.Put(Column::kCustomers, PartitionKey(0, "a"), EncodeState(state));
  ASSERT_OK(store_->Write(c3));
  EXPECT_NE(*StateDigest(store_.get()), with_a);

  WriteSet bad;
  bad.Put(Column::kCustomers, PartitionKey(0, "b"), "garbage");
  ASSERT_OK(store_->Write(bad));
  EXPECT_FALSE(StateDigest(store_.get()).ok());
}

TEST_P(StateStoreContractTest, ScanCustomersDecodesOnlyTheKeysItIsToldToWant) {
  WriteSet w;
  for (const char* id : {"a", "b", "c"}) {
    CustomerState state = NewCustomerState(id);
    state.set_event_count(1);
    w.Put(Column::kCustomers, PartitionKey(1, id), EncodeState(state));
  }
  w.Put(Column::kCustomers, PartitionKey(1, "bad"), "garbage");
  ASSERT_OK(store_->Write(w));
  const CustomerIdsInLogs log_ids;
  std::vector<std::string> visited;
  auto visit = [&](std::string_view key, CustomerState& state) {
    EXPECT_EQ(CustomerIdOfKey(key), state.customer_id());
    visited.push_back(state.customer_id());
    return true;
  };
  // Every key: the undecodable value stops the scan, naming its customer.
  Status all = ScanCustomers(store_.get(), log_ids, visit);
  EXPECT_TRUE(all.IsCorruption()) << all.ToString();
  EXPECT_NE(all.message().find("bad"), std::string::npos) << all.ToString();
  // Refused keys are not decoded: the scan passes the bad value and visits only the wanted.
  visited.clear();
  std::vector<std::string> offered;
  ASSERT_OK(ScanCustomers(
      store_.get(), log_ids,
      [&](std::string_view key) {
        offered.emplace_back(CustomerIdOfKey(key));
        return CustomerIdOfKey(key) != "bad" && CustomerIdOfKey(key) != "b";
      },
      visit));
  EXPECT_EQ(offered, (std::vector<std::string>{"a", "b", "bad", "c"}));
  EXPECT_EQ(visited, (std::vector<std::string>{"a", "c"}));
}

INSTANTIATE_TEST_SUITE_P(Stores, StateStoreContractTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "RocksDB" : "Memory"; });

TEST(RocksStateStoreTest, DataSurvivesReopen) {
  TempDir dir;
  StoreOptions options;
  options.path = dir.File("db");
  options.sync_wal = true;
  options.compression = "zstd";
  {
    ASSERT_OK_AND_ASSIGN(store, OpenRocksStateStore(options));
    WriteSet w;
    w.Put(Column::kPositions, PositionKey("file", 0), "pos");
    ASSERT_OK(store->Write(w));
  }
  ASSERT_OK_AND_ASSIGN(store, OpenRocksStateStore(options));
  std::string value;
  ASSERT_OK(store->Get(Column::kPositions, PositionKey("file", 0), &value));
  EXPECT_EQ(value, "pos");
}

// A failing disk and a full one: the failed write leaves nothing behind, later writes fail until
// the fault clears, and Resume then makes the store writable again without reopening it.
class RocksStateStoreFaultTest : public ::testing::TestWithParam<StorageFaults::Kind> {};

TEST_P(RocksStateStoreFaultTest, FailedWriteLeavesNothingAndResumeRecovers) {
  TempDir dir;
  auto faults = std::make_shared<StorageFaults>();
  StoreOptions options;
  options.path = dir.File("db");
  options.faults = faults;
  ASSERT_OK_AND_ASSIGN(store, OpenRocksStateStore(options));
  WriteSet before;
  before.Put(Column::kCustomers, "a", "1");
  ASSERT_OK(store->Write(before));

  faults->Set(GetParam());
  WriteSet during;
  during.Put(Column::kCustomers, "a", "2");
  during.Put(Column::kCustomers, "b", "2");
  Status failed = store->Write(during);
  EXPECT_FALSE(failed.ok());
  EXPECT_GT(faults->refused(), 0u);
  std::string value;
  ASSERT_OK(store->Get(Column::kCustomers, "a", &value));  // reads still work
  EXPECT_EQ(value, "1");
  EXPECT_TRUE(store->Get(Column::kCustomers, "b", &value).IsNotFound());
  EXPECT_FALSE(store->Resume().ok());  // the disk still fails
  EXPECT_FALSE(store->Write(during).ok());

  faults->Clear();
  Status resumed = store->Resume();
  ASSERT_TRUE(resumed.ok()) << resumed.ToString();
  WriteSet after;
  after.Put(Column::kCustomers, "a", "3");
  ASSERT_OK(store->Write(after));
  ASSERT_OK(store->Get(Column::kCustomers, "a", &value));
  EXPECT_EQ(value, "3");
  ASSERT_OK(store->Flush());
  store.reset();
  // What was written after the recovery survives a reopen; the failed write never appears.
  options.faults = nullptr;
  ASSERT_OK_AND_ASSIGN(reopened, OpenRocksStateStore(options));
  ASSERT_OK(reopened->Get(Column::kCustomers, "a", &value));
  EXPECT_EQ(value, "3");
  EXPECT_TRUE(reopened->Get(Column::kCustomers, "b", &value).IsNotFound());
}

INSTANTIATE_TEST_SUITE_P(Kinds, RocksStateStoreFaultTest,
                         ::testing::Values(StorageFaults::Kind::kIOError,
                                           StorageFaults::Kind::kNoSpace),
                         [](const auto& info) { return StorageFaults::KindName(info.param); });

TEST(RocksStateStoreTest, IncompatibleFormatVersionFailsClearly) {
  TempDir dir;
  StoreOptions options;
  options.path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(store, OpenRocksStateStore(options));
    WriteSet w;
    w.Put(Column::kMeta, "format_version", "99");
    ASSERT_OK(store->Write(w));
  }
  auto reopened = OpenRocksStateStore(options);
  ASSERT_FALSE(reopened.ok());
  EXPECT_TRUE(reopened.status().IsNotSupported());
  const std::string& m = reopened.status().message();
  EXPECT_NE(m.find("format version 99"), std::string::npos) << m;
  EXPECT_NE(m.find("format version " + std::to_string(kStoreFormatVersion)), std::string::npos) << m;
  EXPECT_NE(m.find(options.path), std::string::npos) << m;
}

TEST(RocksStateStoreTest, BadCompressionNamesTheKey) {
  TempDir dir;
  StoreOptions options;
  options.path = dir.File("db");
  options.compression = "brotli";
  auto store = OpenRocksStateStore(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("state.compression"), std::string::npos);
  EXPECT_NE(store.status().message().find("brotli"), std::string::npos);
}

TEST(RocksStateStoreTest, BadBottommostCompressionNamesTheKey) {
  TempDir dir;
  StoreOptions options;
  options.path = dir.File("db");
  options.bottommost_compression = "gzip";
  auto store = OpenRocksStateStore(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("state.bottommost_compression"), std::string::npos);
  EXPECT_NE(store.status().message().find("gzip"), std::string::npos);
}

TEST(RocksStateStoreTest, DictionaryCompressedLastLevelReadsBackAndIsSmaller) {
  // Repetitive values, like states and lists: field names, item ids, reason sentences.
  auto value = [](int i) {
    std::string v;
    for (int k = 0; k < 12; ++k) {
      v += "{\"item_id\":\"PKG" + std::to_string((i * 7 + k * 13) % 300) +
           "\",\"reason\":\"bought by " + std::to_string((i + k) % 90) +
           "% of customers like you in Champions\"}";
    }
    return v;
  };
  auto bytes_after_compaction = [&](const std::string& bottommost, int dictionary_kb) -> uint64_t {
    TempDir dir;
    StoreOptions options;
    options.path = dir.File("db");
    options.bottommost_compression = bottommost;
    options.dictionary_kb = dictionary_kb;
    auto store = OpenRocksStateStore(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return 0;
    WriteSet w;
    for (int i = 0; i < 4000; ++i) {
      w.Put(Column::kLists, PartitionKey(0, "c" + std::to_string(i)), value(i));
    }
    EXPECT_OK((*store)->Write(w));
    EXPECT_OK((*store)->CompactAll());
    for (int i = 0; i < 4000; i += 397) {
      std::string got;
      EXPECT_OK((*store)->Get(Column::kLists, PartitionKey(0, "c" + std::to_string(i)), &got));
      EXPECT_EQ(got, value(i));
    }
    auto props = (*store)->Properties();
    return props.count("sst_bytes") > 0 ? props.at("sst_bytes") : 0;
  };
  const uint64_t lz4 = bytes_after_compaction("none", 0);
  const uint64_t zstd_dict = bytes_after_compaction("zstd", 32);
  ASSERT_GT(lz4, 0u);
  EXPECT_LT(zstd_dict, lz4) << "zstd with a dictionary on the last level";
}

TEST(RocksStateStoreTest, PropertiesCountFlushAndCompactionWork) {
  TempDir dir;
  StoreOptions options;
  options.path = dir.File("db");
  auto store = OpenRocksStateStore(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto props = (*store)->Properties();
  EXPECT_EQ(props["flush_written_bytes"], 0u);
  EXPECT_EQ(props["compaction_written_bytes"], 0u);
  // Two flushed files of the same keys, then a full compaction merges them into one.
  for (int round = 0; round < 2; ++round) {
    WriteSet w;
    for (int i = 0; i < 20000; ++i) {
      w.Put(Column::kCustomers, PartitionKey(0, "c" + std::to_string(i)),
            std::string(64, static_cast<char>('a' + (i + round) % 26)));
    }
    ASSERT_OK((*store)->Write(w));
    ASSERT_OK((*store)->Flush());
  }
  props = (*store)->Properties();
  const uint64_t flushed = props["flush_written_bytes"];
  EXPECT_GT(flushed, 20000u) << "two files of 20,000 keys were flushed";
  EXPECT_EQ(props["compaction_written_bytes"], 0u);
  ASSERT_OK((*store)->CompactAll());
  props = (*store)->Properties();
  EXPECT_GE(props["flush_written_bytes"], flushed);
  EXPECT_GT(props["compaction_written_bytes"], 0u);
  EXPECT_GE(props["compaction_read_bytes"], flushed / 2) << "the compaction read both files";
}

}  // namespace
}  // namespace streamrec
