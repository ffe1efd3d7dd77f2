// Keeping cluster ids stable across re-fits: new centres are matched to old ones by an optimal
// assignment (Hungarian / Kuhn-Munkres, O(n^3)) on squared centre distance. A new centre that is
// not matched is a birth (it gets a fresh id); an old centre that is not matched is a death.
#ifndef STREAMREC_HUNGARIAN_H_
#define STREAMREC_HUNGARIAN_H_

#include <cstdint>
#include <limits>
#include <vector>

#include "streamrec/status.h"

namespace streamrec {

struct CentreMatchOptions {
  /// A pair further apart than this (Euclidean distance, in the centres' space) is never
  /// matched: the old centre dies and the new one is born. Among the matchings made of allowed
  /// pairs, the one with the most pairs wins, then the one with the lowest total squared
  /// distance. Infinity = match min(k_old, k_new) pairs whatever their distance.
  double max_distance = std::numeric_limits<double>::infinity();
};

struct CentreMatching {
  /// For each new centre (row of new_centres): the old centre (row of old_centres) it continues,
  /// or -1 for a birth.
  std::vector<int32_t> new_to_old;
  /// Old centres no new centre continues, in increasing order.
  std::vector<int32_t> deaths;
  /// New centres with no old centre, in increasing order.
  std::vector<int32_t> births;
  /// Sum of squared distances over the matched pairs (the minimum possible).
  double total_squared_distance = 0;
};

// Matches k_new new centres to k_old old centres (both row-major with d columns). k_old or
// k_new may be 0 (all births / all deaths). Refuses d < 1, negative counts, non-finite values
// and a max_distance that is not > 0.
[[nodiscard]] StatusOr<CentreMatching> MatchCentres(const float* old_centres, int k_old,
                                                    const float* new_centres, int k_new, int d,
                                                    const CentreMatchOptions& options = {});

// Cluster ids for the new centres: a matched centre keeps the id of its old centre
// (old_ids[new_to_old[i]]), a birth gets *next_id, which is then incremented.
std::vector<int32_t> StableClusterIds(const CentreMatching& matching,
                                      const std::vector<int32_t>& old_ids, int32_t* next_id);

// Minimum-cost assignment on a rows x cols cost matrix (row-major), rows <= cols: returns, for
// each row, its column; every row gets a distinct column. O(rows^2 cols). Costs must be finite.
std::vector<int32_t> SolveAssignment(const std::vector<double>& cost, int rows, int cols);

}  // namespace streamrec

#endif  // STREAMREC_HUNGARIAN_H_
