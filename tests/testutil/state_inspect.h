// Reads a stopped service's RocksDB state directory, for end-to-end checks: its customer-state
// digest and the list version each customer's state has committed.
#ifndef STREAMREC_TESTS_TESTUTIL_STATE_INSPECT_H_
#define STREAMREC_TESTS_TESTUTIL_STATE_INSPECT_H_

#include <cstdint>
#include <map>
#include <string>

namespace streamrec::testing {

// StateDigest of the store at `state_dir` ("" with a test failure when it cannot be read).
std::string DigestOf(const std::string& state_dir);

// customer -> highest list version committed to the state at `state_dir` (customers without a
// list are absent).
std::map<std::string, uint64_t> StoredListVersions(const std::string& state_dir);

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_STATE_INSPECT_H_
