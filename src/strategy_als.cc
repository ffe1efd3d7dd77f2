// Implicit-feedback ALS: customers with a taste like yours (in the latent factors) buy it.
// The customer's factors are folded in from the full item table on every list, so a list depends
// only on the stored state and the current model.
#include <vector>

#include "strategy_util.h"
#include "streamrec/als.h"

namespace streamrec {

namespace {

class AlsStrategy final : public Strategy {
 public:
  explicit AlsStrategy(const StrategyOptions& options) : options_(options) {}
  const char* name() const override { return "als"; }

  // Dense ids of the model's items and back, once per batch (the index does not change within
  // one).
  void BeginBatch(const StrategyEnv& env) override {
    dense_.clear();
    model_item_.clear();
    if (env.als == nullptr) return;
    dense_.resize(env.als->items());
    model_item_.assign(env.index->item_count(), kAlsNoItem);
    for (uint32_t j = 0; j < dense_.size(); ++j) {
      dense_[j] = env.index->Find(env.als->item_id(j));
      if (dense_[j] != kNoItem) model_item_[dense_[j]] = j;
    }
  }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    if (env.als == nullptr || dense_.size() != env.als->items()) return;
    const AlsModel& model = *env.als;
    const RecommendIndex& index = *env.index;
    const auto& items = customer.state->items();
    history_.clear();
    owned_.assign(model.items(), false);
    for (int k = 0; k < items.size(); ++k) {
      const v1::ItemCount& e = items[k];
      const uint32_t d = customer.owned[k];
      // (By id for an item the index did not know at BeginBatch, kNoItem included.)
      const uint32_t i = d < model_item_.size() ? model_item_[d] : model.FindItem(e.item_id());
      if (i == kAlsNoItem || e.count() == 0) continue;
      history_.push_back({i, static_cast<double>(e.count())});
      owned_[i] = true;
    }
    if (history_.empty()) return;  // nothing the model knows: no taste to go by
    model.FoldIn(history_, &workspace_, &user_);
    model.ScoreAll(user_, &scores_);
    best_.Reset(index, limit);
    for (uint32_t j = 0; j < model.items(); ++j) {
      const double score = scores_[j];
      if (!best_.MayKeep(score) || owned_[j] || !(score > 0) || dense_[j] == kNoItem) continue;
      best_.Offer(score, dense_[j], j);  // aux: the model index
    }
    for (const ScoredItem& r : best_.Take()) {
      Candidate c;
      c.item = r.item;
      c.score = r.score;
      c.evidence[0] = c.score;
      c.ref = r.aux;  // the model index: Explain finds the owned item the reason names
      out->push_back(std::move(c));
    }
  }

  std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                      const Candidate& c) const override {
    // The owned item contributing most, from the customer's fold-in that Score left in
    // workspace_: found here because only the items that make the list need it.
    double part = 0;
    const uint32_t ref = env.als->TopContributor(workspace_, c.ref, &part);
    if (ref == kAlsNoItem || dense_[ref] == kNoItem) {
      return Format("customers with your taste buy it (ALS affinity %.2f)", c.evidence[0]);
    }
    return Format("customers with your taste buy it (ALS affinity %.2f, like your %s)",
                  c.evidence[0], ItemLabel(env, env.index->item_id(dense_[ref])).c_str());
  }

 private:
  StrategyOptions options_;
  std::vector<uint32_t> dense_;       // model item -> RecommendIndex dense id (or kNoItem)
  std::vector<uint32_t> model_item_;  // dense id -> model item (or kAlsNoItem)
  std::vector<AlsInteraction> history_;
  std::vector<bool> owned_;
  AlsWorkspace workspace_;
  AlsVector user_;
  Eigen::VectorXf scores_;
  BestItems best_;
};

}  // namespace

std::unique_ptr<Strategy> NewAlsStrategy(const StrategyOptions& options) {
  return std::make_unique<AlsStrategy>(options);
}

}  // namespace streamrec
