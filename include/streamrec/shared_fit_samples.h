// What a model fit takes besides this instance's stored customers when several instances share
// one model (kafka.sample_topic): the other partitions' samples, and which partitions' stored
// customers are this instance's. The segment fit and the ALS fit read it the same way.
#ifndef STREAMREC_SHARED_FIT_SAMPLES_H_
#define STREAMREC_SHARED_FIT_SAMPLES_H_

#include <cstdint>
#include <functional>
#include <set>
#include <string_view>

#include "streamrec/features.h"
#include "streamrec/state_store.h"

namespace streamrec {

// `samples(add)` calls `add` with the sampled state of every customer of a partition this
// instance does not own; `owned()` names the partitions whose stored customers a fit takes
// (those of partitions processed here before and lost are left out: their samples stand for
// them). Both are called on the fitting thread, once per fit. Empty functions: one instance,
// every stored customer and no samples.
struct SharedFitSamples {
  std::function<void(const std::function<void(const CustomerState&)>&)> samples;
  std::function<std::set<uint32_t>()> owned;

  // Which stored customers (by store key) a fit takes, decided once at the fit's start: the
  // owned set is asked for once, not per customer.
  std::function<bool(std::string_view key)> StoredKeyFilter() const {
    if (!owned) return [](std::string_view) { return true; };
    return [partitions = owned()](std::string_view key) {
      return partitions.count(PartitionOfKey(key)) != 0;
    };
  }
};

}  // namespace streamrec

#endif  // STREAMREC_SHARED_FIT_SAMPLES_H_
