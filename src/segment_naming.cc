#include "streamrec/segment_naming.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "csv.h"

namespace streamrec {

namespace {

// numpy.percentile(..., method="linear") on sorted values.
double Percentile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

StatusOr<std::array<double, 4>> Cuts(std::span<const double> values, const char* what) {
  std::vector<double> sorted(values.begin(), values.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (!std::isfinite(sorted[i])) {
      return Status::InvalidArgument(std::string(what) + " of customer " + std::to_string(i) +
                                     " is not finite (" + std::to_string(sorted[i]) + ")");
    }
  }
  std::sort(sorted.begin(), sorted.end());
  return std::array<double, 4>{Percentile(sorted, 0.2), Percentile(sorted, 0.4),
                               Percentile(sorted, 0.6), Percentile(sorted, 0.8)};
}

int Exceeded(const std::array<double, 4>& cuts, double v) {
  int n = 0;
  for (double c : cuts) n += v > c;
  return n;
}

Status ReadCuts(const google::protobuf::RepeatedField<double>& field, const char* what,
                std::array<double, 4>* out) {
  if (field.size() != 4) {
    return Status::Corruption(std::string("RFM ") + what + " has " + std::to_string(field.size()) +
                              " cut points, expected 4");
  }
  for (int i = 0; i < 4; ++i) {
    if (!std::isfinite(field[i]) || (i > 0 && field[i] < field[i - 1])) {
      return Status::Corruption(std::string("RFM ") + what + " cut points are not finite and " +
                                "non-decreasing at index " + std::to_string(i));
    }
    (*out)[i] = field[i];
  }
  return Status::OK();
}

}  // namespace

StatusOr<RfmQuintiles> RfmQuintiles::Fit(std::span<const double> recency_days,
                                         std::span<const double> frequency,
                                         std::span<const double> monetary) {
  if (recency_days.empty() || recency_days.size() != frequency.size() ||
      recency_days.size() != monetary.size()) {
    return Status::InvalidArgument(
        "RFM quintiles need the same number (>= 1) of recency, frequency and monetary values; "
        "got " +
        std::to_string(recency_days.size()) + ", " + std::to_string(frequency.size()) + " and " +
        std::to_string(monetary.size()));
  }
  StatusOr<std::array<double, 4>> r = Cuts(recency_days, "recency");
  if (!r.ok()) return r.status();
  StatusOr<std::array<double, 4>> f = Cuts(frequency, "frequency");
  if (!f.ok()) return f.status();
  StatusOr<std::array<double, 4>> m = Cuts(monetary, "monetary");
  if (!m.ok()) return m.status();
  return RfmQuintiles(*r, *f, *m);
}

RfmScore RfmQuintiles::ScoreCentre(double recency_days, double frequency, double monetary) const {
  RfmScore s;
  s.r = 5 - Exceeded(recency_, recency_days);
  s.f = 1 + Exceeded(frequency_, frequency);
  s.m = 1 + Exceeded(monetary_, monetary);
  return s;
}

void RfmQuintiles::ToProto(v1::RfmQuintileBoundaries* proto) const {
  proto->clear_recency_days();
  proto->clear_frequency();
  proto->clear_monetary();
  proto->mutable_recency_days()->Add(recency_.begin(), recency_.end());
  proto->mutable_frequency()->Add(frequency_.begin(), frequency_.end());
  proto->mutable_monetary()->Add(monetary_.begin(), monetary_.end());
}

StatusOr<RfmQuintiles> RfmQuintiles::FromProto(const v1::RfmQuintileBoundaries& proto) {
  std::array<double, 4> r{}, f{}, m{};
  STREAMREC_RETURN_IF_ERROR(ReadCuts(proto.recency_days(), "recency", &r));
  STREAMREC_RETURN_IF_ERROR(ReadCuts(proto.frequency(), "frequency", &f));
  STREAMREC_RETURN_IF_ERROR(ReadCuts(proto.monetary(), "monetary", &m));
  return RfmQuintiles(r, f, m);
}

SegmentRuleTable SegmentRuleTable::Default() {
  SegmentRuleTable t;
  t.rules = {
      {"Champions", 4, 5, 4, 5,
       "Reward them: early access to new packages, loyalty perks, ask for referrals; no "
       "discounts needed."},
      {"Loyal", 3, 5, 3, 5,
       "Upsell higher tiers and bundles; enrol in the loyalty programme; ask for reviews."},
      {"Can't Lose", 1, 1, 4, 5,
       "Win them back now: personal outreach, renewal of their usual packages, strong retention "
       "offer; do not lose them to a competitor."},
      {"At Risk", 1, 2, 3, 5,
       "Personalised win-back offers and renewal reminders based on past purchases."},
      {"Potential Loyalist", 4, 5, 2, 2.5,
       "Build frequency: membership or recurring-package offers, recommend related packages."},
      {"New", 5, 5, 1, 1.5,
       "Onboard: welcome offer, make the second purchase easy, introduce the catalogue."},
      {"Promising", 4, 4, 1, 1.5,
       "Build awareness: trial of a higher tier, small incentive for the next purchase."},
      {"Need Attention", 3, 3, 2, 2.5,
       "Limited-time offers on what they bought before; reactivate before they drift."},
      {"About to Sleep", 2, 3, 1, 1.5,
       "Reconnect: popular packages and renewal reminders, a modest discount."},
      {"Hibernating", 1, 2, 2, 2.5,
       "Offer relevant packages at a special price; otherwise low-cost contact only."},
      {"Lost", 1, 1, 1, 1.5,
       "Revive with a low-cost reach-out campaign; otherwise leave out of paid campaigns."},
  };
  return t;
}

Status SegmentRuleTable::Validate() const {
  if (rules.empty()) return Status::InvalidArgument("segment rule table has no rules");
  for (size_t i = 0; i < rules.size(); ++i) {
    const SegmentRule& r = rules[i];
    const std::string where = "segment rule " + std::to_string(i) + " ('" + r.name + "')";
    if (r.name.empty()) {
      return Status::InvalidArgument("segment rule " + std::to_string(i) + " has an empty name");
    }
    if (r.min_r < 1 || r.max_r > 5 || r.min_r > r.max_r) {
      return Status::InvalidArgument(where + ": R range " + std::to_string(r.min_r) + "-" +
                                     std::to_string(r.max_r) +
                                     " should be a non-empty range within 1-5");
    }
    if (!(r.min_fm >= 1) || !(r.max_fm <= 5) || !(r.min_fm <= r.max_fm)) {
      return Status::InvalidArgument(where + ": FM range " + std::to_string(r.min_fm) + "-" +
                                     std::to_string(r.max_fm) +
                                     " should be a non-empty range within 1-5");
    }
  }
  return Status::OK();
}

namespace {

// Parses a whole-field number; false on trailing text or an empty field.
bool ParseNumber(const std::string& field, double* out) {
  if (field.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(field.c_str(), &end);
  return end == field.c_str() + field.size() && std::isfinite(*out);
}

}  // namespace

StatusOr<SegmentRuleTable> SegmentRuleTable::ParseCsv(std::string_view text,
                                                      const std::string& source) {
  static const std::vector<std::string> kHeader = {"name",   "r_min",  "r_max",
                                                   "fm_min", "fm_max", "action"};
  SegmentRuleTable table;
  table.rules.clear();
  std::vector<std::string> fields;
  bool header_seen = false;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos || line[0] == '#') continue;
    const std::string where = source + ":" + std::to_string(line_no) + ": ";
    Status split = SplitCsvLine(line, ',', &fields);
    if (!split.ok()) return Status::InvalidArgument(where + split.message());
    for (std::string& f : fields) {
      f.erase(0, f.find_first_not_of(' '));
      f.erase(f.find_last_not_of(' ') + 1);
    }
    if (!header_seen) {
      if (fields != kHeader) {
        return Status::InvalidArgument(where +
                                       "expected the header name,r_min,r_max,fm_min,fm_max,action");
      }
      header_seen = true;
      continue;
    }
    if (fields.size() != kHeader.size()) {
      return Status::InvalidArgument(where + "expected 6 fields, got " +
                                     std::to_string(fields.size()));
    }
    SegmentRule rule;
    rule.name = fields[0];
    rule.action = fields[5];
    double value[4];
    for (int c = 0; c < 4; ++c) {
      if (!ParseNumber(fields[1 + c], &value[c])) {
        return Status::InvalidArgument(where + kHeader[1 + c] + " '" + fields[1 + c] +
                                       "' is not a number");
      }
    }
    for (int c = 0; c < 2; ++c) {
      if (value[c] != std::floor(value[c])) {
        return Status::InvalidArgument(where + kHeader[1 + c] + " " + fields[1 + c] +
                                       " should be an integer score 1..5");
      }
    }
    rule.min_r = static_cast<int>(value[0]);
    rule.max_r = static_cast<int>(value[1]);
    rule.min_fm = value[2];
    rule.max_fm = value[3];
    SegmentRuleTable one;
    one.rules.push_back(rule);
    Status valid = one.Validate();
    if (!valid.ok()) {
      // Validate names the rule by index within `one`; the line number is what a user needs.
      std::string message = valid.message();
      const std::string prefix = "segment rule 0 ";
      if (message.rfind(prefix, 0) == 0) message = "rule " + message.substr(prefix.size());
      return Status::InvalidArgument(where + message);
    }
    table.rules.push_back(std::move(rule));
  }
  if (!header_seen) {
    return Status::InvalidArgument(source + ": empty; expected the header "
                                   "name,r_min,r_max,fm_min,fm_max,action");
  }
  if (table.rules.empty()) return Status::InvalidArgument(source + ": no rules");
  return table;
}

StatusOr<SegmentRuleTable> SegmentRuleTable::LoadCsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("segment rules file '" + path + "' cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return ParseCsv(text.str(), path);
}

const SegmentRule* SegmentRuleTable::Match(const RfmScore& score) const {
  const double fm = score.fm();
  for (const SegmentRule& r : rules) {
    if (score.r >= r.min_r && score.r <= r.max_r && fm >= r.min_fm && fm <= r.max_fm) return &r;
  }
  return nullptr;
}

std::vector<std::string> DisambiguateNames(const std::vector<std::string>& names) {
  std::set<std::string> taken(names.begin(), names.end());
  std::set<std::string> used;
  std::map<std::string, int> next_suffix;
  std::vector<std::string> out;
  out.reserve(names.size());
  for (const std::string& name : names) {
    if (used.insert(name).second) {
      out.push_back(name);
      continue;
    }
    int& suffix = next_suffix[name];
    if (suffix < 2) suffix = 2;
    std::string candidate;
    do {
      candidate = name + " " + std::to_string(suffix++);
    } while (taken.count(candidate) > 0 || used.count(candidate) > 0);
    used.insert(candidate);
    out.push_back(candidate);
  }
  return out;
}

std::vector<SegmentLabel> NameSegments(const RfmQuintiles& quintiles, const SegmentRuleTable& table,
                                       const std::vector<CentreRfm>& centres) {
  std::vector<SegmentLabel> labels(centres.size());
  std::vector<std::string> names(centres.size());
  for (size_t i = 0; i < centres.size(); ++i) {
    const CentreRfm& c = centres[i];
    labels[i].score = quintiles.ScoreCentre(c.recency_days, c.frequency, c.monetary);
    const SegmentRule* rule = table.Match(labels[i].score);
    names[i] = rule != nullptr ? rule->name : table.fallback_name;
    labels[i].action = rule != nullptr ? rule->action : table.fallback_action;
  }
  names = DisambiguateNames(names);
  for (size_t i = 0; i < centres.size(); ++i) labels[i].name = std::move(names[i]);
  return labels;
}

}  // namespace streamrec
