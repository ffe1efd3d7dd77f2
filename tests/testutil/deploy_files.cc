#include "testutil/deploy_files.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <vector>

namespace streamrec::testing {

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Collects the strings under the keys that hold PromQL in a Grafana dashboard, at any depth
// (rows nest panels; a template variable's query is a string or an object with "query").
void CollectQueries(simdjson::dom::element e, std::vector<std::string>* out) {
  if (e.is_object()) {
    for (auto [key, value] : e.get_object()) {
      if ((key == "expr" || key == "query" || key == "definition") && value.is_string()) {
        out->emplace_back(std::string_view(value.get_string()));
      } else {
        CollectQueries(value, out);
      }
    }
  } else if (e.is_array()) {
    for (simdjson::dom::element child : e.get_array()) CollectQueries(child, out);
  }
}

}  // namespace

std::set<std::string> MetricNamesIn(std::string_view promql) {
  static const std::regex kName("streamrec_[a-z0-9_]+");
  std::set<std::string> names;
  const std::string text(promql);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kName); it != std::sregex_iterator();
       ++it) {
    std::string name = it->str();
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        name.resize(name.size() - suffix.size());
        break;
      }
    }
    names.insert(std::move(name));
  }
  return names;
}

std::map<std::string, std::set<std::string>> DeployMetricUses(const std::string& source_dir) {
  std::map<std::string, std::set<std::string>> uses;
  const std::filesystem::path root(source_dir);

  std::vector<std::filesystem::path> dashboards;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(root / "deploy/grafana/dashboards", ec)) {
    if (entry.path().extension() == ".json") dashboards.push_back(entry.path());
  }
  if (ec) ADD_FAILURE() << "cannot list deploy/grafana/dashboards: " << ec.message();
  std::sort(dashboards.begin(), dashboards.end());
  for (const auto& path : dashboards) {
    const std::string rel = std::filesystem::relative(path, root).string();
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.load(path.string()).get(doc) != simdjson::SUCCESS) {
      ADD_FAILURE() << rel << " is not valid JSON";
      continue;
    }
    std::vector<std::string> queries;
    CollectQueries(doc, &queries);
    for (const auto& q : queries) {
      for (const auto& name : MetricNamesIn(q)) uses[name].insert(rel);
    }
  }

  const std::string alerts = "deploy/prometheus/alerts.yml";
  try {
    YAML::Node doc = YAML::LoadFile((root / alerts).string());
    for (const auto& group : doc["groups"]) {
      for (const auto& rule : group["rules"]) {
        if (!rule["expr"]) continue;
        for (const auto& name : MetricNamesIn(rule["expr"].as<std::string>())) {
          uses[name].insert(alerts);
        }
      }
    }
  } catch (const YAML::Exception& e) {
    ADD_FAILURE() << alerts << ": " << e.what();
  }
  return uses;
}

std::set<std::string> DeployMetricNames(const std::string& source_dir) {
  std::set<std::string> names;
  for (const auto& [name, files] : DeployMetricUses(source_dir)) names.insert(name);
  return names;
}

std::set<std::string> ReadMetricList(const std::string& path) {
  std::set<std::string> names;
  std::istringstream in(Slurp(path));
  std::string line;
  while (std::getline(in, line)) {
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (!line.empty()) names.insert(line);
  }
  return names;
}

}  // namespace streamrec::testing
