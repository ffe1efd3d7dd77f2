// Reports on a stored state: the segment overview (`streamrec segments` prints it as a table or
// JSON) and the analyst report (`streamrec report`), one self-contained HTML page with the segment
// table and inline SVG plots: sizes and revenue, R/F/M profiles, the transition heat map and the
// cluster centres projected on their first two principal components.
//
//   LoadSegmentOverview   store -> profiles, totals, the stored model (if any), transitions
//   LoadReportData        store -> ReportData (plain figures, no model types)
//   RenderReportHtml      ReportData -> HTML (pure: same data, same bytes)
#ifndef STREAMREC_REPORT_H_
#define STREAMREC_REPORT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "streamrec/kmeans_segmenter.h"
#include "streamrec/replay.h"
#include "streamrec/state_store.h"
#include "streamrec/status.h"
#include "streamrec/v1/model.pb.h"

namespace streamrec {

// What the stored state says about its segments.
struct SegmentOverview {
  /// ProfileSegments(store): one profile per stored cluster id, in cluster order.
  std::vector<SegmentProfile> profiles;
  uint64_t total_customers = 0;
  double total_revenue = 0;
  /// The stored current model (with its online centres); nullopt when none is stored (the rule
  /// segmenter, or before the first fit).
  std::optional<v1::SegmentModel> proto;
  /// The fitted version built from `proto`; null when there is no proto or it does not build
  /// (then `model_status` says why).
  std::shared_ptr<const SegmentModelVersion> model;
  Status model_status;
  /// SumTransitions(*proto): (from cluster id, to cluster id) -> customer moves; empty without
  /// a model.
  std::map<std::pair<int32_t, int32_t>, uint64_t> transitions;
  /// Event-time days ("YYYY-MM-DD", UTC) of the oldest and newest stored transition day; empty
  /// when none is stored.
  std::string transitions_first_day, transitions_last_day;

  // The segment name of cluster id `id`: the model's, else the stored customers', else "#id".
  std::string NameOf(int32_t id) const;
};

// Reads the overview of `store`. A missing or unreadable model is not an error (see
// SegmentOverview::model_status); a failing customer scan is.
[[nodiscard]] StatusOr<SegmentOverview> LoadSegmentOverview(StateStore* store);

// One row of the report's segment table.
struct ReportSegment {
  SegmentProfile profile;
  /// From the model's cluster of the same id; empty / 0 when the segment has none (rule
  /// segments, "Unscored").
  std::string action;
  uint32_t r_score = 0, f_score = 0, m_score = 0;  // 1..5; 0 = unknown
};

// The model part of the report (present only for a K-Means model).
struct ReportModel {
  uint64_t version = 0;
  int k = 0;
  int d = 0;
  int64_t created_event_time_ms = 0;  // event time of the re-fit
  double objective = 0;
  double silhouette = 0;
  uint64_t fit_points = 0;
  std::vector<std::string> feature_names;  // d
  /// Per centre row: stable cluster id and segment name.
  std::vector<int32_t> ids;
  std::vector<std::string> names;
  /// Current (online) centres, k x d row-major, in the model's transformed space.
  std::vector<double> centres;
  /// (from cluster id, to cluster id) -> customer moves over the stored window.
  std::map<std::pair<int32_t, int32_t>, uint64_t> transitions;
  std::string transitions_first_day, transitions_last_day;
};

// Everything the HTML report shows. Plain figures, so tests can build one by hand.
struct ReportData {
  /// Shown in the title (e.g. the state directory); may be empty.
  std::string source;
  uint64_t total_customers = 0;
  double total_revenue = 0;
  std::vector<ReportSegment> segments;
  std::optional<ReportModel> model;
  /// Why there is no model (shown instead of the model plots) when `model` is empty.
  std::string model_unavailable_reason;
};

// Reads the report's figures from `store`. NotFound when the store holds no customer; a store
// without a (readable) model gives a ReportData without `model` and with the reason.
[[nodiscard]] StatusOr<ReportData> LoadReportData(StateStore* store);

// The report as one HTML document: inline CSS and SVG only (no script, no external reference).
// Every string from the data is HTML-escaped; every number written is finite.
std::string RenderReportHtml(const ReportData& data);

// The first two principal components of the rows of a k x d matrix (row-major), unweighted.
struct CentreProjection {
  std::vector<double> x, y;  // k coordinates on PC1 and PC2 (0 where a component is missing)
  double explained[2] = {0, 0};  // share of the total variance on PC1, PC2 (0 when there is none)
  /// Per component, the index of the feature with the largest absolute loading (-1: none).
  int top_feature[2] = {-1, -1};
};
// REQUIRES: values.size() == k * d, k >= 1, d >= 1. Signs are fixed so that each component's
// largest loading is positive (deterministic output).
CentreProjection ProjectCentres(const std::vector<double>& values, int k, int d);

// `text` with & < > " ' replaced by character references.
std::string HtmlEscape(std::string_view text);

}  // namespace streamrec

#endif  // STREAMREC_REPORT_H_
