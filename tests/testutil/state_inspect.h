// Reads a stopped service's RocksDB state directory, for end-to-end checks: its customer-state
// digest and the list version each customer's state has committed.
#ifndef STREAMREC_TESTS_TESTUTIL_STATE_INSPECT_H_
#define STREAMREC_TESTS_TESTUTIL_STATE_INSPECT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace streamrec::testing {

// StateDigest of the store at `state_dir` ("" with a test failure when it cannot be read).
std::string DigestOf(const std::string& state_dir);

// customer -> highest list version committed to the state at `state_dir` (customers without a
// list are absent).
std::map<std::string, uint64_t> StoredListVersions(const std::string& state_dir);

// Several stopped services of one consumer group, each with its own state directory: every
// input partition of source `source_name` is taken from the directory whose stored position for
// it is furthest (the partition's last owner; an instance that lost a partition keeps an older
// copy of it), and the union is read as one state.
struct UnionOfStates {
  std::string digest;                              // StateDigest of the union
  std::map<uint32_t, std::string> owner;           // partition -> the state directory it came from
  std::map<uint32_t, uint64_t> next_offset;        // partition -> the owner's stored position
  std::map<std::string, uint64_t> list_versions;   // as StoredListVersions, over the union
};
UnionOfStates ReadUnionOfStates(const std::vector<std::string>& state_dirs,
                                const std::string& source_name, uint32_t partitions);

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_STATE_INSPECT_H_
