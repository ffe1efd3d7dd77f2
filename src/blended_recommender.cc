#include "streamrec/blended_recommender.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "strategy_util.h"
#include "streamrec/als.h"
#include "streamrec/state_store.h"

namespace streamrec {

namespace {

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitView(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    std::string_view part = TrimView(s.substr(start, end - start));
    if (!part.empty()) out.push_back(part);
    start = end + 1;
  }
  return out;
}

bool KnownStrategy(std::string_view name) {
  for (const char* n : kStrategyNames) {
    if (name == n) return true;
  }
  return false;
}

AlsOptions AlsOptionsFrom(const RecommenderOptions& o) {
  AlsOptions a;
  a.factors = o.als_factors;
  a.iterations = o.als_iterations;
  a.regularization = o.als_regularization;
  a.alpha = o.als_alpha;
  a.threads = o.als_threads;
  return a;
}

std::string KnownStrategies() {
  std::string out;
  for (const char* n : kStrategyNames) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

}  // namespace

Status ParseStrategyWeights(std::string_view key, std::string_view text, StrategyWeights* out) {
  out->clear();
  for (std::string_view part : SplitView(text, ',')) {
    size_t eq = part.find('=');
    auto bad = [&](const std::string& why) {
      return Status::InvalidArgument("configuration key '" + std::string(key) + "': bad weight '" +
                                     std::string(part) + "' (" + why + ")");
    };
    if (eq == std::string_view::npos) return bad("expected strategy=weight");
    std::string name(TrimView(part.substr(0, eq)));
    std::string number(TrimView(part.substr(eq + 1)));
    if (!KnownStrategy(name)) return bad("unknown strategy; known: " + KnownStrategies());
    char* end = nullptr;
    double w = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() || !std::isfinite(w) || w < 0) {
      return bad("weight must be a number >= 0");
    }
    if (out->count(name) > 0) return bad("strategy named twice");
    (*out)[name] = w;
  }
  return Status::OK();
}

Status ParseSegmentWeights(std::string_view key, std::string_view text,
                           std::map<std::string, StrategyWeights>* out) {
  out->clear();
  for (std::string_view part : SplitView(text, ';')) {
    size_t colon = part.find(':');
    if (colon == std::string_view::npos || TrimView(part.substr(0, colon)).empty()) {
      return Status::InvalidArgument("configuration key '" + std::string(key) + "': bad entry '" +
                                     std::string(part) +
                                     "' (expected Segment:strategy=weight,...)");
    }
    std::string segment(TrimView(part.substr(0, colon)));
    if (out->count(segment) > 0) {
      return Status::InvalidArgument("configuration key '" + std::string(key) + "': segment '" +
                                     segment + "' named twice");
    }
    STREAMREC_RETURN_IF_ERROR(ParseStrategyWeights(key, part.substr(colon + 1), &(*out)[segment]));
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<Strategy>> NewStrategyByName(std::string_view name,
                                                      const RecommenderOptions& options,
                                                      const Catalog* catalog) {
  StrategyOptions s = options.strategies;
  s.popularity_half_life_days = options.popularity_half_life_days;
  if (name == "cooccurrence") return NewCooccurrenceStrategy(s);
  if (name == "similar") return NewSimilarCustomersStrategy(s);
  if (name == "popularity") return NewPopularityStrategy(s);
  if (name == "upsell") return NewUpsellStrategy(s, catalog);
  if (name == "reoffer") return NewReofferStrategy(s);
  if (name == "als") return NewAlsStrategy(s);
  return Status::InvalidArgument("unknown strategy '" + std::string(name) +
                                 "'; known: " + KnownStrategies());
}

namespace {

class BlendedRecommenderImpl final : public Recommender {
 public:
  BlendedRecommenderImpl(const RecommenderOptions& options, const Catalog* catalog,
                         std::vector<std::unique_ptr<Strategy>> strategies,
                         StrategyWeights default_weights,
                         std::map<std::string, StrategyWeights> segment_weights)
      : options_(options),
        catalog_(catalog),
        index_(RecommendIndexOptions{options.exemplar_share}),
        strategies_(std::move(strategies)) {
    for (std::string_view id : SplitView(options.exclude_items, ',')) {
      excluded_.insert(std::string(id));
    }
    default_weights_ = ToVector(default_weights);
    for (auto& [segment, w] : segment_weights) segment_weights_[segment] = ToVector(w);
  }

  bool ObservesCustomers() const override { return true; }
  void ObserveChange(const CustomerState* before, const CustomerState& after) override {
    index_.ObserveChange(before, after);
  }
  void ObserveRelabel(const CustomerState& state) override { index_.ObserveRelabel(state); }
  void ResetObserved() override { index_.Clear(); }

  Status LoadModel(StateStore* store) override {
    std::string value;
    Status s = store->Get(Column::kModel, kAlsModelKey, &value);
    if (s.IsNotFound()) {
      als_.reset();
      return Status::OK();
    }
    STREAMREC_RETURN_IF_ERROR(s);
    auto model = AlsModel::Decode(value);
    if (!model.ok()) return Status::Corruption("stored ALS model: " + model.status().message());
    als_ = std::make_shared<const AlsModel>(std::move(model).value());
    return Status::OK();
  }

  Status RefitModel(StateStore* store, std::span<const CustomerState> batch,
                    WriteSet* writes) override {
    if (!UsesAls()) return Status::OK();
    // Customers by id (the batch's states win over the stored ones), items interned as seen.
    std::unordered_set<std::string_view> in_batch;
    for (const CustomerState& c : batch) in_batch.insert(c.customer_id());
    std::vector<std::string> customers;
    std::vector<std::string> items;
    std::unordered_map<std::string, uint32_t> item_slot;
    std::vector<AlsTriplet> cells;
    auto add = [&](const CustomerState& c) {
      const uint32_t u = static_cast<uint32_t>(customers.size());
      customers.push_back(c.customer_id());
      for (const auto& e : c.items()) {
        if (e.count() == 0) continue;
        auto [it, inserted] = item_slot.try_emplace(e.item_id(), items.size());
        if (inserted) items.push_back(e.item_id());
        cells.push_back({u, it->second, static_cast<double>(e.count())});
      }
    };
    if (store != nullptr) {
      STREAMREC_RETURN_IF_ERROR(ScanCustomers(store, [&](std::string_view, CustomerState& state) {
        if (in_batch.count(state.customer_id()) == 0) add(state);
        return true;
      }));
    }
    for (const CustomerState& c : batch) {
      if (!c.customer_id().empty()) add(c);  // (evaluation: slots of unseen customers are empty)
    }
    if (items.empty()) return Status::OK();
    // Canonical order (customers and items by id), so the fit depends only on the states, not
    // on partitions or on where micro-batches were cut.
    std::vector<uint32_t> user_rank = RankById(customers);
    std::vector<uint32_t> item_rank = RankById(items);
    for (AlsTriplet& t : cells) {
      t.user = user_rank[t.user];
      t.item = item_rank[t.item];
    }
    std::sort(items.begin(), items.end());
    auto matrix =
        AlsMatrixFromTriplets(static_cast<uint32_t>(customers.size()), std::move(items), cells);
    if (!matrix.ok()) return matrix.status();
    auto model = AlsFit(*matrix, als_options_);
    if (!model.ok()) return model.status();
    writes->Put(Column::kModel, kAlsModelKey, model->Encode());
    als_ = std::make_shared<const AlsModel>(std::move(model).value());
    return Status::OK();
  }

  void BeginBatch(const ItemStatsTable& items, int64_t now_ms) override {
    env_.index = &index_;
    env_.als = als_.get();
    env_.stats = &items;
    env_.catalog = catalog_;
    env_.skip_owned = options_.exclude_owned;
    env_.now_ms = now_ms;
    IndexCatalog(index_, catalog_, &catalog_items_);
    env_.catalog_items = catalog_items_;
    for (auto& s : strategies_) s->BeginBatch(env_);
  }

  void Recommend(const CustomerState& customer, std::vector<Recommendation>* out) override {
    out->clear();
    if (env_.index == nullptr) return;  // BeginBatch not called yet
    PrepareCustomerView(env_, customer, &view_);
    const std::vector<double>& weights = WeightsFor(customer.segment());

    // Blend.
    for (const Blended& b : blend_) slot_[b.item] = kNoSlot;  // the previous list's entries
    blend_.clear();
    if (slot_.size() < index_.item_count()) slot_.resize(index_.item_count(), kNoSlot);
    for (size_t s = 0; s < strategies_.size(); ++s) {
      const double w = weights[s];
      if (w <= 0) continue;
      candidates_.clear();
      strategies_[s]->Score(env_, view_, options_.candidates_per_strategy, &candidates_);
      double best = 0;
      for (const Candidate& c : candidates_) best = std::max(best, c.score);
      if (best <= 0) continue;
      for (Candidate& c : candidates_) {
        if (c.score <= 0 || c.item == kNoItem) continue;
        const double part = w * c.score / best;
        uint32_t& slot = slot_[c.item];
        if (slot == kNoSlot) {
          slot = static_cast<uint32_t>(blend_.size());
          blend_.push_back(Blended{c.item, 0, 0, s, {}, false});
        }
        Blended& b = blend_[slot];
        b.score += part;
        b.due = b.due || c.due;
        if (part > b.best_part ||
            (part == b.best_part && std::string_view(strategies_[s]->name()) <
                                        strategies_[b.strategy]->name())) {
          b.best_part = part;
          b.strategy = s;
          b.candidate = std::move(c);
        }
      }
    }

    // Rules.
    std::vector<Blended*>& kept = kept_;
    kept.clear();
    for (Blended& b : blend_) {
      if (Allowed(b)) kept.push_back(&b);
    }
    std::sort(kept.begin(), kept.end(), [&](const Blended* a, const Blended* b) {
      if (a->score != b->score) return a->score > b->score;
      return index_.item_id(a->item) < index_.item_id(b->item);
    });
    per_category_.clear();
    for (Blended* b : kept) {
      if (static_cast<int>(out->size()) >= options_.list_length) break;
      const std::string& id = index_.item_id(b->item);
      if (options_.max_per_category > 0 && catalog_ != nullptr) {
        const CatalogItem* item = env_.CatalogItemOf(b->item);
        if (item != nullptr && !item->service_type.empty() &&
            ++per_category_[item->service_type] > options_.max_per_category) {
          continue;
        }
      }
      Recommendation r;
      r.item_id = id;
      r.score = b->score;
      r.strategy = strategies_[b->strategy]->name();
      r.reason = strategies_[b->strategy]->Explain(env_, view_, b->candidate);
      out->push_back(std::move(r));
    }
  }

 private:
  struct Blended {
    uint32_t item;
    double score;
    double best_part;
    size_t strategy;
    Candidate candidate;
    bool due;
  };

  std::vector<double> ToVector(const StrategyWeights& w) const {
    std::vector<double> out(strategies_.size(), 0.0);
    for (size_t s = 0; s < strategies_.size(); ++s) {
      auto it = w.find(strategies_[s]->name());
      if (it != w.end()) out[s] = it->second;
    }
    return out;
  }

  const std::vector<double>& WeightsFor(const std::string& segment) const {
    auto it = segment_weights_.find(segment);
    return it != segment_weights_.end() ? it->second : default_weights_;
  }

  bool Allowed(const Blended& b) const {
    const std::string& id = index_.item_id(b.item);
    if (!excluded_.empty() && excluded_.count(id) > 0) return false;
    const CatalogItem* item = env_.CatalogItemOf(b.item);
    if (item != nullptr) {
      if (!item->recommendable) return false;
      if (!item->ActiveAt(env_.now_ms)) return false;
      if (options_.channel_eligibility && !item->channels.empty() &&
          !view_.main_channel.empty() &&
          std::find(item->channels.begin(), item->channels.end(), view_.main_channel) ==
              item->channels.end()) {
        return false;
      }
    }
    // view_.Owns is "the item table holds the id" (FindItem) for every candidate: strategies
    // propose only items Find knows, and Find maps the customer's copy of the id to that item.
    if (options_.exclude_owned && view_.Owns(b.item) && !(options_.reoffer_due_exempt && b.due)) {
      return false;
    }
    if (options_.price_cap_ratio > 0 && view_.avg_line_price > 0) {
      double price = ItemPrice(env_, id);
      if (price > options_.price_cap_ratio * view_.avg_line_price) return false;
    }
    return true;
  }

  // The key of the ALS model in the model column family.
  static constexpr const char* kAlsModelKey = "als";

  // rank[i] = position of ids[i] in ascending order.
  static std::vector<uint32_t> RankById(const std::vector<std::string>& ids) {
    std::vector<uint32_t> order(ids.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return ids[a] < ids[b]; });
    std::vector<uint32_t> rank(ids.size());
    for (uint32_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
    return rank;
  }

  // Whether a strategy "als" is in the blend (a model is fitted only then).
  bool UsesAls() const {
    for (const auto& s : strategies_) {
      if (std::string_view(s->name()) == "als") return true;
    }
    return false;
  }

  RecommenderOptions options_;
  AlsOptions als_options_ = AlsOptionsFrom(options_);
  std::shared_ptr<const AlsModel> als_;
  const Catalog* catalog_;
  RecommendIndex index_;
  std::vector<std::unique_ptr<Strategy>> strategies_;
  std::vector<double> default_weights_;
  std::unordered_map<std::string, std::vector<double>> segment_weights_;
  std::unordered_set<std::string> excluded_;
  StrategyEnv env_;
  CustomerView view_;
  std::vector<Candidate> candidates_;
  std::vector<Blended> blend_;
  std::vector<Blended*> kept_;
  std::vector<const CatalogItem*> catalog_items_;  // env_.catalog_items
  // Position in blend_ of each dense item id of the list being blended (kNoSlot: none).
  static constexpr uint32_t kNoSlot = 0xffffffffu;
  std::vector<uint32_t> slot_;
  std::unordered_map<std::string, int> per_category_;
};

Status ValidateRecommenderOptions(const RecommenderOptions& o) {
  if (o.als_refit_every_events < 0) {
    return Status::InvalidArgument(
        "configuration key 'recommend.als_refit_every_events': must be >= 0 (got " +
        std::to_string(o.als_refit_every_events) + ")");
  }
  if (Status s = ValidateAlsOptions(AlsOptionsFrom(o)); !s.ok()) {
    return Status::InvalidArgument("configuration keys 'recommend.als_*': " + s.message());
  }
  if (o.list_length < 1) {
    return Status::InvalidArgument("configuration key 'recommend.list_length': must be >= 1");
  }
  if (o.candidates_per_strategy < 1) {
    return Status::InvalidArgument(
        "configuration key 'recommend.candidates_per_strategy': must be >= 1");
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<Recommender>> NewBlendedRecommender(
    const RecommenderOptions& options, const Catalog* catalog,
    std::vector<std::unique_ptr<Strategy>> strategies) {
  STREAMREC_RETURN_IF_ERROR(ValidateRecommenderOptions(options));
  StrategyWeights weights;
  STREAMREC_RETURN_IF_ERROR(ParseStrategyWeights("recommend.weights", options.weights, &weights));
  std::map<std::string, StrategyWeights> segment_weights;
  STREAMREC_RETURN_IF_ERROR(
      ParseSegmentWeights("recommend.segment_weights", options.segment_weights, &segment_weights));
  return std::unique_ptr<Recommender>(new BlendedRecommenderImpl(
      options, catalog, std::move(strategies), std::move(weights), std::move(segment_weights)));
}

StatusOr<std::unique_ptr<Recommender>> NewBlendedRecommender(const RecommenderOptions& options,
                                                             const Catalog* catalog) {
  std::vector<std::unique_ptr<Strategy>> strategies;
  for (const char* name : kStrategyNames) {
    auto s = NewStrategyByName(name, options, catalog);
    if (!s.ok()) return s.status();
    strategies.push_back(std::move(*s));
  }
  return NewBlendedRecommender(options, catalog, std::move(strategies));
}

}  // namespace streamrec
