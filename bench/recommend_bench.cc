// Benchmarks of one list refresh (streamrec/blended_recommender.h) with a 5,000-item catalogue —
// the target: refreshing one changed customer's list, p99 <= 1 ms — for the blended
// engine (default RecommenderOptions: every strategy, per-segment weights, the rules) and for
// each strategy alone (weights "<name>=1", no per-segment overrides), plus the index update of
// one customer's change (ObserveChange).
//
//   cmake --preset release && cmake --build build-release -j2 --target recommend_bench
//   build-release/recommend_bench --benchmark_min_time=2     (all; the world and ALS fit ~1 min)
//   build-release/recommend_bench --benchmark_filter=Blended
//
// Data (fixed seed): 5,000 items in 40 categories (service_type), log-normal prices; 10 of the
// categories are quota ladders (500 MB .. 64 GB, price x1.35 per tier, recurring, 30 days) so
// the upsell strategy has work; ~1% of items are not recommendable, ~3% app-only, ~2% out of
// their offer window (the rules drop them). 50,000 customers each make 5..60 purchases (uniform)
// over a year, in baskets of 1..4 lines: 75% from one of 2 favourite categories (Zipf(1) within
// the category), 25% from the global Zipf(1) popularity, so co-occurrence is structured. States
// are built with ApplyEvent / ApplyItemEvent; segments by total-spend quantile (top 20%
// "Champions", next 30% "Loyal", next 30% "At Risk", bottom 20% "New"). Every customer is fed to
// ObserveChange, ALS is fitted on all states (RefitModel, store null), then BeginBatch at the
// last event time.
//
// Each refresh benchmark calls Recommend for customers cycling through a fixed shuffled list and
// also times every call with steady_clock: the counters p50_us, p99_us and max_us are over the
// calls of the final run (not the per-iteration mean the time columns show); p99_cpu_us is the
// p99 of each call's thread CPU time, which leaves out preemption by other processes.
#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "streamrec/blended_recommender.h"
#include "streamrec/catalog.h"
#include "streamrec/features.h"
#include "streamrec/recommender.h"
#include "streamrec/state_store.h"
#include "streamrec/strategy.h"

namespace streamrec {
namespace {

constexpr uint64_t kSeed = 20261130;
constexpr int kItems = 5000;
constexpr int kCategories = 40;
constexpr int kLadderEvery = 4;  // categories 0, 4, 8, ... are quota ladders
constexpr int kCustomers = 50000;
constexpr int64_t kDayMs = 86400000;
constexpr int64_t kStartMs = 1735689600000;  // 2025-01-01T00:00:00Z
constexpr int64_t kSpanMs = 365 * kDayMs;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "recommend_bench: %s\n", what.c_str());
  std::exit(1);
}

std::vector<double> ZipfCdf(size_t n) {
  std::vector<double> cdf(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) cdf[i] = (sum += 1.0 / static_cast<double>(i + 1));
  for (double& c : cdf) c /= sum;
  return cdf;
}

size_t Draw(const std::vector<double>& cdf, double u) {
  return std::min(static_cast<size_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin()),
                  cdf.size() - 1);
}

std::string ItemId(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "sku%05d", i);
  return buf;
}

struct World {
  Catalog catalog;
  std::vector<CustomerState> states;
  ItemStatsTable items;
  int64_t now_ms = 0;
  std::vector<uint32_t> order;  // customers in a fixed shuffled order
  std::vector<std::string> item_ids;
};

World BuildWorld() {
  World w;
  std::mt19937_64 rng(kSeed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::lognormal_distribution<double> base_price(std::log(12.0), 0.8);
  std::uniform_int_distribution<int> category_of(0, kCategories - 1);

  // Catalogue. Item i has global popularity rank i (Zipf weight 1 / (i + 1)).
  std::vector<std::vector<int>> by_category(kCategories);
  std::vector<int> category(kItems);
  for (int i = 0; i < kItems; ++i) {
    category[i] = category_of(rng);
    by_category[category[i]].push_back(i);
  }
  std::vector<double> category_price(kCategories);
  for (double& p : category_price) p = base_price(rng);
  for (int i = 0; i < kItems; ++i) {
    const int c = category[i];
    CatalogItem item;
    item.item_id = ItemId(i);
    w.item_ids.push_back(item.item_id);
    char name[32];
    std::snprintf(name, sizeof name, "cat%02d", c);
    item.service_type = name;
    if (c % kLadderEvery == 0) {
      // Quota ladder: tier by position in the category (8 tiers), recurring monthly packages.
      const size_t pos = static_cast<size_t>(
          std::find(by_category[c].begin(), by_category[c].end(), i) - by_category[c].begin());
      const int tier = static_cast<int>(pos % 8);
      item.quota_mb = 500.0 * (1 << tier);
      item.price = std::round(category_price[c] * std::pow(1.35, tier) * 100) / 100;
      item.charging = Charging::kRecurring;
      item.validity_days = 30;
    } else {
      item.price = std::round(category_price[c] * std::exp(0.5 * (unit(rng) - 0.5)) * 100) / 100;
      item.charging = Charging::kOneTime;
    }
    const double r = unit(rng);
    if (r < 0.01) {
      item.recommendable = false;
    } else if (r < 0.04) {
      item.channels = {"app"};
    } else if (r < 0.06) {
      item.active_to_ms = kStartMs + kSpanMs / 2;  // offer window closed half a year ago
    }
    w.catalog.Add(std::move(item));
  }

  // Purchases.
  const std::vector<double> global_cdf = ZipfCdf(kItems);
  std::vector<std::vector<double>> category_cdf(kCategories);
  for (int c = 0; c < kCategories; ++c) category_cdf[c] = ZipfCdf(by_category[c].size());
  const std::vector<std::string> channels = {"web", "app", "store"};
  std::uniform_int_distribution<int> purchases_of(5, 60);
  std::uniform_int_distribution<int> basket_lines(1, 4);
  std::uniform_int_distribution<int> channel_of(0, 2);
  std::uniform_int_distribution<int> quantity_of(1, 3);
  const FeatureOptions features;
  w.now_ms = kStartMs + kSpanMs;
  w.states.reserve(kCustomers);
  for (int u = 0; u < kCustomers; ++u) {
    char id[16];
    std::snprintf(id, sizeof id, "c%06d", u);
    CustomerState state = NewCustomerState(id);
    const int favourite[2] = {category_of(rng), category_of(rng)};
    const std::string& main_channel = channels[channel_of(rng)];
    const int n = purchases_of(rng);
    // Basket times: uniform over [first, now], sorted; the customer starts somewhere in the year.
    const int64_t first = kStartMs + static_cast<int64_t>(unit(rng) * 0.9 * kSpanMs);
    std::vector<int64_t> times;
    for (int k = 0; k < n;) {
      const int lines = std::min(basket_lines(rng), n - k);
      const int64_t t = first + static_cast<int64_t>(unit(rng) * (w.now_ms - first));
      for (int l = 0; l < lines; ++l) times.push_back(t);
      k += lines;
    }
    std::sort(times.begin(), times.end());
    for (int k = 0; k < n; ++k) {
      int item;
      if (unit(rng) < 0.75) {
        const int c = favourite[unit(rng) < 0.6 ? 0 : 1];
        item = by_category[c][Draw(category_cdf[c], unit(rng))];
      } else {
        item = static_cast<int>(Draw(global_cdf, unit(rng)));
      }
      PurchaseEvent e;
      e.customer_id = id;
      e.item_id = w.item_ids[item];
      e.event_time_ms = times[k];
      e.quantity = quantity_of(rng);
      const CatalogItem* ci = w.catalog.Find(e.item_id);
      e.unit_price = ci->price;
      e.channel = unit(rng) < 0.85 ? main_channel : channels[channel_of(rng)];
      e.currency = "EUR";
      const bool new_buyer = FindItem(state, e.item_id) == nullptr;
      ApplyEvent(features, e, ci, &state);
      auto [it, inserted] = w.items.try_emplace(e.item_id);
      if (inserted) it->second.set_item_id(e.item_id);
      ApplyItemEvent(features, e, new_buyer, &it->second);
    }
    w.states.push_back(std::move(state));
  }

  // Segments by total-spend quantile.
  std::vector<uint32_t> by_spend(kCustomers);
  for (uint32_t u = 0; u < kCustomers; ++u) by_spend[u] = u;
  std::sort(by_spend.begin(), by_spend.end(), [&](uint32_t a, uint32_t b) {
    if (w.states[a].total_spend() != w.states[b].total_spend()) {
      return w.states[a].total_spend() > w.states[b].total_spend();
    }
    return a < b;
  });
  for (size_t r = 0; r < by_spend.size(); ++r) {
    const double q = static_cast<double>(r) / kCustomers;
    CustomerState& s = w.states[by_spend[r]];
    const int cluster = q < 0.2 ? 0 : q < 0.5 ? 1 : q < 0.8 ? 2 : 3;
    static const char* kNames[] = {"Champions", "Loyal", "At Risk", "New"};
    s.set_cluster(cluster);
    s.set_segment(kNames[cluster]);
    s.set_model_version(1);
  }

  w.order.resize(kCustomers);
  for (uint32_t u = 0; u < kCustomers; ++u) w.order[u] = u;
  std::shuffle(w.order.begin(), w.order.end(), std::mt19937_64(kSeed + 1));
  return w;
}

const World& TheWorld() {
  static const World w = BuildWorld();
  return w;
}

// The stored ALS model (fitted once by the blended recommender, loaded by the "als" one).
StateStore* ModelStore() {
  static const std::unique_ptr<StateStore> store = NewMemStateStore();
  return store.get();
}

std::unique_ptr<Recommender> Build(const RecommenderOptions& options,
                                   std::vector<std::unique_ptr<Strategy>> strategies,
                                   bool all_strategies) {
  const World& w = TheWorld();
  auto r = all_strategies ? NewBlendedRecommender(options, &w.catalog)
                          : NewBlendedRecommender(options, &w.catalog, std::move(strategies));
  if (!r.ok()) Die(r.status().ToString());
  std::unique_ptr<Recommender> rec = std::move(r).value();
  for (const CustomerState& s : w.states) rec->ObserveChange(nullptr, s);
  return rec;
}

// The blended engine with `options`, ALS fitted on every customer.
std::unique_ptr<Recommender> MakeBlended(const RecommenderOptions& options) {
  const World& w = TheWorld();
  std::unique_ptr<Recommender> r = Build(options, {}, true);
  WriteSet writes;
  Status s = r->RefitModel(nullptr, w.states, &writes);
  if (!s.ok()) Die("RefitModel: " + s.ToString());
  if (writes.empty()) Die("RefitModel wrote no model");
  s = ModelStore()->Write(writes);
  if (!s.ok()) Die("model write: " + s.ToString());
  r->BeginBatch(w.items, w.now_ms);
  return r;
}

// The blended engine with default options.
Recommender* Blended() {
  static const std::unique_ptr<Recommender> rec = MakeBlended(RecommenderOptions{});
  return rec.get();
}

// The same without basket coverage (recommend.basket_coverage 0): what coverage costs.
Recommender* BlendedWithoutCoverage() {
  static const std::unique_ptr<Recommender> rec = [] {
    RecommenderOptions options;
    options.basket_coverage = 0;
    return MakeBlended(options);
  }();
  return rec.get();
}

// One strategy alone ("<name>=1" for every segment). One is kept at a time (each holds its own
// index of the 50,000 customers).
Recommender* Single(const std::string& name) {
  static std::string current;
  static std::unique_ptr<Recommender> rec;
  if (rec != nullptr && current == name) return rec.get();
  rec.reset();
  if (name == "als") Blended();  // the model to load
  const World& w = TheWorld();
  RecommenderOptions options;
  options.weights = name + "=1";
  options.segment_weights = "";
  auto strategy = NewStrategyByName(name, options, &w.catalog);
  if (!strategy.ok()) Die(strategy.status().ToString());
  std::vector<std::unique_ptr<Strategy>> strategies;
  strategies.push_back(std::move(strategy).value());
  rec = Build(options, std::move(strategies), false);
  if (name == "als") {
    Status s = rec->LoadModel(ModelStore());
    if (!s.ok()) Die("LoadModel: " + s.ToString());
  }
  rec->BeginBatch(w.items, w.now_ms);
  current = name;
  return rec.get();
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(k, 1, v.size()) - 1];
}

// This thread's CPU time, microseconds: a call's CPU time leaves out the time the scheduler gave
// to other processes (the machine is shared), which the wall-clock latencies include.
double ThreadCpuUs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

void PublishLatencies(benchmark::State& state, const std::vector<double>& us,
                      const std::vector<double>& cpu_us) {
  state.counters["p50_us"] = Percentile(us, 0.50);
  state.counters["p99_us"] = Percentile(us, 0.99);
  state.counters["max_us"] = us.empty() ? 0 : *std::max_element(us.begin(), us.end());
  state.counters["p99_cpu_us"] = Percentile(cpu_us, 0.99);
  state.counters["calls"] = static_cast<double>(us.size());
}

void RunRefresh(benchmark::State& state, Recommender* rec) {
  const World& w = TheWorld();
  std::vector<Recommendation> out;
  std::vector<double> us, cpu_us;
  us.reserve(1 << 16);
  cpu_us.reserve(1 << 16);
  size_t next = 0;
  uint64_t listed = 0;
  for (auto _ : state) {
    const CustomerState& customer = w.states[w.order[next]];
    if (++next == w.order.size()) next = 0;
    const double c0 = ThreadCpuUs();
    const auto t0 = std::chrono::steady_clock::now();
    rec->Recommend(customer, &out);
    const auto t1 = std::chrono::steady_clock::now();
    const double c1 = ThreadCpuUs();
    benchmark::DoNotOptimize(out.data());
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    cpu_us.push_back(c1 - c0);
    listed += out.size();
  }
  PublishLatencies(state, us, cpu_us);
  state.counters["list_len"] =
      state.iterations() > 0 ? static_cast<double>(listed) / state.iterations() : 0;
}

void BM_RefreshList_Blended(benchmark::State& state) { RunRefresh(state, Blended()); }
BENCHMARK(BM_RefreshList_Blended)->Unit(benchmark::kMicrosecond);
void BM_RefreshList_BlendedWithoutCoverage(benchmark::State& state) {
  RunRefresh(state, BlendedWithoutCoverage());
}
BENCHMARK(BM_RefreshList_BlendedWithoutCoverage)->Unit(benchmark::kMicrosecond);

void BM_RefreshList_Strategy(benchmark::State& state, const char* name) {
  RunRefresh(state, Single(name));
}
BENCHMARK_CAPTURE(BM_RefreshList_Strategy, cooccurrence, "cooccurrence")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_RefreshList_Strategy, similar, "similar")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_RefreshList_Strategy, als, "als")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_RefreshList_Strategy, popularity, "popularity")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_RefreshList_Strategy, upsell, "upsell")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_RefreshList_Strategy, reoffer, "reoffer")->Unit(benchmark::kMicrosecond);

// One customer's change as the index sees it: alternately adds one item the customer does not
// hold (a new purchase) and removes it again, so the index is the same after every pair of calls.
void BM_ObserveChange(benchmark::State& state) {
  const World& w = TheWorld();
  Recommender* rec = Blended();
  // Per customer (first 1,000 of the shuffled order): the state before and after buying one
  // item not yet held (a mid-popularity item of a random category).
  struct Change {
    CustomerState before, after;
  };
  std::vector<Change> changes;
  std::mt19937_64 rng(kSeed + 2);
  std::uniform_int_distribution<int> item_of(100, kItems - 1);
  const FeatureOptions features;
  for (size_t k = 0; k < 1000; ++k) {
    Change c;
    c.before = w.states[w.order[k]];
    c.after = c.before;
    std::string item;
    do item = w.item_ids[item_of(rng)]; while (FindItem(c.before, item) != nullptr);
    PurchaseEvent e;
    e.customer_id = c.before.customer_id();
    e.item_id = item;
    e.event_time_ms = w.now_ms;
    e.unit_price = w.catalog.Find(item)->price;
    e.channel = "web";
    ApplyEvent(features, e, w.catalog.Find(item), &c.after);
    changes.push_back(std::move(c));
  }
  std::vector<double> us, cpu_us;
  us.reserve(1 << 16);
  cpu_us.reserve(1 << 16);
  size_t next = 0;
  bool added = false;
  for (auto _ : state) {
    const Change& c = changes[next];
    const double c0 = ThreadCpuUs();
    const auto t0 = std::chrono::steady_clock::now();
    if (!added) {
      rec->ObserveChange(&c.before, c.after);
    } else {
      rec->ObserveChange(&c.after, c.before);
    }
    const auto t1 = std::chrono::steady_clock::now();
    const double c1 = ThreadCpuUs();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    cpu_us.push_back(c1 - c0);
    if (added && ++next == changes.size()) next = 0;
    added = !added;
  }
  if (added) rec->ObserveChange(&changes[next].after, changes[next].before);  // restore
  PublishLatencies(state, us, cpu_us);
}
BENCHMARK(BM_ObserveChange)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace streamrec

BENCHMARK_MAIN();
