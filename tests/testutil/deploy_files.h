// Reads the deployment files under deploy/ for tests: which metrics the dashboards and alert
// rules query, and the metric list of the contract (deploy/metrics.txt). Shared by the static
// checks of tests/deploy_test.cc and by tests that compare with a live /metrics page.
#ifndef STREAMREC_TESTS_TESTUTIL_DEPLOY_FILES_H_
#define STREAMREC_TESTS_TESTUTIL_DEPLOY_FILES_H_

#include <map>
#include <set>
#include <string>
#include <string_view>

namespace streamrec::testing {

// The streamrec_* metric names a PromQL expression mentions, with the histogram series suffixes
// (_bucket, _sum, _count) stripped: "histogram_quantile(0.9, rate(streamrec_x_seconds_bucket[5m]))"
// gives {"streamrec_x_seconds"}.
std::set<std::string> MetricNamesIn(std::string_view promql);

// Every metric name the deployment queries, mapped to the files (relative to `source_dir`) that
// use it: the expressions and template-variable queries ("expr", "query", "definition") of
// deploy/grafana/dashboards/*.json and the rule expressions of deploy/prometheus/alerts.yml.
// A file that does not parse fails the calling test (ADD_FAILURE) and contributes nothing.
std::map<std::string, std::set<std::string>> DeployMetricUses(const std::string& source_dir);

// The names alone.
std::set<std::string> DeployMetricNames(const std::string& source_dir);

// Names listed in a metric list file (deploy/metrics.txt): one per line, '#' comments and blank
// lines ignored.
std::set<std::string> ReadMetricList(const std::string& path);

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_DEPLOY_FILES_H_
