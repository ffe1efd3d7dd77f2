// Recommendation strategies: each a small class behind one interface. A strategy proposes scored
// candidate items for one customer and explains, in a sentence with numbers, why an item it
// proposed is there. The blended recommender (blended_recommender.h) weighs the strategies per
// segment, applies the business rules and keeps the best items.
//
// Strategies read the customer's own state, the global item statistics, the catalogue and the
// RecommendIndex (co-occurrence, exemplar panel); they keep no per-customer memory, so a list
// depends only on the stored state — what makes lists reproducible after a restart.
#ifndef STREAMREC_STRATEGY_H_
#define STREAMREC_STRATEGY_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "streamrec/catalog.h"
#include "streamrec/features.h"
#include "streamrec/recommend_index.h"

namespace streamrec {

class AlsModel;  // streamrec/als.h

// Global item statistics by item id (the "items" column family, held in memory).
using ItemStatsTable = std::unordered_map<std::string, ItemStats>;

// What every strategy sees in a micro-batch. Pointers are not owned and stay valid for the batch.
struct StrategyEnv {
  const RecommendIndex* index = nullptr;
  const ItemStatsTable* stats = nullptr;
  const Catalog* catalog = nullptr;  // may be null
  int64_t now_ms = 0;                // event time of the batch (its watermark)
  // Owned items will not pass the rules (recommend.exclude_owned): strategies other than
  // re-offer then spend their candidate budget on items the customer does not hold.
  bool skip_owned = false;
  const AlsModel* als = nullptr;     // the current ALS model; null = none fitted yet
  // The catalogue entry of every item by dense id (nullptr: not in the catalogue), built once
  // per batch (IndexCatalog) so that per-candidate lookups do not hash item ids. May be empty
  // (then CatalogItemOf looks the id up).
  std::span<const CatalogItem* const> catalog_items;
  // The catalogue entry of a dense item id; nullptr when there is no catalogue or the item is
  // not in it.
  const CatalogItem* CatalogItemOf(uint32_t item) const;
  // The statistics of every item by dense id (nullptr: none), built once per batch (IndexStats)
  // for the strategies that read them per item. May be empty (then StatsOf looks the id up).
  std::span<const ItemStats* const> item_stats;
  // The statistics of a dense item id; nullptr when there are none.
  const ItemStats* StatsOf(uint32_t item) const;
};

// One customer, prepared once per list.
struct CustomerView {
  const CustomerState* state = nullptr;
  int64_t now_ms = 0;
  // The customer's item table as dense ids, parallel to state->items() (kNoItem for an item the
  // index has not seen).
  std::vector<uint32_t> owned;
  // The catalogue entries of the item table, parallel to state->items() (nullptr: not in the
  // catalogue).
  std::vector<const CatalogItem*> owned_catalog;
  // owned_flag[item] is 1 for the dense ids in `owned` (for Owns: strategies ask it for
  // thousands of items per list). Grown on demand; PrepareCustomerView clears the previous
  // customer's flags.
  std::vector<uint8_t> owned_flag;
  bool Owns(uint32_t item) const { return item < owned_flag.size() && owned_flag[item] != 0; }
  // Whether a strategy should leave `item` out (owned while owned items are excluded).
  bool Skip(const StrategyEnv& env, uint32_t item) const { return env.skip_owned && Owns(item); }
  DerivedFeatures derived;
  // Mean price paid per purchase line (0 when nothing was priced).
  double avg_line_price = 0;
  // The customer's most used channel ("" when none).
  std::string main_channel;
};

// A proposed item. `score` > 0 on the strategy's own scale (the blend normalises per strategy).
// `evidence` and `ref` carry what the reason sentence needs, so sentences are written only for
// the items that make the final list.
struct Candidate {
  uint32_t item = kNoItem;
  double score = 0;
  double evidence[4] = {0, 0, 0, 0};
  uint32_t ref = kNoItem;  // an item the reason refers to ("bought with ..."; als: model index)
  std::string ref_text;    // e.g. a segment name
  bool due = false;        // re-offer: an owned item that is due again (rules let it through)
};

// Tunables of the strategies (configuration keys recommend.*; see README).
struct StrategyOptions {
  // popularity: half-life of the recent popularity (days of event time), and how strongly the
  // customer's segment tilts it (0 = global popularity only).
  double popularity_half_life_days = 14.0;
  double popularity_segment_tilt = 0.5;
  // co-occurrence: half-life (days) of the weight of an owned item by how recently the customer
  // bought it, and the weight it never falls below (0..1).
  double cooccurrence_recency_half_life_days = 60.0;
  double cooccurrence_recency_floor = 0.2;
  // Normalisation exponent: score(i, j) = n_ij / (n_i^a * n_j^(1-a)); 0.5 = cosine, above 0.5
  // favours popular candidates (asymmetric cosine).
  double cooccurrence_alpha = 0.7;
  // Trend: candidates are multiplied by (recent purchases / buyers)^trend, so what is selling
  // now (seasonal items, new products) rises over what sold long ago; 0 = off.
  double cooccurrence_trend = 1.0;
  // At most this many owned items (the most recently bought) query the co-occurrence table.
  int cooccurrence_max_query_items = 64;
  // similar customers: neighbours taken from the exemplar panel.
  int similar_neighbours = 40;
  // re-offer: an owned item is due when the time since it was last bought reaches this share of
  // its usual gap (validity days of a recurring package, else its own re-buy gap).
  double reoffer_due_ratio = 0.8;
  // re-offer: exponent of the item's repeat share over all customers — the share of its purchase
  // lines that were not a buyer's first, (lines - buyers + 1) / (lines + 2). Items people come
  // back for (refills, consumables) then outrank one-off items the customer bought as often;
  // 0 = the customer's own habit only.
  double reoffer_repeat_exponent = 0.5;
  // upsell: a higher tier may cost at most this many times the customer's usual price in that
  // service type / category.
  double upsell_price_ratio = 2.0;
  // Segments whose customers are shown the top of the ladder (comma-separated names).
  std::string upsell_top_segments = "Champions,Can't Lose";
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  // Stable name, used in lists ("strategy" of an item), configuration and metrics.
  virtual const char* name() const = 0;
  // Once per micro-batch, before the batch's lists. The env (index, statistics, model) stays as
  // it is until the next BeginBatch, so a strategy may build per-batch tables here.
  virtual void BeginBatch(const StrategyEnv& env) { (void)env; }
  // Appends at most `limit` candidates for `customer` (any order, no duplicates).
  virtual void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
                     std::vector<Candidate>* out) = 0;
  // The reason sentence of a candidate this strategy returned from its latest Score call (for
  // the same customer and env): a strategy may keep what that call computed, so that evidence
  // only the listed items need is worked out for them alone.
  virtual std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                              const Candidate& candidate) const = 0;
};

// Names of the built-in strategies, in the order the blend evaluates them.
inline constexpr const char* kStrategyNames[] = {"cooccurrence", "similar", "als",
                                                 "popularity",   "upsell",  "reoffer"};

// Recent popularity (decayed purchase counts), tilted toward what the customer's segment holds:
// "popular now: 2.1% of recent purchases; held by 37% of Champions".
std::unique_ptr<Strategy> NewPopularityStrategy(const StrategyOptions& options);
// Item-to-item co-occurrence over customers' item sets, cosine-normalised, each owned item
// weighted by how recently it was bought: "bought by 23% of the buyers of 85123A".
std::unique_ptr<Strategy> NewCooccurrenceStrategy(const StrategyOptions& options);
// The customer's nearest exemplars (item-mix cosine) in segments with higher spend per customer
// (the customer's own when none is higher); items scored by similarity-weighted holdings:
// "bought by 37% of customers like you in Champions".
std::unique_ptr<Strategy> NewSimilarCustomersStrategy(const StrategyOptions& options);
// Owned items bought again and again (or recurring packages), scored by how due they are:
// "you buy this about every 12 days; last bought 14 days ago".
std::unique_ptr<Strategy> NewReofferStrategy(const StrategyOptions& options);
// The next tier (quota, speed, price) in the service types / categories the customer buys,
// within a price ratio of their usual price; the top of the ladder for big spenders:
// "next tier of your usual 5 GB pack: 10 GB for +20%".
std::unique_ptr<Strategy> NewUpsellStrategy(const StrategyOptions& options, const Catalog* catalog);
// Implicit-feedback matrix factorisation (als.h): the customer's full item table is folded in
// against the current model's item factors (StrategyEnv::als; none without a model) and the
// items are scored by affinity x_u . y_j; the evidence is the owned item contributing most:
// "customers with your taste buy it (ALS affinity 0.82, like your 85123A)".
std::unique_ptr<Strategy> NewAlsStrategy(const StrategyOptions& options);

// Helpers shared by strategies and rules.
// The price of an item: the catalogue's list price, else the last price observed in events
// (items absent from the catalogue are known by their observed price), else 0.
double ItemPrice(const StrategyEnv& env, std::string_view item_id);
// Builds the view of one customer (dense ids, catalogue entries, derived features, main
// channel).
void PrepareCustomerView(const StrategyEnv& env, const CustomerState& state, CustomerView* view);
// Fills *out with the statistics of every item of `index` by dense id (all nullptr when `stats`
// is null), for StrategyEnv::item_stats.
void IndexStats(const RecommendIndex& index, const ItemStatsTable* stats,
                std::vector<const ItemStats*>* out);
// Fills *out with the catalogue entry of every item of `index` by dense id (all nullptr when
// `catalog` is null), for StrategyEnv::catalog_items.
void IndexCatalog(const RecommendIndex& index, const Catalog* catalog,
                  std::vector<const CatalogItem*>* out);

}  // namespace streamrec

#endif  // STREAMREC_STRATEGY_H_
