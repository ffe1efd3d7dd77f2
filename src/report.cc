#include "streamrec/report.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <optional>
#include <set>

#include "streamrec/time_util.h"

namespace streamrec {

namespace {

// "YYYY-MM-DD" of a day number (days since the epoch, UTC).
std::string FormatEventDay(int64_t day) { return FormatIso8601(day * kMillisPerDay).substr(0, 10); }

}  // namespace

std::string SegmentOverview::NameOf(int32_t id) const {
  const int row = model ? model->RowOf(id) : -1;
  if (row >= 0) return model->names[row];
  for (const SegmentProfile& p : profiles) {
    if (p.cluster == id) return p.segment;
  }
  return "#" + std::to_string(id);
}

StatusOr<SegmentOverview> LoadSegmentOverview(StateStore* store) {
  SegmentOverview overview;
  auto profiles = ProfileSegments(store);
  if (!profiles.ok()) return profiles.status();
  overview.profiles = std::move(*profiles);
  for (const SegmentProfile& p : overview.profiles) {
    overview.total_customers += p.customers;
    overview.total_revenue += p.revenue;
  }
  auto proto = LoadStoredModel(store);
  if (!proto.ok()) {
    overview.model_status = proto.status();
    return overview;
  }
  overview.proto = std::move(*proto);
  auto model = SegmentModelVersion::FromProto(*overview.proto);
  if (model.ok()) {
    overview.model = *model;
  } else {
    overview.model_status = model.status();
  }
  overview.transitions = SumTransitions(*overview.proto);
  const auto& days = overview.proto->transitions();
  if (!days.empty()) {
    overview.transitions_first_day = FormatEventDay(days.begin()->day());
    overview.transitions_last_day = FormatEventDay(days.rbegin()->day());
  }
  return overview;
}

StatusOr<ReportData> LoadReportData(StateStore* store) {
  auto overview_or = LoadSegmentOverview(store);
  if (!overview_or.ok()) return overview_or.status();
  const SegmentOverview& overview = *overview_or;
  if (overview.total_customers == 0) {
    return Status::NotFound("the state store holds no customers (replay or run into it first)");
  }
  ReportData data;
  data.total_customers = overview.total_customers;
  data.total_revenue = overview.total_revenue;
  const SegmentModelVersion* model = overview.model.get();
  for (const SegmentProfile& p : overview.profiles) {
    ReportSegment segment;
    segment.profile = p;
    const int row = model ? model->RowOf(p.cluster) : -1;
    if (row >= 0) {
      const v1::SegmentCluster& c = model->proto.clusters(row);
      segment.action = model->actions[row];
      segment.r_score = c.r_score();
      segment.f_score = c.f_score();
      segment.m_score = c.m_score();
    }
    data.segments.push_back(std::move(segment));
  }
  if (model == nullptr) {
    data.model_unavailable_reason =
        overview.model_status.IsNotFound()
            ? "no K-Means segment model is stored (segments.method: rules, or fewer customers "
              "than segments.min_customers_for_fit so far)"
            : "the stored segment model cannot be read: " + overview.model_status.ToString();
    return data;
  }
  const v1::SegmentModel& proto = *overview.proto;
  ReportModel m;
  m.version = model->version;
  m.k = model->k;
  m.d = model->spec.dim();
  m.created_event_time_ms = proto.created_event_time_ms();
  m.objective = model->proto.objective();
  m.silhouette = model->proto.silhouette();
  m.fit_points = model->proto.fit_points();
  m.feature_names = model->spec.Names();
  m.ids = model->ids;
  m.names = model->names;
  // The current (online) centres; their full-precision copy when stored.
  const size_t values = static_cast<size_t>(m.k) * m.d;
  if (static_cast<size_t>(proto.online_centres_size()) == values) {
    m.centres.assign(proto.online_centres().begin(), proto.online_centres().end());
  } else {
    m.centres.assign(proto.centres().begin(), proto.centres().end());
  }
  m.transitions = overview.transitions;
  m.transitions_first_day = overview.transitions_first_day;
  m.transitions_last_day = overview.transitions_last_day;
  data.model = std::move(m);
  return data;
}

CentreProjection ProjectCentres(const std::vector<double>& values, int k, int d) {
  CentreProjection out;
  out.x.assign(k, 0.0);
  out.y.assign(k, 0.0);
  Eigen::MatrixXd x(k, d);
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < d; ++j) x(i, j) = values[static_cast<size_t>(i) * d + j];
  }
  x.rowwise() -= x.colwise().mean();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(x.transpose() * x);
  if (solver.info() != Eigen::Success) return out;
  const Eigen::VectorXd& eigenvalues = solver.eigenvalues();  // ascending
  double total = 0;
  for (int j = 0; j < d; ++j) total += std::max(0.0, eigenvalues(j));
  // Below this a component is rounding noise (k=1, identical centres, or fewer centres than 3).
  const double negligible = 1e-12 * std::max(1.0, total);
  if (total <= negligible) return out;
  for (int c = 0; c < std::min(2, d); ++c) {
    const int col = d - 1 - c;
    const double variance = std::max(0.0, eigenvalues(col));
    if (variance <= negligible) break;
    Eigen::VectorXd v = solver.eigenvectors().col(col);
    Eigen::Index top = 0;
    v.cwiseAbs().maxCoeff(&top);
    if (v(top) < 0) v = -v;
    const Eigen::VectorXd projected = x * v;
    std::vector<double>& coordinate = c == 0 ? out.x : out.y;
    for (int i = 0; i < k; ++i) coordinate[i] = projected(i);
    out.explained[c] = variance / total;
    out.top_feature[c] = static_cast<int>(top);
  }
  return out;
}

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

// ---- formatting ------------------------------------------------------------------------------

// A number safe to write: non-finite values (which no figure should produce) become 0, so the
// page never shows "nan" or "inf".
double Finite(double v) { return std::isfinite(v) ? v : 0.0; }

// printf-style append. Every double argument must have gone through Finite() or be a layout
// constant.
void Appendf(std::string* out, const char* format, ...) __attribute__((format(printf, 2, 3)));
void Appendf(std::string* out, const char* format, ...) {
  char buf[1024];
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  if (n < 0) return;
  if (static_cast<size_t>(n) < sizeof(buf)) {
    out->append(buf, n);
    return;
  }
  std::string big(n + 1, '\0');
  va_start(args, format);
  std::vsnprintf(big.data(), big.size(), format, args);
  va_end(args);
  out->append(big.data(), n);
}

// 1234567.891 -> "1,234,567.89" (with `decimals` digits after the point).
std::string Grouped(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, std::fabs(Finite(value)));
  std::string digits(buf);
  const size_t point = std::min(digits.find('.'), digits.size());
  std::string out;
  for (size_t i = 0; i < point; ++i) {
    if (i > 0 && (point - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  out += digits.substr(point);
  const bool negative = Finite(value) < 0 && out.find_first_not_of("0.,") != std::string::npos;
  return negative ? "-" + out : out;
}

std::string Percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", 100 * Finite(share));
  return buf;
}

double Share(double part, double whole) { return whole > 0 ? part / whole : 0.0; }

// Categorical colours (Tableau 10), one per segment in table order.
const char* SegmentColour(size_t i) {
  static const char* const kColours[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return kColours[i % (sizeof(kColours) / sizeof(kColours[0]))];
}

constexpr const char* kCustomersColour = "#4e79a7";
constexpr const char* kRevenueColour = "#f28e2b";
constexpr const char* kScoreColours[3] = {"#59a14f", "#4e79a7", "#e15759"};  // R, F, M

// Sequential colour of t in [0, 1]: light to dark blue (ColorBrewer "Blues" end points).
std::string HeatColour(double t) {
  static const int kStops[][3] = {{247, 251, 255}, {198, 219, 239}, {107, 174, 214},
                                  {33, 113, 181},  {8, 48, 107}};
  t = std::clamp(Finite(t), 0.0, 1.0) * 4;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  char buf[16];
  std::snprintf(buf, sizeof(buf), "#%02x%02x%02x",
                static_cast<int>(std::lround(kStops[i][0] + f * (kStops[i + 1][0] - kStops[i][0]))),
                static_cast<int>(std::lround(kStops[i][1] + f * (kStops[i + 1][1] - kStops[i][1]))),
                static_cast<int>(std::lround(kStops[i][2] + f * (kStops[i + 1][2] - kStops[i][2]))));
  return buf;
}

void HowToRead(std::string* out, std::string_view text) {
  *out += "<p class=\"how\"><b>How to read this:</b> ";
  *out += text;
  *out += "</p>\n";
}

// ---- page parts ----------------------------------------------------------------------------

constexpr const char* kStyle = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #222; background: #fff; margin: 24px 32px; max-width: 1200px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin: 0 0 16px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 12px; margin: 12px 0; padding: 0; }
.facts div { background: #f4f6f8; border-radius: 6px; padding: 8px 12px; min-width: 120px; }
.facts dt { font-size: 12px; color: #666; }
.facts dd { margin: 2px 0 0; font-size: 16px; font-weight: 600; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { padding: 4px 6px; border-bottom: 1px solid #e3e3e3; text-align: right; vertical-align: top; }
th { background: #f4f6f8; font-weight: 600; }
td.name, th.name, td.action, th.action { text-align: left; }
td.name { white-space: nowrap; }
td.action { min-width: 200px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.how { color: #555; font-size: 13px; margin: 4px 0 0; }
.note { background: #fff8e1; border-left: 4px solid #f2b01e; padding: 8px 12px; }
svg { display: block; margin-top: 8px; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
)";

void RenderHeader(const ReportData& data, std::string* out) {
  *out += "<h1>Customer segments: analyst report</h1>\n";
  if (!data.source.empty()) {
    *out += "<p class=\"sub\">State " + HtmlEscape(data.source) + "</p>\n";
  }
  auto fact = [out](std::string_view label, const std::string& value) {
    *out += "<div><dt>";
    *out += label;
    *out += "</dt><dd>" + value + "</dd></div>";
  };
  *out += "<dl class=\"facts\">";
  if (data.model) {
    const ReportModel& m = *data.model;
    fact("Model version", "v" + std::to_string(m.version));
    fact("Clusters (k)", std::to_string(m.k));
    fact("Re-fit at (event time)", HtmlEscape(FormatIso8601(m.created_event_time_ms)));
    fact("Objective", Grouped(m.objective, 2));
    char silhouette[32];
    std::snprintf(silhouette, sizeof(silhouette), "%.3f", Finite(m.silhouette));
    fact("Silhouette", silhouette);
    fact("Fitted on", Grouped(static_cast<double>(m.fit_points), 0) + " customers");
  } else {
    fact("Segment model", "none");
  }
  fact("Customers", Grouped(static_cast<double>(data.total_customers), 0));
  fact("Revenue", Grouped(data.total_revenue, 2));
  fact("Segments", std::to_string(data.segments.size()));
  *out += "</dl>\n";
  if (!data.model) {
    *out += "<p class=\"note\">The model plots (transition heat map, cluster centres) are "
            "unavailable: " +
            HtmlEscape(data.model_unavailable_reason) + "</p>\n";
  }
}

std::string ScoreCell(uint32_t score) { return score > 0 ? std::to_string(score) : "&ndash;"; }

void RenderTable(const ReportData& data, std::string* out) {
  *out += "<h2>Segments</h2>\n<table>\n<tr><th class=\"name\">Segment</th><th>Cluster</th>"
          "<th>Customers</th><th>Share</th><th>Revenue</th><th>Revenue share</th>"
          "<th>Revenue / customer</th><th>Recency (days)</th><th>Frequency (baskets)</th>"
          "<th>Monetary</th><th>R</th><th>F</th><th>M</th><th class=\"action\">Action</th></tr>\n";
  for (size_t i = 0; i < data.segments.size(); ++i) {
    const ReportSegment& s = data.segments[i];
    const SegmentProfile& p = s.profile;
    Appendf(out, "<tr><td class=\"name\"><span class=\"swatch\" style=\"background:%s\"></span>",
            SegmentColour(i));
    *out += HtmlEscape(p.segment) + "</td><td>" + std::to_string(p.cluster) + "</td>";
    *out += "<td>" + Grouped(static_cast<double>(p.customers), 0) + "</td>";
    *out += "<td>" + Percent(Share(p.customers, data.total_customers)) + "</td>";
    *out += "<td>" + Grouped(p.revenue, 2) + "</td>";
    *out += "<td>" + Percent(Share(p.revenue, data.total_revenue)) + "</td>";
    *out += "<td>" + Grouped(Share(p.revenue, p.customers), 2) + "</td>";
    *out += "<td>" + Grouped(p.mean_recency_days, 1) + "</td>";
    *out += "<td>" + Grouped(p.mean_frequency, 2) + "</td>";
    *out += "<td>" + Grouped(p.mean_monetary, 2) + "</td>";
    *out += "<td>" + ScoreCell(s.r_score) + "</td><td>" + ScoreCell(s.f_score) + "</td><td>" +
            ScoreCell(s.m_score) + "</td>";
    *out += "<td class=\"action\">" + (s.action.empty() ? "&ndash;" : HtmlEscape(s.action)) +
            "</td></tr>\n";
  }
  *out += "</table>\n";
  HowToRead(out,
            "one row per segment. Recency is the mean days since a customer's last purchase at "
            "the newest event time, frequency the mean number of baskets, monetary the mean total "
            "spend. R, F and M are the quintile scores (1 lowest, 5 best; R 5 = most recent) of "
            "the segment's cluster centre, from which the segment is named; the action is the "
            "business lever suggested for it.");
}

// (a) Paired horizontal bars: share of customers and share of revenue per segment.
void RenderSizePlot(const ReportData& data, std::string* out) {
  constexpr double kLabelWidth = 190, kBarWidth = 520, kRowHeight = 46, kTop = 34;
  const double width = kLabelWidth + kBarWidth + 250;
  const double height = kTop + kRowHeight * data.segments.size() + 10;
  double max_share = 0;
  for (const ReportSegment& s : data.segments) {
    max_share = std::max({max_share, Share(s.profile.customers, data.total_customers),
                          Share(s.profile.revenue, data.total_revenue)});
  }
  if (max_share <= 0) max_share = 1;
  *out += "<h2>Segment sizes and revenue</h2>\n";
  Appendf(out,
          "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
          "aria-label=\"Segment sizes and revenue\">\n",
          width, height, width, height);
  Appendf(out,
          "<rect x=\"%.0f\" y=\"6\" width=\"12\" height=\"12\" fill=\"%s\"/>"
          "<text x=\"%.0f\" y=\"16\" font-size=\"12\">share of customers</text>"
          "<rect x=\"%.0f\" y=\"6\" width=\"12\" height=\"12\" fill=\"%s\"/>"
          "<text x=\"%.0f\" y=\"16\" font-size=\"12\">share of revenue</text>\n",
          kLabelWidth, kCustomersColour, kLabelWidth + 18, kLabelWidth + 160, kRevenueColour,
          kLabelWidth + 178);
  for (size_t i = 0; i < data.segments.size(); ++i) {
    const SegmentProfile& p = data.segments[i].profile;
    const double y = kTop + kRowHeight * i;
    const double customers = Share(p.customers, data.total_customers);
    const double revenue = Share(p.revenue, data.total_revenue);
    Appendf(out, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"end\">",
            kLabelWidth - 10, y + 23);
    *out += HtmlEscape(p.segment) + "</text>\n";
    Appendf(out,
            "<rect x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"17\" fill=\"%s\"/>"
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s customers (%s)</text>\n",
            kLabelWidth, y + 2, kBarWidth * customers / max_share, kCustomersColour,
            kLabelWidth + kBarWidth * customers / max_share + 5, y + 15,
            Grouped(static_cast<double>(p.customers), 0).c_str(), Percent(customers).c_str());
    Appendf(out,
            "<rect x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"17\" fill=\"%s\"/>"
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s revenue (%s)</text>\n",
            kLabelWidth, y + 21, kBarWidth * revenue / max_share, kRevenueColour,
            kLabelWidth + kBarWidth * revenue / max_share + 5, y + 34,
            Grouped(p.revenue, 0).c_str(), Percent(revenue).c_str());
  }
  Appendf(out, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#888\"/>\n",
          kLabelWidth, kTop - 4, kLabelWidth, height - 6);
  *out += "</svg>\n";
  HowToRead(out,
            "for each segment, the blue bar is its share of all customers and the orange bar its "
            "share of all revenue (both on one scale). A segment whose orange bar is longer than "
            "its blue one earns more than its head count suggests.");
}

// (b) Grouped bars of R, F and M per segment: the 1-5 scores of the model's centres, or (no
// model) each mean as a share of the largest segment's.
void RenderProfilePlot(const ReportData& data, std::string* out) {
  std::vector<const ReportSegment*> shown;
  for (const ReportSegment& s : data.segments) {
    if (s.r_score > 0 && s.f_score > 0 && s.m_score > 0) shown.push_back(&s);
  }
  const bool scores = !shown.empty();
  double max_mean[3] = {0, 0, 0};
  if (!scores) {
    for (const ReportSegment& s : data.segments) {
      shown.push_back(&s);
      max_mean[0] = std::max(max_mean[0], s.profile.mean_recency_days);
      max_mean[1] = std::max(max_mean[1], s.profile.mean_frequency);
      max_mean[2] = std::max(max_mean[2], s.profile.mean_monetary);
    }
  }
  auto value = [&](const ReportSegment& s, int j) -> double {
    if (scores) return j == 0 ? s.r_score : j == 1 ? s.f_score : s.m_score;
    const double mean = j == 0   ? s.profile.mean_recency_days
                        : j == 1 ? s.profile.mean_frequency
                                 : s.profile.mean_monetary;
    return Share(mean, max_mean[j]);
  };
  const double top = scores ? 5 : 1;
  constexpr double kLeft = 60, kTop = 34, kPlotHeight = 200, kBottom = 90, kGroup = 110;
  const double width = std::max(520.0, kLeft + kGroup * shown.size() + 20);
  const double height = kTop + kPlotHeight + kBottom;
  *out += scores ? "<h2>R/F/M profile per segment (quintile scores of the centre)</h2>\n"
                 : "<h2>R/F/M profile per segment (means, relative to the largest)</h2>\n";
  Appendf(out,
          "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
          "aria-label=\"RFM profile per segment\">\n",
          width, height, width, height);
  static const char* const kLegend[3] = {"R (recency)", "F (frequency)", "M (monetary)"};
  for (int j = 0; j < 3; ++j) {
    Appendf(out,
            "<rect x=\"%.0f\" y=\"6\" width=\"12\" height=\"12\" fill=\"%s\"/>"
            "<text x=\"%.0f\" y=\"16\" font-size=\"12\">%s</text>\n",
            kLeft + 130.0 * j, kScoreColours[j], kLeft + 130.0 * j + 18, kLegend[j]);
  }
  const int ticks = scores ? 5 : 4;
  for (int t = 0; t <= ticks; ++t) {
    const double v = top * t / ticks;
    const double y = kTop + kPlotHeight * (1 - v / top);
    Appendf(out,
            "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>"
            "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.*f</text>\n",
            kLeft, y, width - 10, y, kLeft - 6, y + 4, scores ? 0 : 2, v);
  }
  for (size_t i = 0; i < shown.size(); ++i) {
    const ReportSegment& s = *shown[i];
    const double x0 = kLeft + kGroup * i + 14;
    for (int j = 0; j < 3; ++j) {
      const double v = std::clamp(Finite(value(s, j)), 0.0, top);
      const double h = kPlotHeight * v / top;
      Appendf(out,
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"26\" height=\"%.1f\" fill=\"%s\"/>"
              "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%.*f</text>\n",
              x0 + 28.0 * j, kTop + kPlotHeight - h, h, kScoreColours[j], x0 + 28.0 * j + 13,
              kTop + kPlotHeight - h - 4, scores ? 0 : 2, v);
    }
    Appendf(out,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\" "
            "transform=\"rotate(-30 %.1f %.1f)\">",
            x0 + 42, kTop + kPlotHeight + 16, x0 + 42, kTop + kPlotHeight + 16);
    *out += HtmlEscape(s.profile.segment) + "</text>\n";
  }
  Appendf(out, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>\n", kLeft,
          kTop + kPlotHeight, width - 10, kTop + kPlotHeight);
  *out += "</svg>\n";
  HowToRead(out, scores
                     ? "each group is a segment; its bars are the R, F and M quintile scores "
                       "(1-5) of the cluster centre among all customers. High R = bought "
                       "recently, high F = buys often, high M = spends a lot; the segment names "
                       "follow from these three."
                     : "each group is a segment; its bars are the segment's mean recency (days), "
                       "frequency (baskets) and monetary (spend), each divided by the largest "
                       "segment's mean. Here a high R bar means a long time since the last "
                       "purchase.");
}

// (c) The transition heat map: rows from, columns to.
void RenderTransitionPlot(const ReportData& data, std::string* out) {
  const ReportModel& m = *data.model;
  std::set<int32_t> id_set(m.ids.begin(), m.ids.end());
  for (const auto& [move, count] : m.transitions) {
    id_set.insert(move.first);
    id_set.insert(move.second);
  }
  const std::vector<int32_t> ids(id_set.begin(), id_set.end());
  // Escaped labels. A cluster id that is neither a centre of the model nor held by a customer
  // was retired by a re-fit after its moves were counted.
  auto known_name = [&](int32_t id) -> std::optional<std::string> {
    for (size_t r = 0; r < m.ids.size(); ++r) {
      if (m.ids[r] == id) return HtmlEscape(m.names[r]);
    }
    for (const ReportSegment& s : data.segments) {
      if (s.profile.cluster == id) return HtmlEscape(s.profile.segment);
    }
    return std::nullopt;
  };
  auto name_of = [&](int32_t id) {
    return known_name(id).value_or("retired #" + std::to_string(id));
  };
  auto row_label = [&](int32_t id) {
    const std::optional<std::string> name = known_name(id);
    return name ? *name + " (" + std::to_string(id) + ")" : name_of(id);
  };
  uint64_t max_count = 0, total = 0;
  for (const auto& [move, count] : m.transitions) {
    if (move.first != move.second) max_count = std::max(max_count, count);
    total += count;
  }
  const double n = static_cast<double>(ids.size());
  const double cell = std::clamp(480.0 / n, 32.0, 56.0);
  constexpr double kLeft = 200, kTop = 130;
  const double grid = cell * n;
  const double width = kLeft + grid + 150;
  const double height = kTop + grid + 40;
  *out += "<h2>Segment transitions</h2>\n";
  Appendf(out,
          "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
          "aria-label=\"Segment transition heat map\">\n",
          width, height, width, height);
  Appendf(out,
          "<text x=\"%.1f\" y=\"14\" font-size=\"12\" text-anchor=\"middle\" "
          "font-weight=\"600\">to segment</text>\n"
          "<text x=\"14\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" font-weight=\"600\" "
          "transform=\"rotate(-90 14 %.1f)\">from segment</text>\n",
          kLeft + grid / 2, kTop + grid / 2, kTop + grid / 2);
  for (size_t c = 0; c < ids.size(); ++c) {
    const double x = kLeft + cell * c + cell / 2;
    Appendf(out,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" transform=\"rotate(-40 %.1f %.1f)\">",
            x, kTop - 8, x, kTop - 8);
    *out += name_of(ids[c]) + "</text>\n";
  }
  for (size_t r = 0; r < ids.size(); ++r) {
    const double y = kTop + cell * r;
    Appendf(out, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">", kLeft - 8,
            y + cell / 2 + 4);
    *out += row_label(ids[r]) + "</text>\n";
    for (size_t c = 0; c < ids.size(); ++c) {
      const double x = kLeft + cell * c;
      if (r == c) {
        Appendf(out,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#eeeeee\" "
                "stroke=\"#fff\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" "
                "text-anchor=\"middle\" fill=\"#999\">&ndash;</text>\n",
                x, y, cell, cell, x + cell / 2, y + cell / 2 + 4);
        continue;
      }
      auto it = m.transitions.find({ids[r], ids[c]});
      const uint64_t count = it == m.transitions.end() ? 0 : it->second;
      const double t = max_count > 0 ? static_cast<double>(count) / max_count : 0.0;
      Appendf(out,
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
              "stroke=\"#fff\"><title>",
              x, y, cell, cell, HeatColour(t).c_str());
      *out += name_of(ids[r]) + " &#8594; " + name_of(ids[c]);
      Appendf(out,
              ": %llu</title></rect><text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" "
              "text-anchor=\"middle\" fill=\"%s\">%s</text>\n",
              static_cast<unsigned long long>(count), x + cell / 2, y + cell / 2 + 4,
              t > 0.55 ? "#fff" : "#222", Grouped(static_cast<double>(count), 0).c_str());
    }
  }
  // Legend: the colour scale from 0 to the largest off-diagonal count.
  const double lx = kLeft + grid + 40;
  *out += "<defs><linearGradient id=\"heat-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int s = 0; s <= 4; ++s) {
    Appendf(out, "<stop offset=\"%.2f\" stop-color=\"%s\"/>", s / 4.0, HeatColour(s / 4.0).c_str());
  }
  *out += "</linearGradient></defs>\n";
  const double legend_height = std::min(grid, 200.0);
  Appendf(out,
          "<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"%.1f\" fill=\"url(#heat-scale)\" "
          "stroke=\"#999\"/>"
          "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s</text>"
          "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">0</text>"
          "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">moves</text>\n",
          lx, kTop, legend_height, lx + 22, kTop + 10,
          Grouped(static_cast<double>(max_count), 0).c_str(), lx + 22, kTop + legend_height,
          lx, kTop - 8);
  *out += "</svg>\n";
  std::string how =
      "cell (row, column) counts the customers who moved from the row's segment to the "
      "column's";
  if (!m.transitions_first_day.empty()) {
    how += " on event-time days " + HtmlEscape(m.transitions_first_day) + " to " +
           HtmlEscape(m.transitions_last_day);
  }
  how += " (" + Grouped(static_cast<double>(total), 0) +
         " moves in all); darker is more. A customer's first assignment is not a move, so the "
         "diagonal is empty; a \"retired\" cluster was dropped by a later re-fit. Large counts "
         "off the diagonal show where customers drift, e.g. from an active segment to an at-risk "
         "one.";
  HowToRead(out, how);
}

// (d) Cluster centres on their first two principal components; bubble area ~ customers.
void RenderCentrePlot(const ReportData& data, std::string* out) {
  const ReportModel& m = *data.model;
  const CentreProjection projection = ProjectCentres(m.centres, m.k, m.d);
  std::vector<double> customers(m.k, 0.0);
  double max_customers = 0;
  for (int r = 0; r < m.k; ++r) {
    for (const ReportSegment& s : data.segments) {
      if (s.profile.cluster == m.ids[r]) customers[r] = static_cast<double>(s.profile.customers);
    }
    max_customers = std::max(max_customers, customers[r]);
  }
  constexpr double kLeft = 70, kTop = 20, kPlotWidth = 760, kPlotHeight = 400, kMaxRadius = 40;
  const double width = kLeft + kPlotWidth + 30;
  const double height = kTop + kPlotHeight + 60;
  auto range = [](const std::vector<double>& v, double* lo, double* hi) {
    *lo = *std::min_element(v.begin(), v.end());
    *hi = *std::max_element(v.begin(), v.end());
    const double pad = std::max(0.15 * (*hi - *lo), 1e-9);
    if (*hi - *lo < 1e-9) {
      *lo -= 1;
      *hi += 1;
    } else {
      *lo -= pad;
      *hi += pad;
    }
  };
  double x_lo, x_hi, y_lo, y_hi;
  range(projection.x, &x_lo, &x_hi);
  range(projection.y, &y_lo, &y_hi);
  auto px = [&](double v) { return Finite(kLeft + kPlotWidth * (v - x_lo) / (x_hi - x_lo)); };
  auto py = [&](double v) { return Finite(kTop + kPlotHeight * (1 - (v - y_lo) / (y_hi - y_lo))); };
  auto axis_title = [&](int c) {
    std::string title = "PC" + std::to_string(c + 1);
    if (projection.top_feature[c] < 0) {
      return title + (c == 1 && m.d < 2 ? " (none: the model has one feature)"
                                        : " (no spread between the centres)");
    }
    char share[32];
    std::snprintf(share, sizeof(share), " (%.1f%% of variance; mostly ",
                  100 * Finite(projection.explained[c]));
    return title + share + HtmlEscape(m.feature_names[projection.top_feature[c]]) + ")";
  };
  *out += "<h2>Cluster centres (principal components)</h2>\n";
  Appendf(out,
          "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
          "aria-label=\"Cluster centres on two principal components\">\n",
          width, height, width, height);
  Appendf(out,
          "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" "
          "stroke=\"#bbb\"/>\n",
          kLeft, kTop, kPlotWidth, kPlotHeight);
  // The axes through the centres' mean (0 after centring), when inside the plot.
  if (x_lo < 0 && x_hi > 0) {
    Appendf(out,
            "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ccc\" "
            "stroke-dasharray=\"4 3\"/>\n",
            px(0), kTop, px(0), kTop + kPlotHeight);
  }
  if (y_lo < 0 && y_hi > 0) {
    Appendf(out,
            "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ccc\" "
            "stroke-dasharray=\"4 3\"/>\n",
            kLeft, py(0), kLeft + kPlotWidth, py(0));
  }
  Appendf(out, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" text-anchor=\"middle\">",
          kLeft + kPlotWidth / 2, kTop + kPlotHeight + 36);
  *out += axis_title(0) + "</text>\n";
  Appendf(out,
          "<text x=\"18\" y=\"%.0f\" font-size=\"12\" text-anchor=\"middle\" "
          "transform=\"rotate(-90 18 %.0f)\">",
          kTop + kPlotHeight / 2, kTop + kPlotHeight / 2);
  *out += axis_title(1) + "</text>\n";
  // Largest bubbles first, so small ones stay visible on top.
  std::vector<int> order(m.k);
  for (int r = 0; r < m.k; ++r) order[r] = r;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return customers[a] > customers[b]; });
  for (int r : order) {
    const double radius =
        std::max(4.0, kMaxRadius * std::sqrt(Finite(Share(customers[r], max_customers))));
    const double cx = px(projection.x[r]), cy = py(projection.y[r]);
    size_t colour = r;
    for (size_t i = 0; i < data.segments.size(); ++i) {
      if (data.segments[i].profile.cluster == m.ids[r]) colour = i;
    }
    Appendf(out,
            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" fill-opacity=\"0.6\" "
            "stroke=\"%s\"><title>",
            cx, cy, radius, SegmentColour(colour), SegmentColour(colour));
    *out += HtmlEscape(m.names[r]) + ": " + Grouped(customers[r], 0) + " customers</title>";
    Appendf(out,
            "</circle><text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">",
            cx, cy - radius - 4);
    *out += HtmlEscape(m.names[r]) + " (" + Grouped(customers[r], 0) + ")</text>\n";
  }
  *out += "</svg>\n";
  HowToRead(out,
            "each bubble is a cluster centre in the model's standardised feature space, projected "
            "on the two directions along which the centres differ most; bubble area is "
            "proportional to the segment's customers. Centres close together are segments that "
            "behave alike; the axis titles give each direction's share of the spread between the "
            "centres and the feature weighing most in it.");
}

// The shapes the model plots index by (LoadReportData always gives them; hand-made data may not).
bool ModelIsConsistent(const ReportModel& m) {
  const size_t k = m.k > 0 ? m.k : 0, d = m.d > 0 ? m.d : 0;
  return k >= 1 && d >= 1 && m.centres.size() == k * d && m.ids.size() == k &&
         m.names.size() == k && m.feature_names.size() == d;
}

}  // namespace

std::string RenderReportHtml(const ReportData& data) {
  std::string out;
  out.reserve(64 * 1024);
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>";
  out += "streamrec segment report";
  if (data.model) out += " (model v" + std::to_string(data.model->version) + ")";
  out += "</title>\n<style>";
  out += kStyle;
  out += "</style>\n</head>\n<body>\n";
  RenderHeader(data, &out);
  RenderTable(data, &out);
  if (!data.segments.empty()) {
    RenderSizePlot(data, &out);
    RenderProfilePlot(data, &out);
  }
  if (data.model && ModelIsConsistent(*data.model)) {
    RenderTransitionPlot(data, &out);
    RenderCentrePlot(data, &out);
  } else {
    const std::string reason =
        data.model ? "the model's figures are inconsistent (k=" + std::to_string(data.model->k) +
                         ", d=" + std::to_string(data.model->d) + ")"
                   : data.model_unavailable_reason;
    out += "<h2>Segment transitions and cluster centres</h2>\n<p class=\"note\">Unavailable: " +
           HtmlEscape(reason) + "</p>\n";
  }
  out += "</body>\n</html>\n";
  return out;
}

}  // namespace streamrec
