#include "testutil/state_inspect.h"

#include <gtest/gtest.h>

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

}  // namespace streamrec::testing
