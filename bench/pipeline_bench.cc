// Micro-benchmarks of the pipeline's per-event work and of the business rules of a list:
//   Decode/<format>        one purchase record decoded (streamrec/decoder.h): protobuf (the Kafka
//                          value), JSON, CSV. Time = ns/record; items_per_second = records/s.
//   ApplyEvent/<n>         one purchase applied to a customer's features (streamrec/features.h)
//                          holding n items (20: a typical subscriber; 64: the table's bound), the
//                          item already held, as most purchases are;
//   ApplyEvent_NewItemFullTable  the same with a new item on a full table (an entry evicted);
//   ApplyItemEvent         the same purchase applied to its item's global statistics;
//   FeatureUpdate/<n>      both, as the pipeline does per event;
//   EncodeState/<n>, DecodeState/<n>  the stored form of a customer with n items (EncodeState,
//                          DecodeState); counter state_bytes, and bytes_per_second;
//   Rules/<rules>          the business rules (blended_recommender.h). They are private to the
//                          blended recommender and run inside Recommender::Recommend, the
//                          smallest public entry point that applies them; so this benchmarks
//                          Recommend with one stand-in strategy that only proposes a fixed window
//                          of 60 catalogue items (no scoring): with every configurable rule on
//                          (all), with none, and with each alone. The difference to `none` is
//                          the rules' cost; `none` itself is the blend, the sort, the rules that
//                          always apply and the list's reasons.
// K-Means, ALS and the real strategies' list refresh are in kmeans_bench, als_bench and
// recommend_bench.
//
//   cmake --preset release && cmake --build build-release -j1 --target pipeline_bench
//   build-release/pipeline_bench
//   build-release/pipeline_bench --benchmark_filter=Decode
//
// Data (fixed seed): the telco generator's package catalogue (TelcoCatalog, 300 packages:
// service types, channel lists, app-only variants), subscribers with an MSISDN like the
// generator's, purchases an hour apart on the channels the package is sold on.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "streamrec/blended_recommender.h"
#include "streamrec/catalog.h"
#include "streamrec/decoder.h"
#include "streamrec/features.h"
#include "streamrec/generator.h"
#include "streamrec/recommender.h"
#include "streamrec/strategy.h"
#include "streamrec/v1/events.pb.h"

namespace streamrec {
namespace {

constexpr uint64_t kSeed = 20261201;
constexpr int64_t kHourMs = 3600000;
constexpr int64_t kStartMs = 1767225600000;  // 2026-01-01T00:00:00Z

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "pipeline_bench: %s\n", what.c_str());
  std::exit(1);
}

// ---- decoders ------------------------------------------------------------------------------

// One purchase as `streamrec generate` writes it, in each input format.
constexpr std::string_view kCsvHeader =
    "customer_id,item_id,timestamp,quantity,unit_price,amount,channel,discount,event_id";
constexpr std::string_view kCsvRecord =
    "6281101234567,SOC-5GB-30D,2026-03-14 09:26:53,1,35000.00,31500.00,app,3500.00,e0000123456";
constexpr std::string_view kJsonRecord =
    R"({"customer_id":"6281101234567","item_id":"SOC-5GB-30D","timestamp":"2026-03-14T09:26:53Z",)"
    R"("quantity":1,"unit_price":35000.00,"amount":31500.00,"channel":"app","discount":3500.00,)"
    R"("event_id":"e0000123456"})";

std::string ProtobufRecord() {
  v1::PurchaseEvent m;
  m.set_event_id("e0000123456");
  m.set_customer_id("6281101234567");
  m.set_item_id("SOC-5GB-30D");
  m.set_event_time_ms(1773480413000);  // 2026-03-14T09:26:53Z
  m.set_quantity(1);
  m.set_unit_price(35000);
  m.set_amount(31500);
  m.set_discount(3500);
  m.set_channel("app");
  return m.SerializeAsString();
}

void BM_Decode(benchmark::State& state, const char* format) {
  const DecoderOptions options;
  std::unique_ptr<Decoder> decoder;
  std::string record;
  if (std::string_view(format) == "protobuf") {
    decoder = NewProtobufDecoder(options);
    record = ProtobufRecord();
  } else if (std::string_view(format) == "json") {
    decoder = NewJsonDecoder(options);
    record = kJsonRecord;
  } else {
    auto csv = NewCsvDecoder(options, kCsvHeader);
    if (!csv.ok()) Die(csv.status().ToString());
    decoder = std::move(csv).value();
    record = kCsvRecord;
  }
  PurchaseEvent event;
  if (Status s = decoder->Decode(record, &event); !s.ok()) Die(s.ToString());
  for (auto _ : state) {
    Status s = decoder->Decode(record, &event);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(event);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(record.size()));
  state.counters["record_bytes"] = static_cast<double>(record.size());
}
BENCHMARK_CAPTURE(BM_Decode, protobuf, "protobuf");
BENCHMARK_CAPTURE(BM_Decode, json, "json");
BENCHMARK_CAPTURE(BM_Decode, csv, "csv");

// ---- features ------------------------------------------------------------------------------

const Catalog& TheCatalog() {
  static const Catalog catalog = [] {
    TelcoGeneratorOptions options;
    options.catalog_size = 300;
    return TelcoCatalog(options);
  }();
  return catalog;
}

// A purchase of catalogue item `item` by `customer` at `time_ms`, on one of the channels the
// package is sold on, at its list price.
PurchaseEvent Purchase(const std::string& customer, size_t item, int64_t time_ms,
                       std::mt19937_64* rng) {
  const CatalogItem& c = TheCatalog().items()[item];
  PurchaseEvent e;
  e.customer_id = customer;
  e.item_id = c.item_id;
  e.event_time_ms = time_ms;
  e.unit_price = c.price;
  e.channel = c.channels.empty() ? "ussd" : c.channels[(*rng)() % c.channels.size()];
  e.currency = "IDR";
  return e;
}

// A subscriber who bought `items` distinct packages (catalogue positions from `first`, spread
// over the catalogue), each 1..4 times, an hour apart, starting at kStartMs; *now_ms is the time
// of the last purchase.
CustomerState Customer(const std::string& id, int items, size_t first, std::mt19937_64* rng,
                       int64_t* now_ms, std::vector<size_t>* held = nullptr) {
  const FeatureOptions features;
  const size_t n = TheCatalog().size();
  CustomerState state = NewCustomerState(id);
  int64_t t = kStartMs;
  for (int k = 0; k < items; ++k) {
    const size_t item = (first + static_cast<size_t>(k) * 7) % n;  // 7 is coprime with 300
    if (held != nullptr) held->push_back(item);
    for (int times = 1 + static_cast<int>((*rng)() % 4); times > 0; --times) {
      const PurchaseEvent e = Purchase(id, item, t += kHourMs, rng);
      ApplyEvent(features, e, &TheCatalog().items()[item], &state);
    }
  }
  *now_ms = t;
  return state;
}

void CheckItems(const CustomerState& s, int items) {
  if (s.items_size() != items) {
    Die("the customer holds " + std::to_string(s.items_size()) + " items, not " +
        std::to_string(items));
  }
}

// A repeat purchase of an item the customer holds (cycling through them): the table keeps
// its size.
void BM_ApplyEvent(benchmark::State& state) {
  const int items = static_cast<int>(state.range(0));
  std::mt19937_64 rng(kSeed);
  int64_t t = 0;
  std::vector<size_t> held;
  CustomerState customer = Customer("6281101234567", items, 0, &rng, &t, &held);
  std::vector<PurchaseEvent> next;
  for (size_t item : held) next.push_back(Purchase(customer.customer_id(), item, 0, &rng));
  const FeatureOptions features;
  size_t k = 0;
  for (auto _ : state) {
    PurchaseEvent& e = next[k];
    e.event_time_ms = t += kHourMs;
    ApplyEvent(features, e, &TheCatalog().items()[held[k]], &customer);
    if (++k == next.size()) k = 0;
  }
  CheckItems(customer, items);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ApplyEvent)->Arg(20)->Arg(64);

// Every purchase is of an item the full table (64, FeatureOptions' bound) does not hold: the
// least bought entry is evicted to make room.
void BM_ApplyEvent_NewItemFullTable(benchmark::State& state) {
  const FeatureOptions features;
  const int bound = features.max_items_per_customer;
  std::mt19937_64 rng(kSeed);
  int64_t t = 0;
  CustomerState customer = Customer("6281101234567", bound, 0, &rng, &t);
  // The next purchases cycle through 2x the bound of other items, each bought once: by the time
  // an item comes round again it has been evicted.
  std::vector<size_t> items;
  std::vector<PurchaseEvent> next;
  for (int k = 0; k < 2 * bound; ++k) {
    items.push_back((static_cast<size_t>(bound + k) * 7) % TheCatalog().size());
    next.push_back(Purchase(customer.customer_id(), items.back(), 0, &rng));
  }
  const uint64_t evicted_before = customer.items_evicted();
  size_t k = 0;
  for (auto _ : state) {
    PurchaseEvent& e = next[k];
    e.event_time_ms = t += kHourMs;
    ApplyEvent(features, e, &TheCatalog().items()[items[k]], &customer);
    if (++k == next.size()) k = 0;
  }
  CheckItems(customer, bound);
  state.SetItemsProcessed(state.iterations());
  state.counters["evicted_share"] =
      static_cast<double>(customer.items_evicted() - evicted_before) / state.iterations();
}
BENCHMARK(BM_ApplyEvent_NewItemFullTable);

// The item's statistics after a year of purchases by ~1,000 customers.
ItemStats PopularItem(const PurchaseEvent& e, int64_t* t) {
  const FeatureOptions features;
  ItemStats stats;
  stats.set_item_id(e.item_id);
  PurchaseEvent past = e;
  for (int k = 0; k < 2000; ++k) {
    past.event_time_ms = *t += 4 * kHourMs;
    ApplyItemEvent(features, past, k % 2 == 0, &stats);
  }
  return stats;
}

void BM_ApplyItemEvent(benchmark::State& state) {
  std::mt19937_64 rng(kSeed);
  PurchaseEvent e = Purchase("6281101234567", 42, 0, &rng);
  int64_t t = kStartMs;
  ItemStats stats = PopularItem(e, &t);
  const FeatureOptions features;
  uint64_t k = 0;
  for (auto _ : state) {
    e.event_time_ms = t += kHourMs;
    ApplyItemEvent(features, e, (++k & 3) == 0, &stats);  // a quarter are new buyers
  }
  benchmark::DoNotOptimize(stats);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ApplyItemEvent);

// Per event, as the pipeline does it: the customer's features, then its item's statistics.
void BM_FeatureUpdate(benchmark::State& state) {
  const int items = static_cast<int>(state.range(0));
  std::mt19937_64 rng(kSeed);
  int64_t t = 0;
  std::vector<size_t> held;
  CustomerState customer = Customer("6281101234567", items, 0, &rng, &t, &held);
  std::vector<PurchaseEvent> next;
  std::vector<ItemStats> stats;
  int64_t history = kStartMs - 365 * 24 * kHourMs;
  for (size_t item : held) {
    next.push_back(Purchase(customer.customer_id(), item, 0, &rng));
    int64_t h = history;
    stats.push_back(PopularItem(next.back(), &h));
  }
  const FeatureOptions features;
  size_t k = 0;
  for (auto _ : state) {
    PurchaseEvent& e = next[k];
    e.event_time_ms = t += kHourMs;
    const bool new_buyer = FindItem(customer, e.item_id) == nullptr;
    ApplyEvent(features, e, &TheCatalog().items()[held[k]], &customer);
    ApplyItemEvent(features, e, new_buyer, &stats[k]);
    if (++k == next.size()) k = 0;
  }
  CheckItems(customer, items);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FeatureUpdate)->Arg(20)->Arg(64);

// ---- stored state --------------------------------------------------------------------------

CustomerState StoredCustomer(int items) {
  std::mt19937_64 rng(kSeed);
  int64_t t = 0;
  CustomerState s = Customer("6281101234567", items, 0, &rng, &t);
  CheckItems(s, items);
  // What the pipeline adds before it stores a state: a segment and the last list's bookkeeping.
  s.set_cluster(2);
  s.set_segment("Loyal");
  s.set_model_version(7);
  s.set_list_version(12);
  s.set_list_hash(0x9e3779b97f4a7c15ULL);
  s.set_list_as_of_ms(t);
  s.set_list_checked_ms(t);
  s.set_list_model_version(7);
  for (int k = 0; k < 10; ++k) s.add_list_item_ids(TheCatalog().items()[(k * 11) % 300].item_id);
  return s;
}

void BM_EncodeState(benchmark::State& state) {
  const CustomerState customer = StoredCustomer(static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    std::string encoded = EncodeState(customer);
    bytes = encoded.size();
    benchmark::DoNotOptimize(encoded);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
  state.counters["state_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_EncodeState)->Arg(20)->Arg(64);

void BM_DecodeState(benchmark::State& state) {
  const std::string encoded = EncodeState(StoredCustomer(static_cast<int>(state.range(0))));
  CustomerState decoded;
  for (auto _ : state) {
    Status s = DecodeState(encoded, &decoded);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(decoded);
  }
  if (Status s = DecodeState(encoded, &decoded); !s.ok()) Die(s.ToString());
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(encoded.size()));
  state.counters["state_bytes"] = static_cast<double>(encoded.size());
}
BENCHMARK(BM_DecodeState)->Arg(20)->Arg(64);

// ---- business rules ------------------------------------------------------------------------

// The stand-in strategy: proposes `limit` consecutive items of the index (by dense id), from a
// place that depends on the customer, so every list sees owned items, app-only packages and
// prices across the catalogue. It carries the name of a built-in strategy because the blend's
// weights are keyed by those names.
class FixedWindowStrategy final : public Strategy {
 public:
  const char* name() const override { return "popularity"; }
  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    const size_t n = env.index->item_count();
    const size_t first = std::hash<std::string>()(customer.state->customer_id()) % n;
    for (size_t k = 0; k < limit && k < n; ++k) {
      Candidate c;
      c.item = static_cast<uint32_t>((first + k) % n);
      c.score = static_cast<double>(limit - k);
      out->push_back(std::move(c));
    }
  }
  std::string Explain(const StrategyEnv&, const CustomerView&,
                      const Candidate& candidate) const override {
    return "popular now: rank " + std::to_string(static_cast<int>(candidate.score));
  }
};

struct RulesWorld {
  std::vector<CustomerState> customers;
  ItemStatsTable stats;
  int64_t now_ms = 0;
};

// 2,000 subscribers with 20 packages each.
const RulesWorld& TheRulesWorld() {
  static const RulesWorld w = [] {
    RulesWorld w;
    std::mt19937_64 rng(kSeed);
    const FeatureOptions features;
    for (int u = 0; u < 2000; ++u) {
      char id[16];
      std::snprintf(id, sizeof id, "628110%07d", u);
      int64_t t = 0;
      std::vector<size_t> held;
      CustomerState s = Customer(id, 20, rng() % TheCatalog().size(), &rng, &t, &held);
      s.set_segment("Loyal");
      s.set_cluster(1);
      for (size_t item : held) {
        auto [it, inserted] = w.stats.try_emplace(TheCatalog().items()[item].item_id);
        if (inserted) it->second.set_item_id(it->first);
        ApplyItemEvent(features, Purchase(id, item, t, &rng), /*new_buyer=*/true, &it->second);
      }
      w.now_ms = std::max(w.now_ms, t);
      w.customers.push_back(std::move(s));
    }
    return w;
  }();
  return w;
}

// The configurable rules, as bits of a rule set. Not configurable, always applied: items not
// recommendable or outside their offer window are dropped.
enum Rule : unsigned {
  kExcludeOwned = 1,        // recommend.exclude_owned (re-offers of due items exempt)
  kChannelEligibility = 2,  // recommend.channel_eligibility
  kPriceCap = 4,            // recommend.price_cap_ratio 2
  kExcludeItems = 8,        // recommend.exclude_items: 10 ids
  kMaxPerCategory = 16,     // recommend.max_per_category 3
  kAllRules = 31,
};

std::unique_ptr<Recommender> RulesRecommender(unsigned rules) {
  RecommenderOptions options;
  options.weights = "popularity=1";
  options.segment_weights = "";
  options.exclude_owned = (rules & kExcludeOwned) != 0;
  options.channel_eligibility = (rules & kChannelEligibility) != 0;
  options.price_cap_ratio = (rules & kPriceCap) != 0 ? 2.0 : 0;
  options.max_per_category = (rules & kMaxPerCategory) != 0 ? 3 : 0;
  if ((rules & kExcludeItems) != 0) {
    for (size_t k = 0; k < 10; ++k) {
      if (k > 0) options.exclude_items += ",";
      options.exclude_items += TheCatalog().items()[k * 29].item_id;
    }
  }
  std::vector<std::unique_ptr<Strategy>> strategies;
  strategies.push_back(std::make_unique<FixedWindowStrategy>());
  auto r = NewBlendedRecommender(options, &TheCatalog(), std::move(strategies));
  if (!r.ok()) Die(r.status().ToString());
  std::unique_ptr<Recommender> rec = std::move(r).value();
  const RulesWorld& w = TheRulesWorld();
  for (const CustomerState& s : w.customers) rec->ObserveChange(nullptr, s);
  rec->BeginBatch(w.stats, w.now_ms);
  return rec;
}

void BM_Rules(benchmark::State& state, unsigned rules) {
  const RulesWorld& w = TheRulesWorld();
  std::unique_ptr<Recommender> rec = RulesRecommender(rules);
  std::vector<Recommendation> out;
  size_t next = 0;
  uint64_t listed = 0;
  for (auto _ : state) {
    rec->Recommend(w.customers[next], &out);
    listed += out.size();
    if (++next == w.customers.size()) next = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["list_len"] =
      state.iterations() > 0 ? static_cast<double>(listed) / state.iterations() : 0;
}
BENCHMARK_CAPTURE(BM_Rules, all, kAllRules)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Rules, none, 0u)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Rules, exclude_owned, kExcludeOwned)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Rules, channel_eligibility, kChannelEligibility)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Rules, price_cap, kPriceCap)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Rules, exclude_items, kExcludeItems)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Rules, max_per_category, kMaxPerCategory)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace streamrec

BENCHMARK_MAIN();
