#include "streamrec/kmeans_segmenter.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "background_thread.h"
#include "streamrec/hungarian.h"
#include "streamrec/time_util.h"

namespace streamrec {

namespace {

constexpr double kDayMs = 86400000.0;

// Days since the epoch (UTC) of an event time, rounding down.
int64_t EventDay(int64_t ms) {
  const int64_t day = static_cast<int64_t>(kDayMs);
  return ms >= 0 ? ms / day : -((-ms + day - 1) / day);
}

int ColumnOf(const FeatureSpec& spec, FeatureKind kind) {
  for (int j = 0; j < spec.dim(); ++j) {
    if (spec.features[j].kind == kind) return j;
  }
  return -1;
}

// Centres of `from` (k x d in its transform's space) expressed in `to`'s space.
std::vector<float> MapCentres(const FeatureTransform& from, const FeatureTransform& to,
                              const std::vector<float>& centres, int k) {
  const int d = from.dim();
  std::vector<float> out(centres.size());
  std::vector<double> original(d);
  std::vector<float> raw(d);
  for (int j = 0; j < k; ++j) {
    from.Inverse(centres.data() + static_cast<size_t>(j) * d, original.data());
    for (int c = 0; c < d; ++c) raw[c] = static_cast<float>(original[c]);
    to.Apply(raw.data(), out.data() + static_cast<size_t>(j) * d);
  }
  return out;
}

MiniBatchKMeansParameters OnlineParams(const SegmentsConfig& c) {
  MiniBatchKMeansParameters p;
  p.half_life_points = c.half_life_events;
  p.reassignment_ratio = c.reassignment_ratio;
  p.seed = c.seed;
  return p;
}

// The newest source watermark in the store (0 when no position is stored).
StatusOr<int64_t> StoreWatermark(StateStore* store) {
  int64_t watermark = 0;
  Status decode_status;
  v1::SourcePosition position;
  STREAMREC_RETURN_IF_ERROR(
      store->Scan(Column::kPositions, "", [&](std::string_view, std::string_view value) {
        decode_status = DecodeState(value, &position);
        if (!decode_status.ok()) return false;
        watermark = std::max(watermark, position.watermark_ms());
        return true;
      }));
  STREAMREC_RETURN_IF_ERROR(decode_status);
  return watermark;
}

// The event time to take a store's vectors at: the newest source watermark, or when none is
// stored, the newest last purchase.
StatusOr<int64_t> StoreNow(StateStore* store, const CustomerIdsInLogs& log_ids) {
  auto watermark = StoreWatermark(store);
  if (!watermark.ok()) return watermark.status();
  if (*watermark > 0) return *watermark;
  int64_t now = 0;
  STREAMREC_RETURN_IF_ERROR(ScanCustomers(
      store, log_ids, [&](std::string_view, CustomerState& s) {
        now = std::max(now, s.last_time_ms());
        return true;
      }));
  return now;
}

}  // namespace

std::string ModelVersionKey(uint64_t version) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "version/%020llu", static_cast<unsigned long long>(version));
  return buf;
}

// ---- model version --------------------------------------------------------------------------

int SegmentModelVersion::RowOf(int32_t id) const {
  for (int j = 0; j < k; ++j) {
    if (ids[j] == id) return j;
  }
  return -1;
}

StatusOr<std::shared_ptr<const SegmentModelVersion>> SegmentModelVersion::FromProto(
    const v1::SegmentModel& proto) {
  auto m = std::make_shared<SegmentModelVersion>();
  m->version = proto.version();
  STREAMREC_RETURN_IF_ERROR(FeatureTransform::FromProto(proto, &m->spec, &m->transform));
  auto rfm = RfmQuintiles::FromProto(proto.rfm());
  if (!rfm.ok()) return rfm.status();
  m->rfm = *rfm;
  m->k = proto.k();
  const int d = m->spec.dim();
  if (m->k < 1 || proto.centres_size() != m->k * d || proto.clusters_size() != m->k) {
    return Status::Corruption("segment model v" + std::to_string(proto.version()) +
                              ": k=" + std::to_string(m->k) + ", d=" + std::to_string(d) + ", " +
                              std::to_string(proto.centres_size()) + " centre values, " +
                              std::to_string(proto.clusters_size()) + " clusters");
  }
  m->centres.assign(proto.centres().begin(), proto.centres().end());
  for (const v1::SegmentCluster& c : proto.clusters()) {
    m->ids.push_back(c.id());
    m->names.push_back(c.name());
    m->actions.push_back(c.action());
  }
  m->proto = proto;
  return std::shared_ptr<const SegmentModelVersion>(std::move(m));
}

StatusOr<SegmentFitOptions> SegmentFitOptions::FromConfig(const SegmentsConfig& c) {
  SegmentFitOptions o;
  if (!c.features.empty()) {
    std::vector<std::string> names;
    std::stringstream ss(c.features);
    for (std::string name; std::getline(ss, name, ',');) {
      name.erase(0, name.find_first_not_of(' '));
      name.erase(name.find_last_not_of(' ') + 1);
      names.push_back(name);
    }
    auto spec = FeatureSpec::FromNames(names);
    if (!spec.ok()) {
      return Status::InvalidArgument("configuration key 'segments.features': " +
                                     spec.status().message());
    }
    o.spec = std::move(spec).value();
  }
  if (!c.transforms.empty()) {
    auto kinds = ParseTransformKinds(o.spec, c.transforms);
    if (!kinds.ok()) {
      return Status::InvalidArgument("configuration key 'segments.transforms': " +
                                     kinds.status().message());
    }
    o.transforms = std::move(kinds).value();
  }
  o.k = c.k;
  o.k_min = c.k_min;
  o.k_max = c.k_max;
  o.n_init = c.n_init;
  o.seed = c.seed;
  o.max_iterations = c.max_iterations;
  o.sample_size = c.refit_sample_size;
  o.silhouette_sample_size = c.silhouette_sample_size;
  o.threads = c.threads;
  if (!c.rules_file.empty()) {
    auto rules = SegmentRuleTable::LoadCsv(c.rules_file);
    if (!rules.ok()) {
      return Status::InvalidArgument("configuration key 'segments.rules_file': " +
                                     rules.status().message());
    }
    o.rules = std::move(rules).value();
  }
  return o;
}

void SegmentFitInput::Add(const FeatureSpec& spec, const CustomerState& state) {
  const size_t d = spec.dim();
  ++population;
  if (max_rows > 0) {
    const double h = UniformHash(state.customer_id(), kSegmentFitSampleSalt);
    if (h >= threshold_) return;
    hash_.push_back(h);
    dim_ = d;
  }
  raw.resize(raw.size() + d);
  BuildRawVector(spec, state, now_ms, raw.data() + raw.size() - d);
  DerivedFeatures f = Derive(state, now_ms);
  recency_days.push_back(f.recency_days);
  frequency.push_back(f.frequency);
  monetary.push_back(f.monetary);
  ++n;
  if (max_rows > 0 && n > 2 * max_rows) KeepBelow(threshold_ / 2, d);
}

bool SegmentFitInput::Skips(std::string_view customer_id) {
  if (max_rows <= 0 || UniformHash(customer_id, kSegmentFitSampleSalt) < threshold_) return false;
  ++population;
  return true;
}

void SegmentFitInput::Finish() {
  if (max_rows <= 0 || n <= max_rows) return;
  KeepBelow(BottomKThreshold(hash_, static_cast<size_t>(max_rows)), dim_);
}

void SegmentFitInput::KeepBelow(double threshold, size_t d) {
  threshold_ = threshold;
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (hash_[i] >= threshold) continue;
    std::copy_n(raw.data() + i * d, d, raw.data() + kept * d);
    recency_days[kept] = recency_days[i];
    frequency[kept] = frequency[i];
    monetary[kept] = monetary[i];
    hash_[kept] = hash_[i];
    ++kept;
  }
  n = kept;
  raw.resize(static_cast<size_t>(kept) * d);
  recency_days.resize(kept);
  frequency.resize(kept);
  monetary.resize(kept);
  hash_.resize(kept);
}

// ---- full fit -------------------------------------------------------------------------------

StatusOr<SegmentFitReport> FitSegmentModel(const SegmentFitOptions& options,
                                           const SegmentFitInput& input,
                                           const SegmentModelVersion* previous,
                                           const std::vector<float>& previous_centres,
                                           uint64_t version, std::vector<int32_t>* rows_out) {
  const int d = options.spec.dim();
  const int64_t n = input.n;
  const int k_floor = options.k > 0 ? options.k : options.k_min;
  if (n < std::max(2, k_floor)) {
    return Status::InvalidArgument("segment fit: number of customers " + std::to_string(n) +
                                   " should be at least k=" + std::to_string(std::max(2, k_floor)));
  }
  SegmentFitReport report;
  // A sampled input stands for its whole population (the growth trigger compares to it).
  const int64_t population = std::max(input.population, n);
  report.customers = population;
  report.now_ms = input.now_ms;

  // Training rows: all, or a uniform sample.
  std::vector<int64_t> train_rows;
  if (options.sample_size > 0 && n > options.sample_size) {
    train_rows = detail::SampleIndices(n, options.sample_size, options.seed);
  } else {
    train_rows.resize(n);
    for (int64_t i = 0; i < n; ++i) train_rows[i] = i;
  }
  const int64_t m = static_cast<int64_t>(train_rows.size());
  report.trained = m;
  std::vector<float> train_raw(static_cast<size_t>(m) * d);
  std::vector<double> rec(m), freq(m), mon(m);
  for (int64_t t = 0; t < m; ++t) {
    const int64_t i = train_rows[t];
    std::copy_n(input.raw.data() + i * d, d, train_raw.data() + t * d);
    rec[t] = input.recency_days[i];
    freq[t] = input.frequency[i];
    mon[t] = input.monetary[i];
  }

  FeatureTransformOptions transform_options;
  transform_options.kinds =
      options.transforms.empty() ? DefaultTransformKinds(options.spec) : options.transforms;
  if (static_cast<int>(transform_options.kinds.size()) != d) {
    return Status::InvalidArgument("segment fit: " + std::to_string(options.transforms.size()) +
                                   " transforms for d=" + std::to_string(d) + " features");
  }
  auto transform_or = FeatureTransform::Fit(train_raw.data(), m, d, transform_options);
  if (!transform_or.ok()) return transform_or.status();
  const FeatureTransform transform = std::move(transform_or).value();
  std::vector<float> x(static_cast<size_t>(n) * d);
  transform.ApplyRows(input.raw.data(), n, x.data());
  std::vector<float> train_x(static_cast<size_t>(m) * d);
  for (int64_t t = 0; t < m; ++t) {
    std::copy_n(x.data() + train_rows[t] * d, d, train_x.data() + t * d);
  }

  KMeansParameters params;
  params.max_iterations = options.max_iterations;
  params.n_init = options.n_init;
  params.seed = options.seed;
  params.threads = options.threads;
  params.record_iterations = false;

  // Previous centres in the new space (for a warm start and for matching ids).
  const bool comparable = previous != nullptr && previous->spec.features == options.spec.features;
  std::vector<float> old_centres;
  if (comparable) {
    old_centres = MapCentres(previous->transform, transform,
                             previous_centres.empty() ? previous->centres : previous_centres,
                             previous->k);
  }

  KMeansResult fit;
  double silhouette = 0;
  if (options.k == 0) {
    const int k_max = static_cast<int>(std::min<int64_t>(options.k_max, m - 1));
    const int k_min = std::min(std::max(2, options.k_min), k_max);
    auto chosen = ChooseK(train_x.data(), m, d, k_min, k_max, params,
                          options.silhouette_sample_size);
    if (!chosen.ok()) return chosen.status();
    report.k_scores = chosen->scores;
    for (const KScore& s : chosen->scores) {
      if (s.k == chosen->best_k) silhouette = s.silhouette;
    }
    fit = std::move(chosen->best);
  } else {
    params.k = options.k;
    if (comparable && previous->k == options.k) params.initial_centres = old_centres;
    auto fitted = KMeansFit(train_x.data(), m, d, params);
    if (!fitted.ok()) return fitted.status();
    fit = std::move(fitted).value();
    auto sil = Silhouette(train_x.data(), m, d, fit.assignments.data(), fit.k,
                          options.silhouette_sample_size, options.seed, options.threads);
    silhouette = sil.ok() ? *sil : 0;
    report.k_scores.push_back(KScore{fit.k, fit.objective, silhouette, 0});
  }
  const int k = fit.k;

  // Every customer to its nearest centre; objective and sizes over all of them.
  std::vector<int32_t> rows(n);
  std::vector<float> dist(n);
  AssignNearest(fit.centres.data(), k, x.data(), n, d, rows.data(), dist.data(), options.threads);
  double objective = 0;
  std::vector<int64_t> sizes(k, 0);
  for (int64_t i = 0; i < n; ++i) {
    objective += dist[i];
    ++sizes[rows[i]];
  }
  // A sampled input stands for its population: its sums are scaled up to it.
  const double scale = static_cast<double>(population) / static_cast<double>(n);
  if (population > n) {
    objective *= scale;
    for (int64_t& size : sizes) size = std::llround(static_cast<double>(size) * scale);
  }

  if (comparable) {
    // The centres being replaced, scored on the same matrix (online vs full fit quality).
    std::vector<int32_t> old_rows(n);
    std::vector<float> old_dist(n);
    AssignNearest(old_centres.data(), previous->k, x.data(), n, d, old_rows.data(),
                  old_dist.data(), options.threads);
    for (int64_t i = 0; i < n; ++i) report.previous_objective += old_dist[i];
    if (population > n) report.previous_objective *= scale;
  }

  // Stable ids.
  std::vector<int32_t> ids(k);
  int32_t next_id = previous != nullptr ? previous->proto.next_cluster_id() : 0;
  if (comparable) {
    auto matching =
        MatchCentres(old_centres.data(), previous->k, fit.centres.data(), k, d);
    if (!matching.ok()) return matching.status();
    ids = StableClusterIds(*matching, previous->ids, &next_id);
    for (int32_t j : matching->deaths) report.deaths.push_back(previous->ids[j]);
    for (int32_t j : matching->births) report.births.push_back(ids[j]);
  } else {
    for (int j = 0; j < k; ++j) {
      ids[j] = next_id++;
      report.births.push_back(ids[j]);
    }
    if (previous != nullptr) report.deaths = previous->ids;
  }

  // Names from the centres' RFM quintile scores (centres in original units; without an R, F or
  // M column, the mean of the cluster's customers).
  auto rfm = RfmQuintiles::Fit(rec, freq, mon);
  if (!rfm.ok()) return rfm.status();
  std::vector<CentreRfm> centre_rfm(k);
  {
    std::vector<double> sum_r(k, 0), sum_f(k, 0), sum_m(k, 0);
    for (int64_t i = 0; i < n; ++i) {
      sum_r[rows[i]] += input.recency_days[i];
      sum_f[rows[i]] += input.frequency[i];
      sum_m[rows[i]] += input.monetary[i];
    }
    const int cr = ColumnOf(options.spec, FeatureKind::kRecencyDays);
    const int cf = ColumnOf(options.spec, FeatureKind::kFrequency);
    const int cm = ColumnOf(options.spec, FeatureKind::kMonetary);
    for (int j = 0; j < k; ++j) {
      std::vector<double> original = transform.Inverse(fit.centres.data() + j * d);
      const double size = std::max<int64_t>(sizes[j], 1);
      centre_rfm[j].recency_days = cr >= 0 ? original[cr] : sum_r[j] / size;
      centre_rfm[j].frequency = cf >= 0 ? original[cf] : sum_f[j] / size;
      centre_rfm[j].monetary = cm >= 0 ? original[cm] : sum_m[j] / size;
    }
  }
  std::vector<SegmentLabel> labels = NameSegments(*rfm, options.rules, centre_rfm);

  // The version.
  auto model = std::make_shared<SegmentModelVersion>();
  model->version = version;
  model->spec = options.spec;
  model->transform = transform;
  model->rfm = *rfm;
  model->k = k;
  model->centres = fit.centres;
  model->ids = ids;
  v1::SegmentModel& proto = model->proto;
  proto.set_version(version);
  proto.set_created_event_time_ms(input.now_ms);
  transform.ToProto(options.spec, &proto);
  std::vector<double> weights(sizes.begin(), sizes.end());
  auto online = MiniBatchKMeans::Create(MiniBatchKMeansParameters{}, k, d, fit.centres, weights);
  if (!online.ok()) return online.status();
  online->ToProto(&proto);
  for (int j = 0; j < k; ++j) {
    v1::SegmentCluster* c = proto.add_clusters();
    c->set_id(ids[j]);
    c->set_name(labels[j].name);
    c->set_action(labels[j].action);
    c->set_r_score(labels[j].score.r);
    c->set_f_score(labels[j].score.f);
    c->set_m_score(labels[j].score.m);
    c->set_size(static_cast<uint64_t>(sizes[j]));
    model->names.push_back(labels[j].name);
    model->actions.push_back(labels[j].action);
  }
  rfm->ToProto(proto.mutable_rfm());
  proto.set_objective(objective);
  proto.set_silhouette(silhouette);
  proto.set_next_cluster_id(next_id);
  proto.set_fit_points(static_cast<uint64_t>(population));
  proto.set_fit_iterations(fit.iterations);
  proto.set_seed(options.seed);
  const uint64_t births_before = previous != nullptr ? previous->proto.births_total() : 0;
  const uint64_t deaths_before = previous != nullptr ? previous->proto.deaths_total() : 0;
  proto.set_births_total(births_before + report.births.size());
  proto.set_deaths_total(deaths_before + report.deaths.size());
  for (int32_t id : report.births) proto.add_births(id);
  for (int32_t id : report.deaths) proto.add_deaths(id);
  report.model = std::move(model);
  if (rows_out != nullptr) *rows_out = std::move(rows);
  return report;
}

// ---- segmenter ------------------------------------------------------------------------------

struct KMeansSegmenter::Impl {
  KMeansSegmenterOptions options;
  SegmentFitOptions fit_options;
  MiniBatchKMeansParameters online_params;
  StateStore* store = nullptr;
  std::shared_ptr<Logger> logger;

  mutable std::mutex mu;  // guards model (readers on other threads) and background results
  std::shared_ptr<const SegmentModelVersion> model;
  std::optional<MiniBatchKMeans> online;  // consumer thread only
  std::atomic<uint64_t> refits{0};
  std::atomic<uint64_t> refit_failures_total{0};
  std::atomic<bool> refit_requested{false};  // RequestRefit (any thread)
  // Several instances, one model: whether this one fits; the newest version offered by another
  // (guarded by mu); versions adopted; what to call with each version fitted here.
  std::atomic<bool> refitter{true};
  // kafka.sample_topic (set before the first batch): the other partitions' samples, and which
  // partitions' stored customers a fit takes.
  SharedFitSamples shared;
  std::shared_ptr<const SegmentModelVersion> offered;
  bool offer_new = false;  // offered since the last AdoptOffered (guarded by mu)
  std::atomic<uint64_t> adopted{0};
  std::function<void(const v1::SegmentModel&)> on_fitted;
  double last_fit_seconds = 0;               // consumer thread
  int64_t last_fit_unix_ms = 0;

  // Pending writes for the next AppendWrites (consumer thread).
  bool online_dirty = false;
  std::vector<std::shared_ptr<const SegmentModelVersion>> new_versions;
  std::vector<std::pair<std::string, std::string>> state_writes;
  // Stored customers relabelled since the last TakeRelabels (cluster or segment changed).
  std::vector<SegmentRelabel> relabels;
  // Rescore sweep: the store key of the last customer re-assigned ("" = from the start), and the
  // points the sweep fed to the online step since the model was installed (they are not customer
  // updates: the re-fit triggers do not count them). Both persisted in the current proto.
  std::string rescore_cursor;
  uint64_t rescored_points = 0;

  // Customer updates the online model absorbed since its fit (not the sweep's points).
  uint64_t UpdatesSinceFit() const {
    const uint64_t seen = online ? online->points_seen() : 0;
    return seen > rescored_points ? seen - rescored_points : 0;
  }

  // Relabels a stored customer `state` (key `key`) to centre row `row` of `v`; when its cluster
  // or segment changes, queues its new state for AppendWrites and a relabel for TakeRelabels.
  void Relabel(const SegmentModelVersion& v, int row, std::string key, CustomerState* state,
               int64_t now_ms) {
    const int32_t old_cluster = state->cluster();
    const uint64_t old_version = state->model_version();
    if (v.ids[row] == old_cluster && v.names[row] == state->segment()) {
      // Same segment: the state is written only if it was scored by another version (its
      // model_version would be stale), and no change is emitted.
      if (old_version == v.version) return;
      Label(v, row, state);
      state_writes.emplace_back(std::move(key), EncodeState(*state));
      return;
    }
    SegmentRelabel r;
    r.change.set_customer_id(state->customer_id());
    r.change.set_from_cluster(old_cluster);
    r.change.set_from_segment(state->segment());
    Label(v, row, state);
    CountMove(old_cluster, old_version, state->cluster(), now_ms);
    r.change.set_to_cluster(state->cluster());
    r.change.set_to_segment(state->segment());
    r.change.set_model_version(v.version);
    r.change.set_event_time_ms(now_ms);
    r.key = key;
    relabels.push_back(std::move(r));
    state_writes.emplace_back(std::move(key), EncodeState(*state));
  }

  // The next stored customers of the rescore sweep: up to segments.rescore_per_batch keys after
  // the cursor, wrapping once to the start, never the same key twice; customers of the batch
  // (their stored state is stale, the batch scores them) are passed over but advance the cursor.
  Status CollectSweep(std::span<CustomerState* const> batch,
                      std::vector<std::pair<std::string, CustomerState>>* out) {
    const int64_t budget = options.config.rescore_per_batch;
    if (store == nullptr || budget <= 0) return Status::OK();
    std::unordered_set<std::string_view> in_batch;
    for (CustomerState* s : batch) in_batch.insert(s->customer_id());
    int64_t visited = 0;
    std::string last = rescore_cursor;
    bool wrapped_past_start = false;
    CustomerState state;
    Status decode_status;
    auto visit = [&](std::string_view key, std::string_view value) {
      if (wrapped_past_start && !rescore_cursor.empty() && key > rescore_cursor) return false;
      ++visited;
      last.assign(key);
      if (in_batch.count(CustomerIdOfKey(key)) == 0) {
        decode_status = DecodeState(value, &state);
        if (!decode_status.ok()) {
          decode_status = Status::Corruption("customer " + options.log_ids.Name(CustomerIdOfKey(key)) +
                                             ": " + decode_status.message());
          return false;
        }
        out->emplace_back(std::string(key), state);
      }
      return visited < budget;
    };
    // After the cursor (its successor: the cursor followed by a zero byte) ...
    std::string start = rescore_cursor;
    if (!start.empty()) start.push_back('\0');
    STREAMREC_RETURN_IF_ERROR(store->ScanFrom(Column::kCustomers, "", start, visit));
    STREAMREC_RETURN_IF_ERROR(decode_status);
    // ... then from the start up to the cursor itself.
    if (visited < budget && !rescore_cursor.empty()) {
      wrapped_past_start = true;
      STREAMREC_RETURN_IF_ERROR(store->Scan(Column::kCustomers, "", visit));
      STREAMREC_RETURN_IF_ERROR(decode_status);
    }
    if (last != rescore_cursor) {
      rescore_cursor = std::move(last);
      online_dirty = true;
    }
    return Status::OK();
  }

  // Customer moves per event-time day: day -> (from cluster, to cluster) -> count. Consumer
  // thread (and Refit); persisted in the current proto.
  std::map<int64_t, std::map<std::pair<int32_t, int32_t>, uint64_t>> transitions;

  // Counts a move of a customer labelled (from_cluster, from_version) before; a customer never
  // scored (model version 0) or staying in its cluster is no move.
  void CountMove(int32_t from_cluster, uint64_t from_version, int32_t to_cluster,
                 int64_t now_ms) {
    if (from_version == 0 || from_cluster < 0 || from_cluster == to_cluster) return;
    ++transitions[EventDay(now_ms)][{from_cluster, to_cluster}];
    online_dirty = true;
  }

  // Drops the days that fell out of the window ending at `now_ms`'s day.
  void PruneTransitions(int64_t now_ms) {
    const int64_t first_kept = EventDay(now_ms) - options.config.transition_window_days + 1;
    while (!transitions.empty() && transitions.begin()->first < first_kept) {
      transitions.erase(transitions.begin());
      online_dirty = true;
    }
  }

  void TransitionsToProto(v1::SegmentModel* proto) const {
    proto->clear_transitions();
    for (const auto& [day, counts] : transitions) {
      v1::TransitionDay* d = proto->add_transitions();
      d->set_day(day);
      for (const auto& [move, count] : counts) {
        v1::TransitionCount* c = d->add_counts();
        c->set_from_cluster(move.first);
        c->set_to_cluster(move.second);
        c->set_count(count);
      }
    }
  }

  void TransitionsFromProto(const v1::SegmentModel& proto) {
    transitions.clear();
    for (const v1::TransitionDay& d : proto.transitions()) {
      for (const v1::TransitionCount& c : d.counts()) {
        transitions[d.day()][{c.from_cluster(), c.to_cluster()}] += c.count();
      }
    }
  }

  // A fit of this batch relabelled every stored customer: the sweep has nothing to add.
  bool relabelled_stored = false;

  // Cold start without a store: the customers seen so far.
  std::map<std::string, CustomerState> seen;
  uint64_t refit_failures = 0;

  // Background re-fit.
  std::thread worker;
  std::atomic<bool> refit_running{false};
  int64_t last_now_ms = 0;  // the event time of the last batch (0: none since Create)
  std::shared_ptr<const SegmentModelVersion> refit_result;  // guarded by mu
  std::string refit_error;                                   // guarded by mu
  double refit_seconds = 0;                                  // guarded by mu

  static double SecondsSince(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  // `seconds`: how long the fit took (wall clock), for the metrics.
  // `adopted`: fitted by another instance (not counted as a re-fit, not published again).
  void Install(std::shared_ptr<const SegmentModelVersion> version, double seconds,
               bool adopted_version = false) {
    last_fit_seconds = seconds;
    last_fit_unix_ms = WallClockMillis();
    LogLifecycle(*version);
    auto online_or = MiniBatchKMeans::FromProto(online_params, version->proto);
    // A version built by FitSegmentModel always restores.
    online.emplace(std::move(online_or).value());
    {
      std::lock_guard<std::mutex> lock(mu);
      model = version;
    }
    new_versions.push_back(version);
    rescored_points = 0;
    online_dirty = true;
    if (adopted_version) {
      ++adopted;
      logger->Info("segment model v" + std::to_string(version->version) +
                   " adopted (fitted by another instance)");
    } else {
      ++refits;
      if (on_fitted) on_fitted(version->proto);
    }
  }

  // Installs the newest offered version when it is newer than the current one (consumer thread).
  bool AdoptOffered() {
    std::shared_ptr<const SegmentModelVersion> candidate;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!offered || !offer_new) return false;
      offer_new = false;
      // Newer wins. A follower also takes another fit of its own version: two refitters in
      // turn (partition 0 moved right after a fit that never reached the topic) may each have
      // fitted it, and the topic's is the one every instance uses.
      const bool newer = !model || offered->version > model->version;
      const bool replaces = model && !refitter.load() && offered->version == model->version &&
                            offered->proto.SerializeAsString() != model->proto.SerializeAsString();
      if (!newer && !replaces) return false;
      candidate = offered;
    }
    Install(std::move(candidate), 0, /*adopted_version=*/true);
    return true;
  }

  // Logs the clusters born and dying at `version`'s fit (nothing for a fit without either).
  void LogLifecycle(const SegmentModelVersion& version) const {
    const v1::SegmentModel& p = version.proto;
    if (p.births_size() == 0 && p.deaths_size() == 0) return;
    auto ids = [](const google::protobuf::RepeatedField<int32_t>& list) {
      std::string out;
      for (int32_t id : list) out += (out.empty() ? "" : ",") + std::to_string(id);
      return out.empty() ? std::string("-") : out;
    };
    logger->Info("segment model v" + std::to_string(p.version()) + ": clusters born [" +
                 ids(p.births()) + "], died [" + ids(p.deaths()) + "] (totals: " +
                 std::to_string(p.births_total()) + " births, " +
                 std::to_string(p.deaths_total()) + " deaths)");
  }

  // Reads the stored model (the current proto: fitted version plus online state); no model
  // when none is stored. Whatever was not written is forgotten.
  Status LoadFromStore() {
    std::shared_ptr<const SegmentModelVersion> loaded;
    std::optional<MiniBatchKMeans> loaded_online;
    auto current = LoadStoredModel(store);
    if (current.ok()) {
      // The fitted version as written at its fit; the current proto carries the online state.
      v1::SegmentModel fitted = *current;
      std::string value;
      Status s = store->Get(Column::kModel, ModelVersionKey(current->version()), &value);
      if (s.ok()) {
        STREAMREC_RETURN_IF_ERROR(DecodeState(value, &fitted));
      } else if (!s.IsNotFound()) {
        return s;
      }
      auto version = SegmentModelVersion::FromProto(fitted);
      if (!version.ok()) return version.status();
      auto online_model = MiniBatchKMeans::FromProto(online_params, *current);
      if (!online_model.ok()) return online_model.status();
      loaded = std::move(version).value();
      loaded_online.emplace(std::move(online_model).value());
      TransitionsFromProto(*current);
      rescore_cursor = current->rescore_cursor();
      rescored_points = current->online_rescored_points();
    } else if (!current.status().IsNotFound()) {
      return current.status();
    } else {
      transitions.clear();
      rescore_cursor.clear();
      rescored_points = 0;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      model = std::move(loaded);
    }
    online = std::move(loaded_online);
    online_dirty = false;
    new_versions.clear();
    state_writes.clear();
    relabels.clear();
    relabelled_stored = false;
    return Status::OK();
  }

  std::shared_ptr<const SegmentModelVersion> Current() const {
    std::lock_guard<std::mutex> lock(mu);
    return model;
  }

  void Label(const SegmentModelVersion& v, int row, CustomerState* state) const {
    state->set_cluster(v.ids[row]);
    state->set_segment(v.names[row]);
    state->set_model_version(v.version);
  }

  // The fit input: every stored customer, with the batch's states in place of their stored ones.
  Status CollectInput(std::span<CustomerState* const> batch, int64_t now_ms,
                      const FeatureSpec& spec, SegmentFitInput* input,
                      std::vector<std::pair<std::string, CustomerState>>* others) {
    input->now_ms = now_ms;
    std::unordered_set<std::string_view> in_batch;
    for (CustomerState* s : batch) in_batch.insert(s->customer_id());
    if (store != nullptr) {
      const auto fits = shared.StoredKeyFilter();
      STREAMREC_RETURN_IF_ERROR(ScanCustomers(store, options.log_ids, [&](std::string_view key,
                                                                         CustomerState& s) {
        if (in_batch.count(s.customer_id()) != 0) return true;
        if (!fits(key)) return true;
        input->Add(spec, s);
        if (others != nullptr) others->emplace_back(std::string(key), s);
        return true;
      }));
    } else {
      for (auto& [id, s] : seen) {
        if (in_batch.count(id) == 0) input->Add(spec, s);
      }
    }
    if (shared.samples) shared.samples([&](const CustomerState& s) { input->Add(spec, s); });
    for (CustomerState* s : batch) input->Add(spec, *s);
    return Status::OK();
  }

  // Synchronous fit on everything seen; reassigns stored customers when `reassign_stored`.
  Status FitNow(std::span<CustomerState* const> batch, int64_t now_ms, bool reassign_stored) {
    const auto start = std::chrono::steady_clock::now();
    refit_requested.store(false);
    SegmentFitInput input;
    std::vector<std::pair<std::string, CustomerState>> others;
    STREAMREC_RETURN_IF_ERROR(CollectInput(batch, now_ms, fit_options.spec, &input,
                                           reassign_stored ? &others : nullptr));
    auto previous = Current();
    std::vector<float> previous_centres;
    if (previous && online) previous_centres = online->centres();
    std::vector<int32_t> rows;
    auto report = FitSegmentModel(fit_options, input, previous.get(), previous_centres,
                                  previous ? previous->version + 1 : 1, &rows);
    if (!report.ok()) {
      ++refit_failures_total;
      return report.status();
    }
    Install(report->model, SecondsSince(start));
    const SegmentModelVersion& v = *report->model;
    for (size_t i = 0; i < others.size(); ++i) {
      Relabel(v, rows[i], std::move(others[i].first), &others[i].second, now_ms);
    }
    relabelled_stored = store != nullptr;
    // Without a store, `seen` is the population of every later fit: keep it.
    if (store != nullptr) seen.clear();
    return Status::OK();
  }

  bool RefitDue(int64_t now_ms) const {
    if (!model || !online || !refitter.load()) return false;
    if (refit_requested.load()) return true;
    const SegmentsConfig& c = options.config;
    if (c.refit_every_events > 0 &&
        UpdatesSinceFit() >= static_cast<uint64_t>(c.refit_every_events)) {
      return true;
    }
    if (c.refit_growth_ratio > 0 &&
        UpdatesSinceFit() >= c.refit_growth_ratio * model->proto.fit_points()) {
      return true;
    }
    if (c.refit_interval_days > 0 &&
        now_ms - model->proto.created_event_time_ms() >= c.refit_interval_days * kDayMs) {
      return true;
    }
    if (c.drift_ratio > 0 && online->steps() > 0 && model->proto.fit_points() > 0) {
      const double fit_mean = model->proto.objective() / model->proto.fit_points();
      if (online->smoothed_objective() > c.drift_ratio * fit_mean) return true;
    }
    return false;
  }

  void StartBackgroundRefit(int64_t now_ms) {
    if (refit_running.exchange(true)) return;
    if (worker.joinable()) worker.join();
    refit_requested.store(false);
    auto previous = Current();
    std::vector<float> previous_centres = online->centres();
    worker = std::thread([this, previous, previous_centres, now_ms] {
      StartBackgroundThread("sr-segment-fit", options.config.refit_nice);
      if (options.on_refit_start) options.on_refit_start();
      const auto start = std::chrono::steady_clock::now();
      SegmentFitInput input;
      input.now_ms = now_ms;
      // Nothing is reassigned here (the rescore sweep relabels stored customers as it goes),
      // so the fit needs only its training sample: memory stays bounded by it.
      input.max_rows = fit_options.sample_size;
      const auto fits = shared.StoredKeyFilter();
      // Decided on the key, before decoding: at 10M customers and a 200k sample, ~98 % of the
      // stored states are never decoded.
      auto wanted = [&](std::string_view key) {
        return fits(key) && !input.Skips(CustomerIdOfKey(key));
      };
      Status s = ScanCustomers(store, options.log_ids, wanted,
                               [&](std::string_view, CustomerState& state) {
                                 input.Add(fit_options.spec, state);
                                 return true;
                               });
      if (s.ok() && shared.samples) {
        shared.samples([&](const CustomerState& state) { input.Add(fit_options.spec, state); });
      }
      input.Finish();
      std::shared_ptr<const SegmentModelVersion> result;
      if (s.ok()) {
        auto report = FitSegmentModel(fit_options, input, previous.get(), previous_centres,
                                      previous->version + 1);
        if (report.ok()) {
          result = report->model;
        } else {
          s = report.status();
        }
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        refit_result = std::move(result);
        refit_seconds = SecondsSince(start);
        if (!s.ok()) refit_error = s.ToString();
      }
      refit_running.store(false);
    });
  }

  // Swaps in a finished background re-fit (consumer thread).
  void PickUpBackgroundRefit() {
    std::shared_ptr<const SegmentModelVersion> result;
    double seconds = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      result = std::move(refit_result);
      refit_result.reset();
      seconds = refit_seconds;
      if (!refit_error.empty()) {
        ++refit_failures_total;
        std::fprintf(stderr, "streamrec: background re-fit failed: %s\n", refit_error.c_str());
        refit_error.clear();
      }
    }
    if (result && !refitter.load()) {
      logger->Info("segment model v" + std::to_string(result->version) +
                   " dropped: fitted after this instance stopped fitting for the others");
      return;
    }
    if (result) Install(std::move(result), seconds);
  }
};

KMeansSegmenter::KMeansSegmenter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KMeansSegmenter::~KMeansSegmenter() {
  if (impl_->worker.joinable()) impl_->worker.join();
}

StatusOr<v1::SegmentModel> LoadStoredModel(StateStore* store) {
  std::string value;
  STREAMREC_RETURN_IF_ERROR(store->Get(Column::kModel, kCurrentModelKey, &value));
  v1::SegmentModel proto;
  Status s = DecodeState(value, &proto);
  if (!s.ok()) return Status::Corruption("stored segment model: " + s.message());
  return proto;
}

StatusOr<std::unique_ptr<KMeansSegmenter>> KMeansSegmenter::Create(KMeansSegmenterOptions options,
                                                                   StateStore* store) {
  auto impl = std::make_unique<Impl>();
  auto fit_options = SegmentFitOptions::FromConfig(options.config);
  if (!fit_options.ok()) return fit_options.status();
  impl->fit_options = std::move(fit_options).value();
  impl->online_params = OnlineParams(options.config);
  impl->logger = options.logger ? options.logger : NewStderrLogger();
  impl->options = std::move(options);
  impl->store = store;
  if (store != nullptr) STREAMREC_RETURN_IF_ERROR(impl->LoadFromStore());
  return std::unique_ptr<KMeansSegmenter>(new KMeansSegmenter(std::move(impl)));
}

void KMeansSegmenter::AssignBatch(std::span<CustomerState* const> changed, int64_t now_ms) {
  Impl& im = *impl_;
  im.relabels.clear();  // not taken by the caller: they belonged to an earlier batch
  im.relabelled_stored = false;
  im.last_now_ms = now_ms;
  im.PickUpBackgroundRefit();
  im.AdoptOffered();
  // Without a store (evaluation), the segmenter remembers every customer it has seen: they are
  // the population of its fits.
  if (im.store == nullptr && im.model) {
    for (CustomerState* s : changed) im.seen[s->customer_id()] = *s;
  }
  if (!im.model) {
    // Cold start: fit once enough customers have been seen (a follower waits for a model).
    uint64_t customers = 0;
    if (!im.refitter.load()) {
      // Nothing to count: it never fits.
    } else if (im.store != nullptr) {
      std::unordered_set<std::string_view> in_batch;
      for (CustomerState* s : changed) in_batch.insert(s->customer_id());
      Status s = ScanCustomers(im.store, im.options.log_ids, [&](std::string_view,
                                                                 CustomerState& state) {
        if (in_batch.count(state.customer_id()) == 0) ++customers;
        return true;
      });
      if (!s.ok()) std::fprintf(stderr, "streamrec: segment cold start: %s\n", s.ToString().c_str());
      customers += changed.size();
    } else {
      for (CustomerState* s : changed) im.seen[s->customer_id()] = *s;
      customers = im.seen.size();
    }
    if (im.refitter.load() &&
        customers >= static_cast<uint64_t>(im.options.config.min_customers_for_fit)) {
      Status s = im.FitNow(changed, now_ms, /*reassign_stored=*/true);
      if (!s.ok()) std::fprintf(stderr, "streamrec: first segment fit: %s\n", s.ToString().c_str());
    }
    if (!im.model) {
      for (CustomerState* s : changed) {
        s->set_cluster(-1);
        s->set_segment(kUnscoredSegment);
        s->set_model_version(0);
      }
      return;
    }
  } else if (im.RefitDue(now_ms)) {
    if (im.options.background_refit && im.store != nullptr) {
      im.StartBackgroundRefit(now_ms);
    } else {
      Status s = im.FitNow(changed, now_ms, /*reassign_stored=*/true);
      // A failing re-fit is retried at every batch while it is due: report the first few.
      if (!s.ok() && ++im.refit_failures <= 5) {
        std::fprintf(stderr, "streamrec: segment re-fit: %s%s\n", s.ToString().c_str(),
                     im.refit_failures == 5 ? " (further failures not shown)" : "");
      }
    }
  }

  const SegmentModelVersion& v = *im.model;
  const int d = v.spec.dim();
  const int64_t m = static_cast<int64_t>(changed.size());
  if (m == 0) return;

  // The rescore sweep's stored customers (none when a fit of this batch relabelled them all).
  std::vector<std::pair<std::string, CustomerState>> swept;
  if (!im.relabelled_stored) {
    Status s = im.CollectSweep(changed, &swept);
    if (!s.ok()) {
      std::fprintf(stderr, "streamrec: segment rescore sweep: %s\n", s.ToString().c_str());
      swept.clear();
    }
  }
  const int64_t r = static_cast<int64_t>(swept.size());
  const bool swept_move_centres = im.options.config.rescore_moves_centres;

  // Online step on the batch's customers, and on the swept ones when they move the centres.
  const int64_t stepped = m + (swept_move_centres ? r : 0);
  std::vector<float> x(static_cast<size_t>(m + r) * d);
  auto add_row = [&](int64_t i, const CustomerState& state) {
    float* row = x.data() + i * d;
    BuildRawVector(v.spec, state, now_ms, row);
    v.transform.Apply(row, row);
  };
  for (int64_t i = 0; i < m; ++i) add_row(i, *changed[i]);
  for (int64_t i = 0; i < r; ++i) add_row(m + i, swept[i].second);
  std::vector<int32_t> rows(m + r);
  im.online->Step(x.data(), stepped, rows.data());
  if (swept_move_centres) im.rescored_points += r;
  for (int64_t i = 0; i < m; ++i) {
    const int32_t old_cluster = changed[i]->cluster();
    const uint64_t old_version = changed[i]->model_version();
    im.Label(v, rows[i], changed[i]);
    im.CountMove(old_cluster, old_version, changed[i]->cluster(), now_ms);
  }
  // Swept customers follow the centres as they are after the step.
  if (r > 0) {
    if (!swept_move_centres) {
      AssignNearest(im.online->centres().data(), im.online->k(), x.data() + m * d, r, d,
                    rows.data() + m);
    }
    for (int64_t i = 0; i < r; ++i) {
      im.Relabel(v, rows[m + i], std::move(swept[i].first), &swept[i].second, now_ms);
    }
  }
  im.PruneTransitions(now_ms);
  im.online_dirty = true;
}

void KMeansSegmenter::TakeRelabels(std::vector<SegmentRelabel>* out) {
  out->clear();
  out->swap(impl_->relabels);
}

void KMeansSegmenter::AppendWrites(WriteSet* writes) {
  Impl& im = *impl_;
  for (auto& [key, value] : im.state_writes) {
    writes->Put(Column::kCustomers, std::move(key), std::move(value));
  }
  im.state_writes.clear();
  for (const auto& v : im.new_versions) {
    writes->Put(Column::kModel, ModelVersionKey(v->version), EncodeState(v->proto));
  }
  im.new_versions.clear();
  if (im.online_dirty && im.model) {
    writes->Put(Column::kModel, kCurrentModelKey, EncodeState(CurrentProto()));
  }
  im.online_dirty = false;
}

uint64_t KMeansSegmenter::model_version() const {
  auto m = impl_->Current();
  return m ? m->version : 0;
}

std::vector<SegmentInfo> KMeansSegmenter::Segments() const {
  auto m = impl_->Current();
  std::vector<SegmentInfo> out;
  if (!m) {
    out.push_back({-1, kUnscoredSegment, "not enough customers seen to fit a model yet"});
    return out;
  }
  std::vector<int> order(m->k);
  for (int j = 0; j < m->k; ++j) order[j] = j;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return m->ids[a] < m->ids[b]; });
  for (int j : order) out.push_back({m->ids[j], m->names[j], m->actions[j]});
  return out;
}

Status KMeansSegmenter::Reload() {
  if (impl_->store == nullptr) return Status::OK();
  return impl_->LoadFromStore();
}

std::shared_ptr<const SegmentModelVersion> KMeansSegmenter::model() const {
  return impl_->Current();
}

v1::SegmentModel KMeansSegmenter::CurrentProto() const {
  auto m = impl_->Current();
  if (!m) return {};
  v1::SegmentModel proto = m->proto;
  if (impl_->online) impl_->online->ToProto(&proto);
  impl_->TransitionsToProto(&proto);
  proto.set_rescore_cursor(impl_->rescore_cursor);
  proto.set_online_rescored_points(impl_->rescored_points);
  return proto;
}

bool KMeansSegmenter::UpdateModelIdle() {
  Impl& im = *impl_;
  if (!im.options.background_refit || im.store == nullptr) return false;
  const uint64_t before = model_version();
  im.PickUpBackgroundRefit();
  if (!im.refit_running.load()) {
    // A fit seen finished has handed over its result (the worker stores it before it clears
    // refit_running): pick it up too, so starting the next one cannot overwrite it. The next fit
    // starts in this same step, so whoever reads the stats between steps never sees "no fit
    // running" while one is due.
    im.PickUpBackgroundRefit();
    if (im.last_now_ms > 0 && im.RefitDue(im.last_now_ms)) im.StartBackgroundRefit(im.last_now_ms);
  }
  return model_version() != before;
}

void KMeansSegmenter::WaitForBackgroundRefit() {
  if (impl_->worker.joinable()) impl_->worker.join();
}

uint64_t KMeansSegmenter::refits() const { return impl_->refits.load(); }

SegmenterStats KMeansSegmenter::stats() const {
  const Impl& im = *impl_;
  SegmenterStats s;
  auto m = im.Current();
  s.model_version = m ? m->version : 0;
  s.refits = im.refits.load();
  s.refit_failures = im.refit_failures_total.load();
  s.last_refit_seconds = im.last_fit_seconds;
  s.last_refit_unix_ms = im.last_fit_unix_ms;
  if (m && m->proto.fit_points() > 0) {
    s.refit_objective = m->proto.objective() / static_cast<double>(m->proto.fit_points());
  }
  if (im.online) s.online_objective = im.online->smoothed_objective();
  s.refit_running = im.refit_running.load();
  s.refit_requested = im.refit_requested.load();
  return s;
}

bool KMeansSegmenter::RequestRefit() {
  if (!impl_->refitter.load()) return false;
  impl_->refit_requested.store(true);
  return impl_->Current() != nullptr;
}

void KMeansSegmenter::SetRefitter(bool refitter) { impl_->refitter.store(refitter); }

bool KMeansSegmenter::refitter() const { return impl_->refitter.load(); }

void KMeansSegmenter::SetSharedSamples(SharedFitSamples shared) {
  impl_->shared = std::move(shared);
}

void KMeansSegmenter::set_on_fitted(std::function<void(const v1::SegmentModel&)> on_fitted) {
  impl_->on_fitted = std::move(on_fitted);
}

Status KMeansSegmenter::OfferModel(const v1::SegmentModel& fitted) {
  Impl& im = *impl_;
  auto version = SegmentModelVersion::FromProto(fitted);
  if (!version.ok()) {
    return Status::InvalidArgument("segment model v" + std::to_string(fitted.version()) +
                                   " offered: " + version.status().message());
  }
  if ((*version)->spec.features != im.fit_options.spec.features) {
    std::string theirs, ours;
    for (const auto& f : (*version)->spec.Names()) theirs += (theirs.empty() ? "" : ",") + f;
    for (const auto& f : im.fit_options.spec.Names()) ours += (ours.empty() ? "" : ",") + f;
    return Status::InvalidArgument("segment model v" + std::to_string(fitted.version()) +
                                   " offered uses features [" + theirs + "], this instance's "
                                   "segments.features are [" + ours + "]");
  }
  auto online = MiniBatchKMeans::FromProto(im.online_params, fitted);
  if (!online.ok()) {
    return Status::InvalidArgument("segment model v" + std::to_string(fitted.version()) +
                                   " offered: " + online.status().message());
  }
  std::lock_guard<std::mutex> lock(im.mu);
  if (!im.offered || (*version)->version >= im.offered->version) {
    im.offered = std::move(version).value();
    im.offer_new = true;
  }
  return Status::OK();
}

bool KMeansSegmenter::AdoptOffered() { return impl_->AdoptOffered(); }

uint64_t KMeansSegmenter::adopted() const { return impl_->adopted.load(); }

StatusOr<SegmentFitReport> KMeansSegmenter::Refit(StateStore* store) {
  Impl& im = *impl_;
  WaitForBackgroundRefit();
  im.PickUpBackgroundRefit();
  const auto start = std::chrono::steady_clock::now();
  auto now = StoreNow(store, im.options.log_ids);
  if (!now.ok()) return now.status();
  SegmentFitInput input;
  input.now_ms = *now;
  std::vector<std::string> keys;
  STREAMREC_RETURN_IF_ERROR(ScanCustomers(store, im.options.log_ids, [&](std::string_view key,
                                                                        CustomerState& s) {
    input.Add(im.fit_options.spec, s);
    keys.emplace_back(key);
    return true;
  }));
  auto previous = im.Current();
  std::vector<float> previous_centres;
  if (previous && im.online) previous_centres = im.online->centres();
  std::vector<int32_t> rows;
  auto report = FitSegmentModel(im.fit_options, input, previous.get(), previous_centres,
                                previous ? previous->version + 1 : 1, &rows);
  if (!report.ok()) return report.status();
  im.Install(report->model, Impl::SecondsSince(start));
  const SegmentModelVersion& v = *report->model;

  // Outbox sequence numbers continue each partition's stored position.
  std::map<std::string, v1::SourcePosition> positions;
  {
    Status decode_status;
    STREAMREC_RETURN_IF_ERROR(
        store->Scan(Column::kPositions, "", [&](std::string_view key, std::string_view value) {
          v1::SourcePosition p;
          decode_status = DecodeState(value, &p);
          if (!decode_status.ok()) return false;
          positions.emplace(std::string(key), std::move(p));
          return true;
        }));
    STREAMREC_RETURN_IF_ERROR(decode_status);
  }
  std::map<uint32_t, uint64_t> next_seq;
  for (const auto& [key, p] : positions) {
    next_seq[p.partition()] = std::max(next_seq[p.partition()], p.outbox_seq());
  }

  // Reassign everyone, in chunks; changes only for real moves.
  WriteSet writes;
  auto put_positions = [&] {
    for (auto& [key, p] : positions) {
      p.set_outbox_seq(std::max(p.outbox_seq(), next_seq[p.partition()]));
      writes.Put(Column::kPositions, key, EncodeState(p));
    }
  };
  size_t index = 0;
  Status write_status;
  Status scan_status = ScanCustomers(store, im.options.log_ids, [&](std::string_view key,
                                                                   CustomerState& s) {
    if (index >= keys.size() || keys[index] != key) {
      write_status = Status::Aborted("customers changed during the re-fit");
      return true;
    }
    const int32_t old_cluster = s.cluster();
    const uint64_t old_version = s.model_version();
    const std::string old_segment = s.segment();
    im.Label(v, rows[index++], &s);
    im.CountMove(old_cluster, old_version, s.cluster(), input.now_ms);
    ++report->reassigned;
    if (s.cluster() != old_cluster || s.segment() != old_segment) {
      ++report->moved;
      uint32_t partition = 0;
      for (int b = 0; b < 4 && b < static_cast<int>(key.size()); ++b) {
        partition = (partition << 8) | static_cast<uint8_t>(key[b]);
      }
      v1::OutboxRecord record;
      record.set_topic_kind("segment-changes");
      record.set_key(s.customer_id());
      v1::SegmentChange* change = record.mutable_segment_change();
      change->set_customer_id(s.customer_id());
      change->set_from_cluster(old_cluster);
      change->set_from_segment(old_segment);
      change->set_to_cluster(s.cluster());
      change->set_to_segment(s.segment());
      change->set_model_version(v.version);
      change->set_event_time_ms(input.now_ms);
      writes.Put(Column::kOutbox, OutboxKey(partition, next_seq[partition]++),
                 EncodeState(record));
    }
    writes.Put(Column::kCustomers, std::string(key), EncodeState(s));
    if (writes.size() >= 20000 && write_status.ok()) {
      put_positions();  // outbox keys written are never reused, even if we stop here
      write_status = store->Write(writes);
      writes.Clear();
    }
    return true;
  });
  STREAMREC_RETURN_IF_ERROR(scan_status);
  STREAMREC_RETURN_IF_ERROR(write_status);
  im.PruneTransitions(input.now_ms);
  put_positions();
  AppendWrites(&writes);
  STREAMREC_RETURN_IF_ERROR(store->Write(writes));
  STREAMREC_RETURN_IF_ERROR(store->Flush());
  return report;
}

std::map<std::pair<int32_t, int32_t>, uint64_t> SumTransitions(const v1::SegmentModel& proto) {
  std::map<std::pair<int32_t, int32_t>, uint64_t> sum;
  for (const v1::TransitionDay& d : proto.transitions()) {
    for (const v1::TransitionCount& c : d.counts()) {
      sum[{c.from_cluster(), c.to_cluster()}] += c.count();
    }
  }
  return sum;
}

// ---- factory --------------------------------------------------------------------------------

StatusOr<std::unique_ptr<Segmenter>> NewSegmenter(const Config& config, StateStore* store,
                                                 bool background_refit) {
  if (config.segments.method == "rules") {
    return std::unique_ptr<Segmenter>(NewRfmRuleSegmenter(config.segments.champion_spend));
  }
  KMeansSegmenterOptions options;
  options.config = config.segments;
  options.background_refit = background_refit;
  options.log_ids = CustomerIdsInLogs::FromConfig(config.log);
  auto segmenter = KMeansSegmenter::Create(std::move(options), store);
  if (!segmenter.ok()) return segmenter.status();
  return std::unique_ptr<Segmenter>(std::move(segmenter).value());
}

}  // namespace streamrec
