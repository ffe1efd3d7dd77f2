// The analyst report: the HTML renderer on hand-made figures (rows, escaping, one SVG per plot,
// self-contained, finite numbers, degenerate models), the loader on an in-memory store, the
// `streamrec report` command's errors, and an end-to-end run: replay a slice of the real data,
// write the report, render it with headless Chromium and check the screenshot is not blank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <tuple>

#include "streamrec/features.h"
#include "streamrec/report.h"
#include "streamrec/time_util.h"
#include "streamrec/v1/state.pb.h"
#include "testutil/png.h"
#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::ProcessResult;
using testing::RunProcess;
using testing::StreamrecBinary;
using testing::TempDir;

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

ReportSegment Segment(int32_t cluster, const std::string& name, uint64_t customers,
                      double revenue, uint32_t r, uint32_t f, uint32_t m,
                      const std::string& action) {
  ReportSegment s;
  s.profile.cluster = cluster;
  s.profile.segment = name;
  s.profile.customers = customers;
  s.profile.revenue = revenue;
  s.profile.mean_recency_days = 10.0 + cluster * 30;
  s.profile.mean_frequency = 8.0 / (cluster + 1);
  s.profile.mean_monetary = customers > 0 ? revenue / customers : 0;
  s.r_score = r;
  s.f_score = f;
  s.m_score = m;
  s.action = action;
  return s;
}

// Three segments (one named like an injection), a k=3 x d=3 model and some moves.
ReportData ThreeSegments() {
  ReportData data;
  data.source = "/tmp/state";
  data.segments = {
      Segment(0, "Champions", 120, 54000.5, 5, 5, 5, "Reward them: early access, no discounts"),
      Segment(1, "At Risk", 300, 21000, 2, 3, 3, "Win back with a personal offer"),
      Segment(2, "<script>alert(1)</script>", 580, 9000, 1, 1, 2, "Tom & Jerry's \"cheap\" deal"),
  };
  for (const ReportSegment& s : data.segments) {
    data.total_customers += s.profile.customers;
    data.total_revenue += s.profile.revenue;
  }
  ReportModel m;
  m.version = 7;
  m.k = 3;
  m.d = 3;
  m.created_event_time_ms = 1323435000000;  // 2011-12-09T12:50:00Z
  m.objective = 1234.5678;
  m.silhouette = 0.4321;
  m.fit_points = 1000;
  m.feature_names = {"recency_days", "frequency", "monetary"};
  m.ids = {0, 1, 2};
  m.names = {"Champions", "At Risk", "<script>alert(1)</script>"};
  m.centres = {-1.2, 1.5, 1.8, 0.4, 0.1, 0.2, 1.1, -0.9, -1.0};
  m.transitions = {{{0, 1}, 17}, {{1, 2}, 42}, {{2, 1}, 5}, {{9, 0}, 3}};  // 9: retired
  m.transitions_first_day = "2011-11-10";
  m.transitions_last_day = "2011-12-09";
  data.model = std::move(m);
  return data;
}

// A model of one cluster on one feature: no spread to project.
ReportData OneClusterOneFeature() {
  ReportData data;
  data.segments = {Segment(4, "Everyone", 50, 0, 3, 3, 3, "Keep going")};
  data.total_customers = 50;
  ReportModel m;
  m.version = 1;
  m.k = 1;
  m.d = 1;
  m.feature_names = {"monetary"};
  m.ids = {4};
  m.names = {"Everyone"};
  m.centres = {0.0};
  data.model = std::move(m);
  return data;
}

void ExpectSelfContained(const std::string& html) {
  EXPECT_FALSE(std::regex_search(html, std::regex(R"((src|href)\s*=\s*["']?\s*(https?:)?//)",
                                                  std::regex::icase)))
      << "external reference";
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(<script)", std::regex::icase)));
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(<link\b)", std::regex::icase)));
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(@import|@font-face|url\(\s*["']?http)",
                                                  std::regex::icase)));
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
}

void ExpectFiniteNumbers(const std::string& html) {
  std::smatch match;
  EXPECT_FALSE(std::regex_search(html, match, std::regex(R"([^a-z](nan|inf)[^a-z])",
                                                         std::regex::icase)))
      << "non-finite number: ..." << match.str() << "...";
}

TEST(ReportRenderTest, HasEverySegmentRowWithItsFiguresAndAction) {
  const ReportData data = ThreeSegments();
  const std::string html = RenderReportHtml(data);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(Count(html, "<tr><td class=\"name\">"), 3u);
  EXPECT_NE(html.find(">Champions</td><td>0</td><td>120</td><td>12.0%</td><td>54,000.50</td>"
                      "<td>64.3%</td><td>450.00</td>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find(">At Risk</td><td>1</td><td>300</td><td>30.0%</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>2</td><td>3</td><td>3</td><td class=\"action\">Win back with a "
                      "personal offer</td>"),
            std::string::npos);
  EXPECT_NE(html.find("Reward them: early access, no discounts"), std::string::npos);
  // Header: version, k, re-fit time, objective, silhouette, totals.
  EXPECT_NE(html.find("<dd>v7</dd>"), std::string::npos);
  EXPECT_NE(html.find("Clusters (k)</dt><dd>3</dd>"), std::string::npos);
  EXPECT_NE(html.find("2011-12-09T12:50:00Z"), std::string::npos);
  EXPECT_NE(html.find("<dd>1,234.57</dd>"), std::string::npos);
  EXPECT_NE(html.find("<dd>0.432</dd>"), std::string::npos);
  EXPECT_NE(html.find("Customers</dt><dd>1,000</dd>"), std::string::npos);
  EXPECT_NE(html.find("Revenue</dt><dd>84,000.50</dd>"), std::string::npos);
  EXPECT_EQ(Count(html, "How to read this"), 5u);  // the table and the four plots
}

TEST(ReportRenderTest, EscapesEveryStringFromTheData) {
  ReportData data = ThreeSegments();
  data.source = "/tmp/<b>state</b>";
  const std::string html = RenderReportHtml(data);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<b>state"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("Tom &amp; Jerry&#39;s &quot;cheap&quot; deal"), std::string::npos);
  EXPECT_EQ(HtmlEscape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

TEST(ReportRenderTest, DrawsEveryPlotAsInlineSvg) {
  const std::string html = RenderReportHtml(ThreeSegments());
  EXPECT_EQ(Count(html, "<svg "), 4u);
  EXPECT_EQ(Count(html, "</svg>"), 4u);
  for (const char* label : {"Segment sizes and revenue", "RFM profile per segment",
                            "Segment transition heat map",
                            "Cluster centres on two principal components"}) {
    EXPECT_NE(html.find(std::string("aria-label=\"") + label + "\""), std::string::npos) << label;
  }
  // Heat map: counts in the cells, a legend up to the largest count, the window's days.
  EXPECT_NE(html.find(">42</text>"), std::string::npos);
  EXPECT_NE(html.find("linearGradient id=\"heat-scale\""), std::string::npos);
  EXPECT_NE(html.find("2011-11-10 to 2011-12-09"), std::string::npos);
  EXPECT_NE(html.find(">At Risk (1)</text>"), std::string::npos);
  EXPECT_NE(html.find(">retired #9</text>"), std::string::npos);
  EXPECT_NE(html.find("(67 moves in all)"), std::string::npos);
  // Centre plot: one bubble per centre, axis titles with the explained share.
  EXPECT_EQ(Count(html, "<circle "), 3u);
  EXPECT_TRUE(std::regex_search(html, std::regex(R"(PC1 \(\d+\.\d% of variance; mostly )")));
  EXPECT_TRUE(std::regex_search(html, std::regex(R"(PC2 \(\d+\.\d% of variance; mostly )")));
}

TEST(ReportRenderTest, IsSelfContainedWithFiniteNumbers) {
  for (const ReportData& data : {ThreeSegments(), OneClusterOneFeature()}) {
    const std::string html = RenderReportHtml(data);
    ExpectSelfContained(html);
    ExpectFiniteNumbers(html);
  }
}

TEST(ReportRenderTest, OneClusterOnOneFeatureRenders) {
  const std::string html = RenderReportHtml(OneClusterOneFeature());
  EXPECT_EQ(Count(html, "<svg "), 4u);
  EXPECT_EQ(Count(html, "<circle "), 1u);
  EXPECT_NE(html.find("PC1 (no spread between the centres)"), std::string::npos);
  EXPECT_NE(html.find("PC2 (none: the model has one feature)"), std::string::npos);
  // Zero revenue: shares are 0, not a division by zero.
  EXPECT_NE(html.find("<td>0.00</td><td>0.0%</td>"), std::string::npos) << html;
  ExpectFiniteNumbers(html);
}

TEST(ReportRenderTest, WithoutAModelShowsTheTableAndSaysWhy) {
  ReportData data = ThreeSegments();
  data.model.reset();
  for (ReportSegment& s : data.segments) {
    s.r_score = s.f_score = s.m_score = 0;
    s.action.clear();
  }
  data.model_unavailable_reason = "no K-Means segment model is stored";
  const std::string html = RenderReportHtml(data);
  EXPECT_EQ(Count(html, "<tr><td class=\"name\">"), 3u);
  EXPECT_EQ(Count(html, "<svg "), 2u);  // sizes, and the profile from the means
  EXPECT_NE(html.find("R/F/M profile per segment (means, relative to the largest)"),
            std::string::npos);
  EXPECT_NE(html.find("unavailable: no K-Means segment model is stored"), std::string::npos);
  EXPECT_EQ(html.find("<circle "), std::string::npos);
  ExpectSelfContained(html);
  ExpectFiniteNumbers(html);
}

TEST(ReportRenderTest, InconsistentModelFiguresAreRefusedNotIndexed) {
  ReportData data = ThreeSegments();
  data.model->centres.pop_back();
  const std::string html = RenderReportHtml(data);
  EXPECT_EQ(Count(html, "<svg "), 2u);
  EXPECT_NE(html.find("the model&#39;s figures are inconsistent (k=3, d=3)"), std::string::npos);
}

TEST(ReportRenderTest, SameDataSameBytes) {
  EXPECT_EQ(RenderReportHtml(ThreeSegments()), RenderReportHtml(ThreeSegments()));
}

TEST(ReportProjectionTest, CentresOnALineHaveAllVarianceOnTheFirstComponent) {
  // Three centres differing only in feature 1 (plus a constant feature 0).
  const CentreProjection p = ProjectCentres({5, -2, 0, 5, 0, 0, 5, 4, 0}, 3, 3);
  EXPECT_NEAR(p.explained[0], 1.0, 1e-9);
  EXPECT_NEAR(p.explained[1], 0.0, 1e-9);
  EXPECT_EQ(p.top_feature[0], 1);
  EXPECT_EQ(p.top_feature[1], -1);
  // Centred on the mean (2/3), sign fixed so the loading is positive.
  EXPECT_NEAR(p.x[0], -2 - 2.0 / 3, 1e-9);
  EXPECT_NEAR(p.x[2], 4 - 2.0 / 3, 1e-9);
  for (double y : p.y) EXPECT_NEAR(y, 0.0, 1e-9);
}

TEST(ReportProjectionTest, TwoDimensionalSpreadSplitsTheVariance) {
  // A 2-D cross: variance 8 along feature 0, 2 along feature 1.
  const CentreProjection p = ProjectCentres({-2, 0, 2, 0, 0, -1, 0, 1}, 4, 2);
  EXPECT_NEAR(p.explained[0], 0.8, 1e-9);
  EXPECT_NEAR(p.explained[1], 0.2, 1e-9);
  EXPECT_EQ(p.top_feature[0], 0);
  EXPECT_EQ(p.top_feature[1], 1);
}

TEST(ReportProjectionTest, DegenerateInputsGiveZeros) {
  for (const auto& [values, k, d] :
       std::vector<std::tuple<std::vector<double>, int, int>>{{{3.0, 1.0}, 1, 2},
                                                              {{1.0, 1.0, 1.0}, 3, 1},
                                                              {{0.5}, 1, 1}}) {
    const CentreProjection p = ProjectCentres(values, k, d);
    ASSERT_EQ(p.x.size(), static_cast<size_t>(k));
    for (int i = 0; i < k; ++i) {
      EXPECT_EQ(p.x[i], 0.0);
      EXPECT_EQ(p.y[i], 0.0);
    }
    EXPECT_EQ(p.explained[0], 0.0);
    EXPECT_EQ(p.top_feature[0], -1);
  }
}

void PutCustomer(StateStore* store, const std::string& id, int32_t cluster,
                 const std::string& segment, uint64_t baskets, double spend) {
  v1::CustomerState state;
  state.set_customer_id(id);
  state.set_cluster(cluster);
  state.set_segment(segment);
  state.set_purchase_count(baskets);
  state.set_event_count(baskets);
  state.set_total_spend(spend);
  state.set_first_time_ms(1000 * kMillisPerDay);
  state.set_last_time_ms((1000 + baskets) * kMillisPerDay);
  WriteSet writes;
  writes.Put(Column::kCustomers, PartitionKey(0, id), EncodeState(state));
  ASSERT_OK(store->Write(writes));
}

TEST(ReportLoadTest, StoreWithoutCustomersIsNotFound) {
  auto store = NewMemStateStore();
  auto data = LoadReportData(store.get());
  ASSERT_FALSE(data.ok());
  EXPECT_TRUE(data.status().IsNotFound()) << data.status().ToString();
  EXPECT_NE(data.status().message().find("no customers"), std::string::npos);
}

TEST(ReportLoadTest, RuleSegmentsWithoutAModelStillHaveTheirTable) {
  auto store = NewMemStateStore();
  PutCustomer(store.get(), "a", 2, "Loyal", 5, 100);
  PutCustomer(store.get(), "b", 2, "Loyal", 7, 300);
  PutCustomer(store.get(), "c", 0, "New", 1, 20);
  ASSERT_OK_AND_ASSIGN(data, LoadReportData(store.get()));
  EXPECT_FALSE(data.model.has_value());
  EXPECT_NE(data.model_unavailable_reason.find("no K-Means segment model"), std::string::npos);
  EXPECT_EQ(data.total_customers, 3u);
  EXPECT_DOUBLE_EQ(data.total_revenue, 420);
  ASSERT_EQ(data.segments.size(), 2u);
  EXPECT_EQ(data.segments[0].profile.segment, "New");
  EXPECT_EQ(data.segments[1].profile.customers, 2u);
  EXPECT_DOUBLE_EQ(data.segments[1].profile.mean_frequency, 6);
  EXPECT_EQ(data.segments[1].r_score, 0u);
  const std::string html = RenderReportHtml(data);
  EXPECT_NE(html.find(">Loyal</td><td>2</td><td>2</td><td>66.7%</td><td>400.00</td>"),
            std::string::npos);
}

// ---- the command and the end-to-end rendering ------------------------------------------------

ProcessResult Replay(const std::string& input, const std::string& state,
                     const std::map<std::string, std::string>& env = {}) {
  return RunProcess(
      {StreamrecBinary(), "replay", "--input", input, "--state-dir", state, "--quiet"}, env);
}

TEST(ReportCommandTest, RefusesWhatIsNotAStateAndWhatItCannotWrite) {
  TempDir dir;
  ProcessResult missing = RunProcess(
      {StreamrecBinary(), "report", "--state-dir", dir.File("nope"), "--out", dir.File("r.html")});
  EXPECT_TRUE(missing.exited && missing.exit_code != 0) << missing.output;
  EXPECT_NE(missing.output.find("nope"), std::string::npos) << missing.output;

  std::filesystem::create_directory(dir.File("empty"));
  ProcessResult not_state = RunProcess({StreamrecBinary(), "report", "--state-dir",
                                        dir.File("empty"), "--out", dir.File("r.html")});
  EXPECT_TRUE(not_state.exited && not_state.exit_code == 1) << not_state.output;
  EXPECT_NE(not_state.output.find("not a streamrec state directory"), std::string::npos)
      << not_state.output;
  EXPECT_TRUE(std::filesystem::is_empty(dir.File("empty"))) << "no store created in it";

  {
    StoreOptions options;
    options.path = dir.File("no-customers");
    ASSERT_OK_AND_ASSIGN(store, OpenRocksStateStore(options));
  }
  ProcessResult no_customers = RunProcess({StreamrecBinary(), "report", "--state-dir",
                                           dir.File("no-customers"), "--out", dir.File("r.html")});
  EXPECT_TRUE(no_customers.exited && no_customers.exit_code == 1) << no_customers.output;
  EXPECT_NE(no_customers.output.find("no customers"), std::string::npos) << no_customers.output;

  // Rule segments: no model, still a report; an output path under a regular file fails.
  testing::WriteFile(dir.File("events.csv"),
                     "customer_id,item_id,timestamp,quantity,unit_price,amount,channel\n"
                     "c1,A,2011-01-01 10:00:00,1,1.5,1.5,web\n"
                     "c2,B,2011-01-02 10:00:00,2,3,6,web\n"
                     "c1,B,2011-01-03 10:00:00,1,3,3,web\n");
  ProcessResult replay = Replay(dir.File("events.csv"), dir.File("rules"),
                                {{"STREAMREC_SEGMENTS__METHOD", "rules"}});
  ASSERT_TRUE(replay.exited && replay.exit_code == 0) << replay.output;
  ProcessResult rules = RunProcess({StreamrecBinary(), "report", "--state-dir", dir.File("rules"),
                                    "--out", dir.File("rules.html")});
  EXPECT_TRUE(rules.exited && rules.exit_code == 0) << rules.output;
  EXPECT_NE(rules.output.find("model plots unavailable"), std::string::npos) << rules.output;
  EXPECT_NE(rules.output.find("wrote " + dir.File("rules.html") + " ("), std::string::npos)
      << rules.output;
  const std::string html = testing::ReadFile(dir.File("rules.html"));
  EXPECT_EQ(Count(html, "<tr><td class=\"name\">"), 2u) << html;
  EXPECT_EQ(Count(html, "<svg "), 2u);

  testing::WriteFile(dir.File("a-file"), "x");
  ProcessResult unwritable = RunProcess({StreamrecBinary(), "report", "--state-dir",
                                         dir.File("rules"), "--out", dir.File("a-file/r.html")});
  EXPECT_TRUE(unwritable.exited && unwritable.exit_code == 1) << unwritable.output;
  EXPECT_NE(unwritable.output.find("cannot write " + dir.File("a-file/r.html")),
            std::string::npos)
      << unwritable.output;
}

constexpr char kChromium[] = "/usr/bin/chromium";

// Where the end-to-end test leaves its report and screenshot for a human to look at.
std::string ArtefactDir() {
  const char* base = std::getenv("TMPDIR");
  const std::string dir =
      std::string(base && *base ? base : "/tmp") + "/streamrec-report-chromium-test";
  std::filesystem::create_directories(dir);
  return dir;
}

// Needs Chromium (scripts/setup.sh --tests installs it); fails without it, never skips.
TEST(ReportChromiumTest, ReplayedStateRendersToANonBlankScreenshot) {
  ASSERT_TRUE(std::filesystem::exists(kChromium))
      << kChromium << " is missing: run `bash scripts/setup.sh --tests`";
  TempDir dir;
  const std::string state = dir.File("state");
  testing::WriteRetailSlice(dir.File("slice.csv"), 20000);
  ProcessResult replay = Replay(dir.File("slice.csv"), state);
  ASSERT_TRUE(replay.exited && replay.exit_code == 0) << replay.output;

  const std::string artefacts = ArtefactDir();
  const std::string html_path = artefacts + "/report.html";
  const std::string png_path = artefacts + "/report.png";
  std::filesystem::remove(png_path);
  ProcessResult report =
      RunProcess({StreamrecBinary(), "report", "--state-dir", state, "--out", html_path});
  ASSERT_TRUE(report.exited && report.exit_code == 0) << report.output;
  EXPECT_NE(report.output.find("wrote " + html_path), std::string::npos) << report.output;
  const std::string html = testing::ReadFile(html_path);
  EXPECT_EQ(Count(html, "<svg "), 4u);
  ExpectSelfContained(html);
  ExpectFiniteNumbers(html);

  // The library gives the same page as the command.
  {
    StoreOptions options;
    options.path = state;
    ASSERT_OK_AND_ASSIGN(store, OpenRocksStateStore(options));
    ASSERT_OK_AND_ASSIGN(data, LoadReportData(store.get()));
    ASSERT_TRUE(data.model.has_value());
    EXPECT_GE(data.model->k, 3);
    data.source = state;
    EXPECT_EQ(RenderReportHtml(data) + "\n", html);
  }

  ProcessResult chromium = RunProcess(
      {"/usr/bin/timeout", "60", kChromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
       "--no-first-run", "--disable-background-networking", "--disable-component-update",
       "--disable-sync", "--user-data-dir=" + dir.File("chromium-profile"),
       "--window-size=1280,2400", "--screenshot=" + png_path, "file://" + html_path});
  ASSERT_TRUE(chromium.exited && chromium.exit_code == 0) << chromium.output;
  std::cout << "report: " << html_path << "\nscreenshot: " << png_path << std::endl;
  RecordProperty("screenshot", png_path);

  ASSERT_OK_AND_ASSIGN(png, testing::DecodePngFile(png_path));
  EXPECT_EQ(png.width, 1280u);
  EXPECT_EQ(png.height, 2400u);
  std::set<uint32_t> colours(png.pixels.begin(), png.pixels.end());
  size_t non_white = 0, saturated = 0;
  for (uint32_t p : png.pixels) {
    const int r = p >> 16, g = (p >> 8) & 0xff, b = p & 0xff;
    if (r < 240 || g < 240 || b < 240) ++non_white;
    if (std::max({r, g, b}) - std::min({r, g, b}) > 80) ++saturated;  // bars, cells, bubbles
  }
  const double n = static_cast<double>(png.pixels.size());
  EXPECT_GT(colours.size(), 100u) << png_path;
  EXPECT_GT(non_white / n, 0.05) << png_path;
  EXPECT_GT(saturated / n, 0.01) << png_path;
}

}  // namespace
}  // namespace streamrec
