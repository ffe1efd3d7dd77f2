// K-Means for customer segmentation: the full re-fit (k-means++ seeding + Lloyd iterations,
// n_init restarts), the online mini-batch step (Sculley 2010, with forgetting and re-seeding of
// dying centres), and the scores used to choose k (silhouette on a sample).
//
// Conventions: points and centres are float, row-major (n x d, k x d); distances are squared
// Euclidean unless said otherwise; sums are accumulated in double. Everything is a pure function
// of its arguments and seed: results do not depend on the number of threads (work is split in
// fixed chunks whose partial sums are combined in order), nothing reads a clock, and every thread
// started is joined before the call returns.
#ifndef STREAMREC_KMEANS_H_
#define STREAMREC_KMEANS_H_

#include <cstdint>
#include <vector>

#include "streamrec/status.h"
#include "streamrec/v1/model.pb.h"

namespace streamrec {

// Parameters of a full K-Means fit (in the manner of faiss::ClusteringParameters).
struct KMeansParameters {
  /// Number of clusters.
  int k = 8;
  /// Maximum Lloyd iterations per initialisation.
  int max_iterations = 300;
  /// Stop when the total squared centre shift of an iteration is <= tolerance x the mean
  /// per-feature variance of the data (scikit-learn's rule); assignments that stop changing
  /// always stop the run.
  double tolerance = 1e-4;
  /// Independent initialisations; the run with the lowest objective is kept.
  int n_init = 1;
  /// Seed of k-means++ seeding, of sampling and of empty-cluster splits.
  uint64_t seed = 1234;
  /// Worker threads for the assignment and seeding passes (1 = the calling thread only,
  /// 0 = std::thread::hardware_concurrency()). Results do not depend on it.
  int threads = 1;
  /// If n > k x max_points_per_centroid, train on a uniform sample of that many points (as
  /// faiss), then assign all n points to the final centres; 0 = always train on all points.
  int max_points_per_centroid = 0;
  /// Candidates tried per k-means++ centre (greedy k-means++); 0 = 2 + floor(ln k), as
  /// scikit-learn.
  int local_trials = 0;
  /// Initial centres for the first initialisation (k x d, e.g. the previous model's, for a warm
  /// start); empty = k-means++. Later initialisations always use k-means++.
  std::vector<float> initial_centres;
  /// Keep per-iteration statistics of the best run in the result.
  bool record_iterations = true;
};

// One Lloyd iteration (assignment with the centres of the previous iteration, then update).
struct KMeansIterationStats {
  /// Sum of squared distances of the points to the centres they were assigned to.
  double objective = 0;
  /// Sum over centres of the squared distance each centre moved in the update.
  double centre_shift = 0;
  /// Points whose cluster changed in this assignment.
  int64_t changed = 0;
  /// Empty clusters re-created by splitting the largest one.
  int empty_splits = 0;
};

struct KMeansResult {
  int k = 0;
  int d = 0;
  /// Final centres, k x d row-major.
  std::vector<float> centres;
  /// Cluster of every input point (all n, also when trained on a sample).
  std::vector<int32_t> assignments;
  /// Points per cluster.
  std::vector<int64_t> sizes;
  /// Sum of squared distances of all n points to their assigned centre (scikit-learn's inertia).
  double objective = 0;
  /// Lloyd iterations of the kept run.
  int iterations = 0;
  /// Whether the kept run stopped on the tolerance or on unchanged assignments.
  bool converged = false;
  /// Index of the kept initialisation.
  int best_init = 0;
  /// Training-set objective of each initialisation.
  std::vector<double> init_objectives;
  /// Points the centres were trained on (n or the sample size).
  int64_t trained_points = 0;
  /// Per-iteration statistics of the kept run (on the training points).
  std::vector<KMeansIterationStats> iteration_stats;
};

// Full fit. Refuses bad input with the numbers in the message: n < k ("number of points 5
// should be at least k=8"), k < 1, d < 1, non-finite values (naming row and column), initial
// centres of the wrong size, non-positive iteration or init counts.
[[nodiscard]] StatusOr<KMeansResult> KMeansFit(const float* x, int64_t n, int d,
                                               const KMeansParameters& params);

// Nearest centre of each of the n points (ties: the lower index). `distances_out` (optional)
// receives the squared distances. O(n k d); threads as in KMeansParameters.
void AssignNearest(const float* centres, int k, const float* x, int64_t n, int d,
                   int32_t* assignments_out, float* distances_out = nullptr, int threads = 1);
// Nearest centre of one point; `distance_out` (optional) receives the squared distance.
int32_t NearestCentre(const float* centres, int k, int d, const float* point,
                      float* distance_out = nullptr);

// Mean silhouette coefficient (Euclidean) of a uniform sample of `sample_size` points, computed
// within the sample as sklearn.metrics.silhouette_score(sample_size=...) does; sample_size <= 0
// or >= n uses all points. O(s^2 d). A point alone in its cluster (within the sample) scores 0.
// Refuses fewer than 2 clusters in the sample and assignments outside [0, k).
[[nodiscard]] StatusOr<double> Silhouette(const float* x, int64_t n, int d,
                                          const int32_t* assignments, int k, int64_t sample_size,
                                          uint64_t seed, int threads = 1);

// Calinski-Harabasz index from a fit: (B / (k - 1)) / (W / (n - k)), B = total - W.
// `total_sum_squares` is the sum of squared distances of the points to their mean.
double CalinskiHarabasz(double total_sum_squares, double objective, int64_t n, int k);

enum class KSelectionCriterion { kSilhouette, kCalinskiHarabasz };

struct KScore {
  int k = 0;
  double objective = 0;
  double silhouette = 0;
  double calinski_harabasz = 0;
};

struct KSelection {
  /// One entry per k tried, in increasing k.
  std::vector<KScore> scores;
  /// The k with the highest criterion (the smaller k on a tie).
  int best_k = 0;
  /// The fit for best_k.
  KMeansResult best;
};

// Fits k = k_min..k_max with `params` (its k is ignored) and scores each by silhouette on a
// sample of `sample_size` points (seeded with params.seed) and by Calinski-Harabasz.
// REQUIRES 2 <= k_min <= k_max <= n.
[[nodiscard]] StatusOr<KSelection> ChooseK(
    const float* x, int64_t n, int d, int k_min, int k_max, const KMeansParameters& params,
    int64_t sample_size, KSelectionCriterion criterion = KSelectionCriterion::kSilhouette);

// ---- online mini-batch K-Means ------------------------------------------------------------------

struct MiniBatchKMeansParameters {
  /// Forgetting by points: weights are multiplied by 0.5^(m / half_life_points) before a step of
  /// m points (Spark StreamingKMeans with timeUnit=points); 0 = no forgetting.
  double half_life_points = 0;
  /// Forgetting by event time: weights are multiplied by 0.5^(dt / half_life_ms) where dt is
  /// how far the batch's event time moved past the latest seen (StepAt only); 0 = off.
  double half_life_ms = 0;
  /// A centre whose weight falls below reassignment_ratio x the largest weight is re-seeded to
  /// a random point of the batch (scikit-learn's reassignment); 0 = never.
  double reassignment_ratio = 0.01;
  /// At most this fraction of the batch's points become new centres in one step (scikit-learn
  /// uses 0.5); the lightest centres go first.
  double max_reassign_fraction = 0.5;
  /// Half-life, in points, of the smoothed online objective (EWMA of the mean squared distance
  /// per point); a batch of m points gets weight 1 - 0.5^(m / objective_half_life_points).
  double objective_half_life_points = 10000;
  /// Seed of re-seeding draws; step i uses a generator derived from (seed, i).
  uint64_t seed = 1234;
};

struct MiniBatchStepStats {
  /// Points in the batch.
  int64_t points = 0;
  /// Mean squared distance of the batch's points to their nearest centre before the update.
  double batch_objective = 0;
  /// Centres re-seeded in this step (indices), in increasing order.
  std::vector<int32_t> reassigned;
};

// Sculley's web-scale k-means: each point moves its nearest centre by (x - c) / weight after
// the centre's weight grew by 1, i.e. the centre stays the (decayed) running mean of its points.
// Cost per point O(k d). Not thread-safe; copyable (a copy is a snapshot).
class MiniBatchKMeans {
 public:
  // `centres` k x d; `weights` k non-negative (e.g. the cluster sizes of a full fit; zeros for a
  // cold start). Counts start at the rounded weights.
  [[nodiscard]] static StatusOr<MiniBatchKMeans> Create(const MiniBatchKMeansParameters& params,
                                                        int k, int d, std::vector<float> centres,
                                                        std::vector<double> weights);
  // From a full fit: its centres, weights = cluster sizes.
  [[nodiscard]] static StatusOr<MiniBatchKMeans> FromFit(const MiniBatchKMeansParameters& params,
                                                         const KMeansResult& fit);

  // One step on m points (m x d). Writes each point's nearest centre (before the update) to
  // `assignments_out` when not null. A centre re-seeded in this step may be re-seeded to one of
  // the batch's points; that point's reported assignment still names the centre it moved.
  MiniBatchStepStats Step(const float* batch, int64_t m, int32_t* assignments_out);
  // Step with forgetting by event time: `event_time_ms` is the batch's (latest) event time.
  // Times that go backwards decay nothing.
  MiniBatchStepStats StepAt(const float* batch, int64_t m, int64_t event_time_ms,
                            int32_t* assignments_out);

  int k() const { return k_; }
  int d() const { return d_; }
  const std::vector<float>& centres() const { return centres_; }
  const float* centre(int j) const { return centres_.data() + static_cast<size_t>(j) * d_; }
  // Decayed weights (learning rate of centre j is 1 / weight_j).
  const std::vector<double>& weights() const { return weights_; }
  // Points each centre absorbed (never decayed; reset when the centre is re-seeded).
  const std::vector<uint64_t>& counts() const { return counts_; }
  // EWMA of the mean squared distance per point; 0 before the first step.
  double smoothed_objective() const { return smoothed_objective_; }
  uint64_t steps() const { return steps_; }
  uint64_t points_seen() const { return points_seen_; }
  uint64_t reassignments() const { return reassignments_; }
  int64_t last_event_time_ms() const { return last_event_time_ms_; }
  const MiniBatchKMeansParameters& params() const { return params_; }

  // Writes k, d, centres (float and full precision), weights, counts and the online state into
  // `model`. A model restored by FromProto continues exactly as this one would.
  void ToProto(v1::SegmentModel* model) const;
  // Restores a model written by ToProto (with these parameters); Corruption on size mismatch.
  [[nodiscard]] static StatusOr<MiniBatchKMeans> FromProto(const MiniBatchKMeansParameters& params,
                                                           const v1::SegmentModel& model);

 private:
  MiniBatchKMeans() = default;
  MiniBatchStepStats DoStep(const float* batch, int64_t m, double decay, int32_t* assignments_out);

  MiniBatchKMeansParameters params_;
  int k_ = 0;
  int d_ = 0;
  std::vector<float> centres_;         // float mirror of centres_exact_, used for assignment
  std::vector<double> centres_exact_;  // updated in double: 1/weight steps stay exact
  std::vector<double> weights_;
  std::vector<uint64_t> counts_;
  double smoothed_objective_ = 0;
  uint64_t steps_ = 0;
  uint64_t points_seen_ = 0;
  uint64_t reassignments_ = 0;
  int64_t last_event_time_ms_ = INT64_MIN;
  std::vector<int32_t> scratch_assign_;  // reused between steps: no per-point allocation
};

namespace detail {

// Small deterministic generator (SplitMix64): identical sequences on every platform, and a
// state of one word (so an online model's generator is just its step counter).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, n) (Lemire's multiply-shift; bias < n / 2^64). REQUIRES n > 0.
  uint64_t Below(uint64_t n);
  // Uniform in [0, 1) with 53 bits.
  double Unit();

 private:
  uint64_t state_;
};

// Seed of the i-th derived stream of `seed`.
uint64_t DeriveSeed(uint64_t seed, uint64_t i);

// `s` distinct indices out of [0, n), uniformly, in increasing order (Knuth's selection
// sampling, O(n)). s >= n gives all indices.
std::vector<int64_t> SampleIndices(int64_t n, int64_t s, uint64_t seed);

// Greedy k-means++ (Arthur & Vassilvitskii 2007; scikit-learn's variant): the first centre is a
// uniform point; each next one is the best of `local_trials` candidates drawn with probability
// proportional to the squared distance to the closest chosen centre, "best" being the one that
// lowers the total potential most. Distances are exact. Writes k x d into `centres_out`.
// REQUIRES n >= k >= 1.
void KMeansPlusPlus(const float* x, int64_t n, int d, int k, uint64_t seed, int local_trials,
                    int threads, float* centres_out);

// Re-creates every empty cluster (size 0) by splitting the currently largest one: the empty
// centre becomes a copy of the largest's, both are nudged in opposite directions by a relative
// 1/1024 (as faiss's split_clusters), and the size is divided between them. Returns the number
// of splits. `centres` k x d, `sizes` k.
int SplitEmptyClusters(int k, int d, float* centres, int64_t* sizes);

// Squared Euclidean distance of two d-vectors.
float SquaredDistance(const float* a, const float* b, int d);

}  // namespace detail

}  // namespace streamrec

#endif  // STREAMREC_KMEANS_H_
