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

  // Dense ids of the model's items, once per batch (the index does not change within one).
  void BeginBatch(const StrategyEnv& env) override {
    dense_.clear();
    if (env.als == nullptr) return;
    dense_.resize(env.als->items());
    for (uint32_t j = 0; j < dense_.size(); ++j) dense_[j] = env.index->Find(env.als->item_id(j));
  }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    if (env.als == nullptr || dense_.size() != env.als->items()) return;
    const AlsModel& model = *env.als;
    const RecommendIndex& index = *env.index;
    history_.clear();
    owned_.assign(model.items(), false);
    for (const auto& e : customer.state->items()) {
      const uint32_t i = model.FindItem(e.item_id());
      if (i == kAlsNoItem || e.count() == 0) continue;
      history_.push_back({i, static_cast<double>(e.count())});
      owned_[i] = true;
    }
    if (history_.empty()) return;  // nothing the model knows: no taste to go by
    model.FoldIn(history_, &workspace_, &user_);
    model.ScoreAll(user_, &scores_);
    std::vector<Candidate>& mine = scratch_;
    mine.clear();
    for (uint32_t j = 0; j < model.items(); ++j) {
      if (owned_[j] || !(scores_[j] > 0)) continue;
      Candidate c;
      c.item = dense_[j];
      if (c.item == kNoItem) continue;
      c.score = scores_[j];
      c.ref = j;  // model index until the evidence is filled in below
      mine.push_back(c);
    }
    KeepBest(index, limit, &mine);
    for (Candidate& c : mine) {
      double part = 0;
      const uint32_t ref = model.TopContributor(&workspace_, c.ref, &part);
      c.evidence[0] = c.score;
      c.evidence[1] = part;
      c.ref = ref == kAlsNoItem ? kNoItem : dense_[ref];
      out->push_back(std::move(c));
    }
  }

  std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                      const Candidate& c) const override {
    if (c.ref == kNoItem) {
      return Format("customers with your taste buy it (ALS affinity %.2f)", c.evidence[0]);
    }
    return Format("customers with your taste buy it (ALS affinity %.2f, like your %s)",
                  c.evidence[0], ItemLabel(env, env.index->item_id(c.ref)).c_str());
  }

 private:
  StrategyOptions options_;
  std::vector<uint32_t> dense_;  // model item -> RecommendIndex dense id (or kNoItem)
  std::vector<AlsInteraction> history_;
  std::vector<bool> owned_;
  AlsWorkspace workspace_;
  AlsVector user_;
  Eigen::VectorXf scores_;
  std::vector<Candidate> scratch_;
};

}  // namespace

std::unique_ptr<Strategy> NewAlsStrategy(const StrategyOptions& options) {
  return std::make_unique<AlsStrategy>(options);
}

}  // namespace streamrec
