// The recommendation engine: strategies (strategy.h) → blend with per-segment weights →
// business rules → the top `list_length` items, each with its dominant strategy and a reason.
//
//   blend   every strategy with a positive weight for the customer's segment proposes up to
//           `candidates_per_strategy` items; each strategy's scores are divided by its best score
//           for this customer (so strategies on different scales mix), multiplied by the weight
//           and summed per item. An item's strategy and reason are those of its largest weighted
//           contribution.
//   rules   not recommendable (catalogue) and explicitly excluded items are dropped; owned items
//           are dropped unless the re-offer strategy finds them due (reoffer_due_exempt); items
//           outside their active window or not offered on the customer's main channel are
//           dropped; an item above price_cap_ratio × the customer's average line price is
//           dropped; at most max_per_category items per service type / category.
//   order   blended score descending, then item id: lists are reproducible.
#ifndef STREAMREC_BLENDED_RECOMMENDER_H_
#define STREAMREC_BLENDED_RECOMMENDER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "streamrec/catalog.h"
#include "streamrec/logger.h"
#include "streamrec/pseudonym.h"
#include "streamrec/recommender.h"
#include "streamrec/status.h"
#include "streamrec/strategy.h"

namespace streamrec {

// Weights by strategy name (kStrategyNames).
using StrategyWeights = std::map<std::string, double>;

// Parses "name=weight,name=weight" (names from kStrategyNames, weights >= 0). Errors name the
// configuration key `key` and the bad part.
Status ParseStrategyWeights(std::string_view key, std::string_view text, StrategyWeights* out);
// Parses "Segment:name=w,...;Segment:name=w,...".
Status ParseSegmentWeights(std::string_view key, std::string_view text,
                           std::map<std::string, StrategyWeights>* out);

// How the engine re-fits its ALS model (strategy "als"; Recommender::UpdateModel).
struct AlsRefitOptions {
  /// false (replay, evaluate, tests): a due re-fit runs inside the batch that triggers it, so a
  /// run is reproducible byte for byte. true (the Kafka service): it runs on a background
  /// thread from a store snapshot taken at the trigger, and a later batch installs the model
  /// and commits it, so a fit over millions of customers never stalls the consumer. At most one
  /// fit runs; triggers during it are coalesced into one more fit.
  bool background = false;
  /// Where background re-fits report: Info when a model is installed, Error when a fit failed
  /// (the model in use is kept). Null: timestamped lines on stderr.
  std::shared_ptr<Logger> logger;
  /// How a fit's errors (a stored state that does not decode) name customers: they are logged.
  CustomerIdsInLogs log_ids;
  /// Test only: called on the background thread when a fit starts, before it reads the
  /// snapshot, with the flag that asks the fit to stop (set, and notified, by RefitModel and
  /// the destructor).
  std::function<void(const std::atomic<bool>& cancel)> on_fit_start;
};

// The engine with the built-in strategies. `catalog` (may be null) must outlive it, and so must
// the store given to UpdateModel while a background re-fit may run: the destructor stops a fit
// in flight (AlsOptions::cancel) and joins its thread. Options are validated: InvalidArgument
// naming the key.
StatusOr<std::unique_ptr<Recommender>> NewBlendedRecommender(const RecommenderOptions& options,
                                                             const Catalog* catalog,
                                                             AlsRefitOptions refit = {});

// The same with the given strategies only (tests, and `evaluate --strategy` to measure one
// strategy at a time). Weights still come from `options`.
StatusOr<std::unique_ptr<Recommender>> NewBlendedRecommender(
    const RecommenderOptions& options, const Catalog* catalog,
    std::vector<std::unique_ptr<Strategy>> strategies, AlsRefitOptions refit = {});

// The built-in strategies, by name (kStrategyNames); InvalidArgument for an unknown name.
StatusOr<std::unique_ptr<Strategy>> NewStrategyByName(std::string_view name,
                                                      const RecommenderOptions& options,
                                                      const Catalog* catalog);

}  // namespace streamrec

#endif  // STREAMREC_BLENDED_RECOMMENDER_H_
