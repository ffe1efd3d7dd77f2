// The deployment files under deploy/ and docker-compose.yml agree with each other and with the
// configuration and metrics contract: promtool accepts the Prometheus files and the alert unit
// tests pass, `docker-compose config` accepts the compose file and its topics, ports and scrape
// target match deploy/streamrec.yaml, the k8s ConfigMap embeds that file, the dashboards use the
// provisioned datasource and only contract metrics, and the runtime image carries every shared
// library of the binary.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "testutil/deploy_files.h"
#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::ReadFile;

const std::string kSource = STREAMREC_SOURCE_DIR;

struct ShellResult {
  int exit_code = -1;
  std::string out;  // stdout only (stderr as the command redirects it)
};

// Runs `command` with /bin/sh in the source directory and captures its standard output.
ShellResult Shell(const std::string& command) {
  ShellResult r;
  std::FILE* pipe = ::popen(("cd '" + kSource + "' && " + command).c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool HaveTool(const std::string& tool) {
  return Shell("command -v " + tool + " >/dev/null 2>&1").exit_code == 0;
}

// The port of "host:port".
std::string PortOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? "" : address.substr(colon + 1);
}
std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

YAML::Node StreamrecYaml() { return YAML::LoadFile(kSource + "/deploy/streamrec.yaml"); }

std::set<std::string> ConfiguredTopics(const YAML::Node& config) {
  std::set<std::string> topics;
  for (const char* key : {"input_topic", "output_topic", "dead_letter_topic", "segment_change_topic"}) {
    EXPECT_TRUE(config["kafka"][key]) << "deploy/streamrec.yaml sets no kafka." << key;
    if (config["kafka"][key]) topics.insert(config["kafka"][key].as<std::string>());
  }
  return topics;
}

// A compose command or entrypoint (a string or a list) as one string.
std::string Joined(const YAML::Node& node) {
  if (!node) return "";
  if (node.IsScalar()) return node.as<std::string>();
  std::string s;
  for (const auto& part : node) s += part.as<std::string>() + " ";
  return s;
}

// Published ports of a compose service as "published:target": docker-compose 1.29 prints
// {published, target} maps, the Compose v2 CLI strings or maps with string values.
std::set<std::string> PublishedPorts(const YAML::Node& service) {
  std::set<std::string> ports;
  for (const auto& p : service["ports"]) {
    if (p.IsScalar()) {
      ports.insert(p.as<std::string>());
    } else {
      ports.insert(p["published"].as<std::string>() + ":" + p["target"].as<std::string>());
    }
  }
  return ports;
}

// "source:target[:mode]" of a compose volume entry (short or long syntax), source as given.
std::map<std::string, std::string> Mounts(const YAML::Node& service) {
  std::map<std::string, std::string> by_target;
  for (const auto& v : service["volumes"]) {
    if (v.IsScalar()) {
      std::string s = v.as<std::string>();
      size_t first = s.find(':');
      size_t second = s.find(':', first + 1);
      by_target[s.substr(first + 1, second == std::string::npos ? std::string::npos
                                                                 : second - first - 1)] =
          s.substr(0, first);
    } else {
      by_target[v["target"].as<std::string>()] = v["source"].as<std::string>();
    }
  }
  return by_target;
}

// ---- Prometheus ---------------------------------------------------------------------------------

TEST(DeployPrometheusTest, PromtoolAcceptsConfigRulesAndAlertUnitTests) {
  ASSERT_TRUE(HaveTool("promtool"))
      << "promtool is missing: install Debian's prometheus package (bash scripts/setup.sh --tests)";
  for (const std::string cmd : {"promtool check config deploy/prometheus/prometheus.yml",
                                "promtool check rules deploy/prometheus/alerts.yml",
                                "promtool test rules deploy/prometheus/alerts_test.yml"}) {
    ShellResult r = Shell(cmd + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.out;
  }
}

TEST(DeployPrometheusTest, EveryAlertHasForSeveritySummaryAndDescription) {
  YAML::Node doc = YAML::LoadFile(kSource + "/deploy/prometheus/alerts.yml");
  std::set<std::string> alerts;
  for (const auto& group : doc["groups"]) {
    for (const auto& rule : group["rules"]) {
      if (!rule["alert"]) continue;
      const std::string name = rule["alert"].as<std::string>();
      alerts.insert(name);
      EXPECT_TRUE(rule["for"]) << name;
      ASSERT_TRUE(rule["labels"] && rule["labels"]["severity"]) << name;
      EXPECT_TRUE((std::set<std::string>{"warning", "critical"}).count(
          rule["labels"]["severity"].as<std::string>()))
          << name;
      EXPECT_TRUE(rule["annotations"]["summary"]) << name;
      EXPECT_TRUE(rule["annotations"]["description"]) << name;
    }
  }
  // The operations issue's list, and the reliability issue's storage alert; README's Deployment
  // section explains each.
  EXPECT_EQ(alerts, (std::set<std::string>{
                        "StreamrecTargetDown", "StreamrecNotReady", "StreamrecStorageNotWritable",
                        "StreamrecConsumerLagGrowing",
                        "StreamrecNoEvents", "StreamrecDeadLettersRising",
                        "StreamrecSegmentRefitFailing", "StreamrecAlsRefitFailing",
                        "StreamrecOutboxBacklog"}));
  const std::string readme = ReadFile(kSource + "/README.md");
  for (const auto& name : alerts) EXPECT_NE(readme.find(name), std::string::npos) << name;
}

// ---- docker-compose -----------------------------------------------------------------------------

class DeployComposeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(HaveTool("docker-compose"))
        << "docker-compose is missing: install Debian's docker-compose (bash scripts/setup.sh --tests)";
    const std::string err = std::filesystem::temp_directory_path() / "streamrec-compose-err.txt";
    ShellResult r = Shell("docker-compose -f docker-compose.yml config 2>'" + err + "'");
    ASSERT_EQ(r.exit_code, 0) << "docker-compose config failed:\n" << ReadFile(err);
    std::filesystem::remove(err);
    compose_ = new YAML::Node(YAML::Load(r.out));
  }
  static void TearDownTestSuite() {
    delete compose_;
    compose_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(compose_, nullptr) << "docker-compose config did not run"; }
  static YAML::Node Service(const std::string& name) { return (*compose_)["services"][name]; }
  static YAML::Node* compose_;
};
YAML::Node* DeployComposeTest::compose_ = nullptr;

TEST_F(DeployComposeTest, TopicSetUpCreatesTheConfiguredTopicsWithACompactedOutput) {
  const YAML::Node config = StreamrecYaml();
  const std::string script = Joined(Service("kafka-setup")["command"]);
  std::set<std::string> created;
  std::string output_line;
  std::istringstream lines(script);
  std::string line;
  static const std::regex kTopic("--topic\\s+([A-Za-z0-9._-]+)");
  while (std::getline(lines, line)) {
    std::smatch m;
    if (line.find("--create") == std::string::npos || !std::regex_search(line, m, kTopic)) continue;
    created.insert(m[1]);
    if (m[1] == config["kafka"]["output_topic"].as<std::string>()) output_line = line;
  }
  EXPECT_EQ(created, ConfiguredTopics(config)) << script;
  EXPECT_NE(output_line.find("cleanup.policy=compact"), std::string::npos)
      << "the recommendations topic must be compacted (one list per customer key): " << output_line;
  EXPECT_NE(script.find("--if-not-exists"), std::string::npos) << "set-up must be re-runnable";
}

TEST_F(DeployComposeTest, StreamrecServiceRunsTheDeployConfigAndPublishesItsPorts) {
  const YAML::Node config = StreamrecYaml();
  const YAML::Node streamrec = Service("streamrec");
  ASSERT_TRUE(streamrec) << "no service 'streamrec'";
  EXPECT_EQ(streamrec["build"]["dockerfile"].as<std::string>(), "deploy/Dockerfile");
  EXPECT_NE(Joined(streamrec["command"]).find("run --config /etc/streamrec/streamrec.yaml"),
            std::string::npos);
  const auto mounts = Mounts(streamrec);
  ASSERT_TRUE(mounts.count("/etc/streamrec/streamrec.yaml"));
  EXPECT_EQ(std::filesystem::path(mounts.at("/etc/streamrec/streamrec.yaml")).lexically_normal(),
            std::filesystem::path(kSource + "/deploy/streamrec.yaml").lexically_normal());
  ASSERT_TRUE(mounts.count(config["state"]["dir"].as<std::string>()))
      << "the state directory needs a volume";
  EXPECT_TRUE((*compose_)["volumes"][mounts.at(config["state"]["dir"].as<std::string>())])
      << "the state volume should be a named volume";
  EXPECT_EQ(streamrec["depends_on"]["kafka-setup"]["condition"].as<std::string>(),
            "service_completed_successfully");

  const std::string metrics_port = PortOf(config["metrics"]["listen"].as<std::string>());
  const std::string http_port = PortOf(config["http"]["listen"].as<std::string>());
  EXPECT_EQ(PublishedPorts(streamrec),
            (std::set<std::string>{metrics_port + ":" + metrics_port, http_port + ":" + http_port}));

  // The brokers the configuration names are the compose Kafka's advertised in-network listener.
  const std::string brokers = config["kafka"]["brokers"].as<std::string>();
  ASSERT_TRUE(Service(HostOf(brokers))) << brokers << " is not a compose service";
  EXPECT_NE(Service(HostOf(brokers))["environment"]["KAFKA_ADVERTISED_LISTENERS"]
                .as<std::string>()
                .find("//" + brokers),
            std::string::npos);
}

TEST_F(DeployComposeTest, GeneratorProducesToTheConfiguredInputTopic) {
  const YAML::Node config = StreamrecYaml();
  const std::string command = Joined(Service("generator")["command"]);
  EXPECT_NE(command.find("streamrec produce"), std::string::npos) << command;
  EXPECT_NE(command.find("--topic " + config["kafka"]["input_topic"].as<std::string>() + " "),
            std::string::npos) << command;
  EXPECT_NE(command.find("--brokers " + config["kafka"]["brokers"].as<std::string>() + " "),
            std::string::npos) << command;
}

TEST_F(DeployComposeTest, PrometheusScrapesTheStreamrecServiceOnItsMetricsPort) {
  const YAML::Node config = StreamrecYaml();
  const YAML::Node prometheus = YAML::LoadFile(kSource + "/deploy/prometheus/prometheus.yml");
  std::vector<std::string> targets;
  for (const auto& job : prometheus["scrape_configs"]) {
    if (job["job_name"].as<std::string>() != "streamrec") continue;
    for (const auto& sc : job["static_configs"]) {
      for (const auto& t : sc["targets"]) targets.push_back(t.as<std::string>());
    }
  }
  ASSERT_EQ(targets.size(), 1u) << "one static target for job streamrec";
  EXPECT_TRUE(Service(HostOf(targets[0]))) << targets[0] << ": not a compose service";
  EXPECT_EQ(PortOf(targets[0]), PortOf(config["metrics"]["listen"].as<std::string>()));

  // Prometheus reads this directory's prometheus.yml (and alerts.yml beside it).
  const auto mounts = Mounts(Service("prometheus"));
  ASSERT_TRUE(mounts.count("/etc/prometheus"));
  EXPECT_EQ(std::filesystem::path(mounts.at("/etc/prometheus")).lexically_normal(),
            std::filesystem::path(kSource + "/deploy/prometheus").lexically_normal());
  EXPECT_NE(Joined(Service("prometheus")["command"]).find("--config.file=/etc/prometheus/prometheus.yml"),
            std::string::npos);
}

TEST_F(DeployComposeTest, GrafanaMountsProvisioningWhereItsProviderLooks) {
  const auto mounts = Mounts(Service("grafana"));
  ASSERT_TRUE(mounts.count("/etc/grafana/provisioning"));
  EXPECT_EQ(std::filesystem::path(mounts.at("/etc/grafana/provisioning")).lexically_normal(),
            std::filesystem::path(kSource + "/deploy/grafana/provisioning").lexically_normal());
  const YAML::Node provider =
      YAML::LoadFile(kSource + "/deploy/grafana/provisioning/dashboards/streamrec.yml");
  const std::string path = provider["providers"][0]["options"]["path"].as<std::string>();
  ASSERT_TRUE(mounts.count(path)) << "dashboards provider reads " << path << ", not mounted";
  EXPECT_EQ(std::filesystem::path(mounts.at(path)).lexically_normal(),
            std::filesystem::path(kSource + "/deploy/grafana/dashboards").lexically_normal());
  // The datasource URL names the compose Prometheus.
  const YAML::Node ds = YAML::LoadFile(kSource + "/deploy/grafana/provisioning/datasources/prometheus.yml");
  std::string url = ds["datasources"][0]["url"].as<std::string>();
  url = url.substr(url.find("//") + 2);
  EXPECT_TRUE(Service(HostOf(url))) << url;
  EXPECT_EQ(PublishedPorts(Service("prometheus")).count(PortOf(url) + ":" + PortOf(url)), 1u);
}

// ---- Kubernetes ---------------------------------------------------------------------------------

TEST(DeployK8sTest, ConfigMapEmbedsTheDeployConfig) {
  const YAML::Node cm = YAML::LoadFile(kSource + "/deploy/k8s/configmap.yaml");
  ASSERT_EQ(cm["kind"].as<std::string>(), "ConfigMap");
  ASSERT_TRUE(cm["data"]["streamrec.yaml"]);
  EXPECT_EQ(cm["data"]["streamrec.yaml"].as<std::string>(), ReadFile(kSource + "/deploy/streamrec.yaml"))
      << "deploy/k8s/configmap.yaml must carry deploy/streamrec.yaml verbatim";
}

TEST(DeployK8sTest, KustomizationListsEveryManifestAndTheStatefulSetMatchesTheConfig) {
  const std::string dir = kSource + "/deploy/k8s";
  std::set<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".yaml" && name != "kustomization.yaml") files.insert(name);
  }
  std::set<std::string> listed;
  for (const auto& r : YAML::LoadFile(dir + "/kustomization.yaml")["resources"]) {
    listed.insert(r.as<std::string>());
  }
  EXPECT_EQ(listed, files);

  const YAML::Node config = StreamrecYaml();
  const YAML::Node sts = YAML::LoadFile(dir + "/statefulset.yaml");
  ASSERT_EQ(sts["kind"].as<std::string>(), "StatefulSet");
  const YAML::Node c = sts["spec"]["template"]["spec"]["containers"][0];
  std::map<std::string, int> ports;
  for (const auto& p : c["ports"]) ports[p["name"].as<std::string>()] = p["containerPort"].as<int>();
  EXPECT_EQ(std::to_string(ports["http"]), PortOf(config["http"]["listen"].as<std::string>()));
  EXPECT_EQ(std::to_string(ports["metrics"]), PortOf(config["metrics"]["listen"].as<std::string>()));
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
  std::set<std::string> env;
  for (const auto& e : c["env"]) env.insert(e["name"].as<std::string>());
  EXPECT_TRUE(env.count("STREAMREC_KAFKA__BROKERS"));
  EXPECT_TRUE(env.count("STREAMREC_HTTP__REFIT_TOKEN"));
  bool state_mounted = false;
  for (const auto& m : c["volumeMounts"]) {
    if (m["mountPath"].as<std::string>() == config["state"]["dir"].as<std::string>()) {
      state_mounted = m["name"].as<std::string>() ==
                      sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].as<std::string>();
    }
  }
  EXPECT_TRUE(state_mounted) << "state.dir must be on the volumeClaimTemplate";

  const YAML::Node pm = YAML::LoadFile(dir + "/podmonitor.yaml");
  EXPECT_EQ(pm["spec"]["podMetricsEndpoints"][0]["port"].as<std::string>(), "metrics");
}

// ---- Grafana --------------------------------------------------------------------------------------

// Walks panels, including those nested in rows.
void ForEachPanel(simdjson::dom::element panels,
                  const std::function<void(simdjson::dom::element)>& fn) {
  for (simdjson::dom::element p : panels.get_array()) {
    fn(p);
    simdjson::dom::element nested;
    if (p["panels"].get(nested) == simdjson::SUCCESS) ForEachPanel(nested, fn);
  }
}

TEST(DeployGrafanaTest, PanelsHaveUniqueIdsAndTheProvisionedDatasource) {
  const YAML::Node ds =
      YAML::LoadFile(kSource + "/deploy/grafana/provisioning/datasources/prometheus.yml");
  std::set<std::string> uids;
  for (const auto& d : ds["datasources"]) uids.insert(d["uid"].as<std::string>());
  ASSERT_FALSE(uids.empty());

  std::set<std::string> dashboards;
  for (const auto& e : std::filesystem::directory_iterator(kSource + "/deploy/grafana/dashboards")) {
    if (e.path().extension() == ".json") dashboards.insert(e.path().filename().string());
  }
  EXPECT_EQ(dashboards, (std::set<std::string>{"streamrec-ops.json", "streamrec-marketing.json"}));

  std::set<std::string> dashboard_uids;
  for (const auto& name : dashboards) {
    SCOPED_TRACE(name);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_EQ(parser.load(kSource + "/deploy/grafana/dashboards/" + name).get(doc),
              simdjson::SUCCESS);
    EXPECT_TRUE(dashboard_uids.insert(std::string(std::string_view(doc["uid"]))).second);
    EXPECT_GE(int64_t(doc["schemaVersion"]), 36);
    std::set<int64_t> ids;
    int panels = 0;
    auto check_datasource = [&](simdjson::dom::element holder, const std::string& what) {
      std::string_view uid;
      ASSERT_EQ(holder["datasource"]["uid"].get(uid), simdjson::SUCCESS) << what << ": no datasource uid";
      EXPECT_TRUE(uids.count(std::string(uid))) << what << ": datasource uid " << uid
                                                << " is not provisioned";
    };
    ForEachPanel(doc["panels"], [&](simdjson::dom::element p) {
      const int64_t id = int64_t(p["id"]);
      const std::string title = std::string(std::string_view(p["title"]));
      EXPECT_TRUE(ids.insert(id).second) << "duplicate panel id " << id << " (" << title << ")";
      if (std::string_view(p["type"]) == "row") return;
      ++panels;
      check_datasource(p, title);
      simdjson::dom::array targets;
      ASSERT_EQ(p["targets"].get(targets), simdjson::SUCCESS) << title << ": no targets";
      EXPECT_GT(targets.size(), 0u) << title;
      for (simdjson::dom::element t : targets) {
        check_datasource(t, title + " target");
        std::string_view expr;
        EXPECT_EQ(t["expr"].get(expr), simdjson::SUCCESS) << title;
        EXPECT_FALSE(expr.empty()) << title;
      }
      std::string_view unit;
      EXPECT_EQ(p["fieldConfig"]["defaults"]["unit"].get(unit), simdjson::SUCCESS) << title;
    });
    EXPECT_GT(panels, 10);
    for (simdjson::dom::element v : doc["templating"]["list"].get_array()) {
      check_datasource(v, "variable " + std::string(std::string_view(v["name"])));
    }
  }
}

// ---- metric names -----------------------------------------------------------------------------------

TEST(DeployMetricsTest, MetricNamesInStripsHistogramSuffixes) {
  EXPECT_EQ(testing::MetricNamesIn(
                "histogram_quantile(0.9, sum by (le) (rate(streamrec_batch_duration_seconds_bucket[5m])))"
                " / rate(streamrec_batch_records_count[5m]) + streamrec_ready{segment=\"x\"}"),
            (std::set<std::string>{"streamrec_batch_duration_seconds", "streamrec_batch_records",
                                   "streamrec_ready"}));
}

TEST(DeployMetricsTest, DashboardsAndAlertsUseOnlyContractMetrics) {
  const std::set<std::string> contract = testing::ReadMetricList(kSource + "/deploy/metrics.txt");
  ASSERT_GT(contract.size(), 30u);
  const auto uses = testing::DeployMetricUses(kSource);
  EXPECT_GT(uses.size(), 30u) << "the dashboards should cover most of the contract";
  for (const auto& [name, files] : uses) {
    std::string where;
    for (const auto& f : files) where += " " + f;
    EXPECT_TRUE(contract.count(name)) << name << " (used in" << where
                                      << ") is not in deploy/metrics.txt";
  }
  // Every alert in the operations issue queries its metric.
  for (const char* name : {"streamrec_consumer_lag_messages", "streamrec_events_consumed_total",
                           "streamrec_dead_letters_total", "streamrec_segment_refits_total",
                           "streamrec_als_refits_total", "streamrec_outbox_pending_records",
                           "streamrec_ready"}) {
    ASSERT_TRUE(uses.count(name)) << name;
    EXPECT_TRUE(uses.at(name).count("deploy/prometheus/alerts.yml")) << name;
  }
}

// ---- the image --------------------------------------------------------------------------------------

// Package names of the runtime stage's `apt-get install` (the last FROM of the Dockerfile).
std::set<std::string> RuntimePackages(const std::string& dockerfile) {
  std::string text = dockerfile;
  text = text.substr(text.rfind("\nFROM "));
  std::string joined = std::regex_replace(text, std::regex("\\\\\n"), " ");
  std::set<std::string> packages;
  std::smatch m;
  if (!std::regex_search(joined, m, std::regex("apt-get install([^&\n]*)"))) return packages;
  std::istringstream words(m[1].str());
  std::string w;
  while (words >> w) {
    if (w[0] != '-') packages.insert(w);
  }
  return packages;
}

TEST(DeployImageTest, RuntimePackagesCoverEverySharedLibraryOfTheBinary) {
  ASSERT_TRUE(HaveTool("ldd") && HaveTool("dpkg-query"));
  const std::set<std::string> listed = RuntimePackages(ReadFile(kSource + "/deploy/Dockerfile"));
  ASSERT_TRUE(listed.count("librdkafka++1")) << "could not read the runtime apt-get install line";

  // Libraries the binary loads (the test build links the same libraries as the release build).
  ShellResult ldd = Shell("ldd '" + testing::StreamrecBinary() + "'");
  ASSERT_EQ(ldd.exit_code, 0) << ldd.out;
  std::vector<std::string> libs;
  std::istringstream lines(ldd.out);
  std::string line;
  static const std::regex kArrow("=>\\s+(/\\S+)");
  while (std::getline(lines, line)) {
    std::smatch m;
    EXPECT_EQ(line.find("not found"), std::string::npos) << line;
    if (std::regex_search(line, m, kArrow)) libs.push_back(m[1]);
  }
  ASSERT_GT(libs.size(), 5u) << ldd.out;

  // Owning package of each library. dpkg records the path it installed (/lib or /usr/lib on a
  // merged-/usr system), so ask for both spellings.
  std::string query;
  for (const auto& lib : libs) {
    const std::string bare = lib.rfind("/usr/", 0) == 0 ? lib.substr(4) : lib;
    query += " '" + bare + "' '/usr" + bare + "'";
  }
  ShellResult owners = Shell("dpkg-query -S" + query + " 2>/dev/null");
  std::map<std::string, std::string> owner;  // library file name -> package
  std::istringstream owner_lines(owners.out);
  while (std::getline(owner_lines, line)) {
    const size_t sep = line.find(": ");
    if (sep == std::string::npos) continue;
    std::string pkg = line.substr(0, line.find(':'));
    owner[std::filesystem::path(line.substr(sep + 2)).filename().string()] = pkg;
  }

  // Packages apt installs for the listed ones: the Depends/Pre-Depends closure.
  ShellResult status = Shell("dpkg-query -W -f='${Package}\\t${Depends}, ${Pre-Depends}\\n'");
  std::map<std::string, std::vector<std::string>> depends;
  std::istringstream status_lines(status.out);
  static const std::regex kDep("([a-z0-9][a-z0-9+.-]+)");
  while (std::getline(status_lines, line)) {
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    std::string deps = std::regex_replace(line.substr(tab + 1), std::regex("\\([^)]*\\)|:any"), "");
    std::vector<std::string>& out = depends[line.substr(0, tab)];
    for (auto it = std::sregex_iterator(deps.begin(), deps.end(), kDep); it != std::sregex_iterator(); ++it) {
      out.push_back(it->str());
    }
  }
  std::set<std::string> installed;
  std::vector<std::string> todo(listed.begin(), listed.end());
  while (!todo.empty()) {
    std::string p = todo.back();
    todo.pop_back();
    if (!installed.insert(p).second) continue;
    for (const auto& d : depends[p]) todo.push_back(d);
  }

  for (const auto& lib : libs) {
    const std::string file = std::filesystem::path(lib).filename().string();
    ASSERT_TRUE(owner.count(file)) << "no package owns " << lib;
    EXPECT_TRUE(installed.count(owner[file]))
        << lib << " comes from " << owner[file]
        << ", which the runtime stage of deploy/Dockerfile does not install (add it to apt-get install)";
  }
}

// ---- the configuration (needs the metrics.*/http.* keys of the metrics issue) -------------------

TEST(DeployConfigTest, DeployConfigPassesConfigCheck) {
  testing::ProcessResult r = testing::RunProcess(
      {testing::StreamrecBinary(), "config", "--check", kSource + "/deploy/streamrec.yaml"});
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.output;
}

}  // namespace
}  // namespace streamrec
