#include "streamrec/segmenter.h"

namespace streamrec {

namespace {

class RfmRuleSegmenter : public Segmenter {
 public:
  explicit RfmRuleSegmenter(double champion_spend) : champion_spend_(champion_spend) {}

  void AssignBatch(std::span<CustomerState* const> changed, int64_t now_ms) override {
    static const std::vector<SegmentInfo> kSegments = MakeSegments();
    for (CustomerState* state : changed) {
      int cluster = 0;
      if (state->purchase_count() >= 10 && state->total_spend() >= champion_spend_) {
        cluster = 3;
      } else if (state->purchase_count() >= 4) {
        cluster = 2;
      } else if (state->purchase_count() >= 2) {
        cluster = 1;
      }
      state->set_cluster(cluster);
      state->set_segment(kSegments[cluster].name);
      state->set_model_version(model_version());
    }
  }
  uint64_t model_version() const override { return 0; }
  std::vector<SegmentInfo> Segments() const override { return MakeSegments(); }

 private:
  static std::vector<SegmentInfo> MakeSegments() {
    return {{0, "New", "one basket so far"},
            {1, "Promising", "two or three baskets"},
            {2, "Loyal", "four or more baskets"},
            {3, "Champions", "ten or more baskets and top-tier spend"}};
  }
  double champion_spend_;
};

}  // namespace

std::unique_ptr<Segmenter> NewRfmRuleSegmenter(double champion_spend) {
  return std::make_unique<RfmRuleSegmenter>(champion_spend);
}

}  // namespace streamrec
