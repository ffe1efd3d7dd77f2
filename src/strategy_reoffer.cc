// Re-offer: items the customer buys again and again — a recurring package at the end of its
// validity, or a regularly re-bought item — scored by how often they are bought and how due they
// are now.
#include <algorithm>
#include <cmath>

#include "strategy_util.h"

namespace streamrec {

namespace {

constexpr double kDayMs = 86400000.0;
// Half-life (days) of the bonus for recently bought items.
constexpr double kRecentHalfLifeDays = 30.0;

class ReofferStrategy final : public Strategy {
 public:
  explicit ReofferStrategy(const StrategyOptions& options) : options_(options) {}
  const char* name() const override { return "reoffer"; }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    const RecommendIndex& index = *env.index;
    const CustomerState& state = *customer.state;
    std::vector<Candidate>& mine = scratch_;
    mine.clear();
    const double customer_gap_days = customer.derived.mean_gap_days;
    for (int k = 0; k < state.items_size(); ++k) {
      const v1::ItemCount& e = state.items(k);
      const uint32_t item = customer.owned[k];
      if (item == kNoItem) continue;
      const CatalogItem* cat = customer.owned_catalog[k];
      if (cat != nullptr && !cat->recommendable) continue;
      const uint64_t baskets = std::max<uint64_t>(1, e.baskets());
      double gap_days = 0;
      bool cycle_known = false;
      if (cat != nullptr && cat->charging == Charging::kRecurring && cat->validity_days > 0) {
        gap_days = cat->validity_days;
        cycle_known = true;
      } else if (baskets >= 2 && e.last_time_ms() > e.first_time_ms()) {
        gap_days = (e.last_time_ms() - e.first_time_ms()) / kDayMs / (baskets - 1);
        cycle_known = true;
      } else {
        // Bought once: assume the customer's usual gap between baskets, a weaker signal.
        gap_days = customer_gap_days > 0 ? customer_gap_days * kSingleGapFactor : 0;
      }
      const double elapsed_days = std::max(0.0, (env.now_ms - e.last_time_ms()) / kDayMs);
      double due;
      if (gap_days <= 0) {
        due = kUnknownDue;
      } else {
        double r = elapsed_days / gap_days;
        // Rises to 1 at the due ratio, then fades slowly for long-overdue items.
        due = r < options_.reoffer_due_ratio ? std::pow(r / options_.reoffer_due_ratio, 2)
                                             : 1.0 / std::sqrt(1.0 + std::max(0.0, r - 1.0));
        due = std::max(due, kDueFloor);
      }
      Candidate c;
      c.item = item;
      // Habit (how often) x how due, softened (an item bought often is likely again even when
      // not yet due), x a bonus for items bought lately (habits drift), x how much everyone
      // comes back for the item.
      const double known_share = RepeatShare(env.StatsOf(item));
      const double repeat_share = known_share >= 0 ? known_share : kPriorRepeatShare;
      // (An item bought once is not marked down for it: its repeat share says whether such
      // items come back.)
      c.score = std::log1p(static_cast<double>(baskets)) *
                std::pow(due, kDueExponent) *
                (1.0 + DecayFactor(env.now_ms - e.last_time_ms(), kRecentHalfLifeDays)) *
                std::pow(repeat_share, options_.reoffer_repeat_exponent);
      c.evidence[0] = gap_days;
      c.evidence[1] = elapsed_days;
      c.evidence[2] = static_cast<double>(baskets);
      c.evidence[3] = known_share;
      c.due = cycle_known && gap_days > 0 && elapsed_days >= options_.reoffer_due_ratio * gap_days;
      c.ref_text = cat != nullptr && cat->charging == Charging::kRecurring ? "recurring" : "";
      if (c.score > 0) mine.push_back(std::move(c));
    }
    KeepBest(index, limit, &mine);
    for (Candidate& c : mine) out->push_back(std::move(c));
  }

  std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                      const Candidate& c) const override {
    const double gap = c.evidence[0], elapsed = c.evidence[1];
    if (c.ref_text == "recurring") {
      return Format("your %s package runs out: valid %s, bought %s ago", FormatDays(gap).c_str(),
                    FormatDays(gap).c_str(), FormatDays(elapsed).c_str());
    }
    // "; 45% of its purchases are re-buys" when the item is known to the statistics.
    const std::string repeats =
        c.evidence[3] >= 0
            ? Format("; %.0f%% of its purchases are re-buys", 100 * c.evidence[3])
            : std::string();
    if (c.evidence[2] >= 2 && gap > 0) {
      return Format("you bought this %.0f times, about every %s; last %s ago%s", c.evidence[2],
                    FormatDays(gap).c_str(), FormatDays(elapsed).c_str(), repeats.c_str());
    }
    return Format("you bought this %s ago%s", FormatDays(elapsed).c_str(), repeats.c_str());
  }

 private:
  static constexpr double kSingleGapFactor = 2.0;
  static constexpr double kUnknownDue = 0.3;
  static constexpr double kDueFloor = 0.05;
  // How much "not due yet" lowers a score (a fourth root: habits matter more than timing).
  static constexpr double kDueExponent = 0.25;
  // Repeat share of an item without statistics (the prior (0 + 1) / (0 + 2)).
  static constexpr double kPriorRepeatShare = 0.5;
  // The share of an item's purchase lines that were not a buyer's first, (lines - buyers + 1) /
  // (lines + 2); -1 without statistics.
  static double RepeatShare(const ItemStats* stats) {
    if (stats == nullptr) return -1.0;
    const double lines = static_cast<double>(stats->count());
    const double buyers = static_cast<double>(std::min(stats->customers(), stats->count()));
    return (lines - buyers + 1.0) / (lines + 2.0);
  }
  StrategyOptions options_;
  std::vector<Candidate> scratch_;
};

}  // namespace

std::unique_ptr<Strategy> NewReofferStrategy(const StrategyOptions& options) {
  return std::make_unique<ReofferStrategy>(options);
}

}  // namespace streamrec
