#include "testutil/state_inspect.h"

#include <gtest/gtest.h>

#include "streamrec/changelog.h"
#include "streamrec/features.h"
#include "streamrec/state_store.h"
#include "streamrec/v1/state.pb.h"
#include "testutil/test_util.h"

namespace streamrec::testing {

std::string DigestOf(const std::string& state_dir) {
  StoreOptions options;
  options.path = state_dir;
  auto store = OpenRocksStateStore(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return "";
  auto digest = StateDigest(store->get());
  EXPECT_TRUE(digest.ok());
  return digest.ok() ? *digest : "";
}

std::map<std::string, uint64_t> StoredListVersions(const std::string& state_dir) {
  std::map<std::string, uint64_t> versions;
  StoreOptions options;
  options.path = state_dir;
  auto store = OpenRocksStateStore(options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return versions;
  EXPECT_OK((*store)->Scan(Column::kCustomers, "", [&](std::string_view, std::string_view value) {
    CustomerState state;
    EXPECT_OK(DecodeState(value, &state));
    if (state.list_version() > 0) versions[state.customer_id()] = state.list_version();
    return true;
  }));
  return versions;
}

UnionOfStates ReadUnionOfStates(const std::vector<std::string>& state_dirs,
                                const std::string& source_name, uint32_t partitions) {
  UnionOfStates out;
  auto open = [](const std::string& dir) {
    StoreOptions options;
    options.path = dir;
    auto store = OpenRocksStateStore(options);
    EXPECT_TRUE(store.ok()) << dir << ": " << store.status().ToString();
    return store;
  };
  // Pass 1: who holds each partition furthest.
  for (const std::string& dir : state_dirs) {
    auto store = open(dir);
    if (!store.ok()) return out;
    for (uint32_t p = 0; p < partitions; ++p) {
      auto position = LoadPosition(store->get(), source_name, p);
      EXPECT_TRUE(position.ok()) << position.status().ToString();
      if (!position.ok()) continue;
      auto it = out.next_offset.find(p);
      if (position->next_offset() > 0 &&
          (it == out.next_offset.end() || position->next_offset() > it->second)) {
        out.next_offset[p] = position->next_offset();
        out.owner[p] = dir;
      }
    }
  }
  // Pass 2: each partition's customers from its owner, into one store.
  auto merged = NewMemStateStore();
  for (const std::string& dir : state_dirs) {
    auto store = open(dir);
    if (!store.ok()) return out;
    for (const auto& [p, owner] : out.owner) {
      if (owner != dir) continue;
      WriteSet copy;
      EXPECT_OK((*store)->Scan(Column::kCustomers, PartitionPrefix(p),
                               [&](std::string_view key, std::string_view value) {
                                 copy.Put(Column::kCustomers, std::string(key), std::string(value));
                                 CustomerState state;
                                 EXPECT_OK(DecodeState(value, &state));
                                 if (state.list_version() > 0) {
                                   out.list_versions[state.customer_id()] = state.list_version();
                                 }
                                 return true;
                               }));
      EXPECT_OK(merged->Write(copy));
    }
  }
  auto digest = StateDigest(merged.get());
  EXPECT_TRUE(digest.ok());
  if (digest.ok()) out.digest = *digest;
  return out;
}

}  // namespace streamrec::testing
