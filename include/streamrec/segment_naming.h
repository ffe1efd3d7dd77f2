// Business names for clusters from their RFM profile. Each cluster centre (in original units)
// gets quintile scores R, F, M in 1..5 against the customer population (RfmQuintiles); an ordered
// rule table on R and on FM = (F + M) / 2 gives the name and the action text ("business lever")
// of the first rule that matches.
//
// Default table (SegmentRuleTable::Default()), the widely used R x FM segment map; ranges are
// inclusive and FM takes the values 1, 1.5, ..., 5. First match wins:
//
//    #  name                R      FM        what the ranges cover after earlier rules
//    1  Champions           4-5    4-5
//    2  Loyal               3-5    3-5       R3 FM3-5; R4-5 FM3-3.5
//    3  Can't Lose          1-1    4-5
//    4  At Risk             1-2    3-5       R2 FM3-5; R1 FM3-3.5
//    5  Potential Loyalist  4-5    2-2.5
//    6  New                 5-5    1-1.5
//    7  Promising           4-4    1-1.5
//    8  Need Attention      3-3    2-2.5
//    9  About to Sleep      2-3    1-1.5
//   10  Hibernating         1-2    2-2.5
//   11  Lost                1-1    1-1.5
//
// The default table covers the whole 5 x 9 grid, so its fallback is never used.
#ifndef STREAMREC_SEGMENT_NAMING_H_
#define STREAMREC_SEGMENT_NAMING_H_

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "streamrec/status.h"
#include "streamrec/v1/model.pb.h"

namespace streamrec {

struct RfmScore {
  int r = 1;  // recency: 5 = most recent fifth
  int f = 1;  // frequency: 5 = most frequent fifth
  int m = 1;  // monetary: 5 = top spending fifth
  // Mean of the F and M scores, 1..5 in steps of 0.5.
  double fm() const { return (f + m) / 2.0; }
  bool operator==(const RfmScore&) const = default;
};

// Quintile cut points of recency (days), frequency (baskets) and monetary (spend) over a
// customer population. Plain data; immutable once fitted.
class RfmQuintiles {
 public:
  RfmQuintiles() = default;
  RfmQuintiles(std::array<double, 4> recency, std::array<double, 4> frequency,
               std::array<double, 4> monetary)
      : recency_(recency), frequency_(frequency), monetary_(monetary) {}

  // Cut points at the 20th, 40th, 60th and 80th percentiles (linear interpolation, as
  // numpy.percentile). The three spans are per customer and of equal length >= 1; non-finite
  // values are refused (naming the customer index).
  [[nodiscard]] static StatusOr<RfmQuintiles> Fit(std::span<const double> recency_days,
                                                  std::span<const double> frequency,
                                                  std::span<const double> monetary);

  // Scores of a profile (e.g. a cluster centre in original units). F and M: 1 + the number of
  // cut points the value exceeds. R is reversed (fewer days since the last purchase = higher):
  // 5 - the number of cut points the value exceeds. A value equal to a cut point scores as the
  // fifth below it.
  RfmScore ScoreCentre(double recency_days, double frequency, double monetary) const;

  const std::array<double, 4>& recency() const { return recency_; }
  const std::array<double, 4>& frequency() const { return frequency_; }
  const std::array<double, 4>& monetary() const { return monetary_; }

  void ToProto(v1::RfmQuintileBoundaries* proto) const;
  // Corruption unless each list has 4 non-decreasing finite values.
  [[nodiscard]] static StatusOr<RfmQuintiles> FromProto(const v1::RfmQuintileBoundaries& proto);

 private:
  std::array<double, 4> recency_{};
  std::array<double, 4> frequency_{};
  std::array<double, 4> monetary_{};
};

struct SegmentRule {
  /// Segment name given to a matching cluster.
  std::string name;
  /// Inclusive range of the R score (1..5).
  int min_r = 1;
  /// Upper end of the R range.
  int max_r = 5;
  /// Inclusive range of FM = (F + M) / 2 (1..5).
  double min_fm = 1;
  /// Upper end of the FM range.
  double max_fm = 5;
  /// What marketing should do with this segment (the business lever).
  std::string action;
};

struct SegmentRuleTable {
  /// Rules in priority order: the first that matches names the cluster.
  std::vector<SegmentRule> rules;
  /// Name when no rule matches.
  std::string fallback_name = "Unclassified";
  /// Action when no rule matches.
  std::string fallback_action;

  // The table documented at the top of this file, with an action per segment.
  static SegmentRuleTable Default();
  // InvalidArgument naming the rule (index and name) when a name is empty, an R bound is outside
  // 1..5, an FM bound outside 1..5, or a range is empty; also when there are no rules.
  [[nodiscard]] Status Validate() const;
  // Reads a rule table from CSV text: a header line `name,r_min,r_max,fm_min,fm_max,action`,
  // then one rule per line in priority order (the action may be empty; a field containing a
  // comma is double-quoted; blank lines and lines starting with '#' are skipped). The result is
  // validated; every error names `source:line` ("rules.csv:4: r_max 7 outside 1..5").
  [[nodiscard]] static StatusOr<SegmentRuleTable> ParseCsv(std::string_view text,
                                                            const std::string& source);
  // ParseCsv on the contents of `path`; IOError naming the path when it cannot be read.
  [[nodiscard]] static StatusOr<SegmentRuleTable> LoadCsv(const std::string& path);
  // The first matching rule, or nullptr.
  const SegmentRule* Match(const RfmScore& score) const;
};

// The RFM profile of one cluster centre, in original units.
struct CentreRfm {
  double recency_days = 0;
  double frequency = 0;
  double monetary = 0;
};

struct SegmentLabel {
  std::string name;  // unique among the clusters named together
  std::string action;
  RfmScore score;
};

// Names the clusters (in the order given, normally cluster order): scores each centre, applies
// the first matching rule, then makes names unique in order ("Loyal", "Loyal 2", ...), so the
// lower cluster keeps the plain name.
std::vector<SegmentLabel> NameSegments(const RfmQuintiles& quintiles, const SegmentRuleTable& table,
                                       const std::vector<CentreRfm>& centres);

// Makes names unique in order: the second "X" becomes "X 2", the third "X 3" (skipping any
// suffix already taken).
std::vector<std::string> DisambiguateNames(const std::vector<std::string>& names);

}  // namespace streamrec

#endif  // STREAMREC_SEGMENT_NAMING_H_
