#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>

#include "cli/commands.h"
#include "cli/common.h"
#include "json_writer.h"
#include "streamrec/kmeans_segmenter.h"
#include "streamrec/report.h"

namespace streamrec::cli {

namespace {

int RunSegmentsCommand(const SegmentsArgs& args) {
  StoreOptions store_options;
  store_options.path = args.state_dir;
  auto store = OpenRocksStateStore(store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "streamrec segments: %s\n", store.status().ToString().c_str());
    return kExitFailure;
  }
  auto overview_or = LoadSegmentOverview(store->get());
  if (!overview_or.ok()) {
    std::fprintf(stderr, "streamrec segments: %s\n", overview_or.status().ToString().c_str());
    return kExitFailure;
  }
  const SegmentOverview& overview = *overview_or;
  const std::vector<SegmentProfile>& profiles = overview.profiles;
  const double total_revenue = overview.total_revenue;
  const uint64_t total_customers = overview.total_customers;
  const std::optional<v1::SegmentModel>& proto = overview.proto;
  const std::shared_ptr<const SegmentModelVersion>& model = overview.model;
  const auto& transitions = overview.transitions;
  const std::string& first_day = overview.transitions_first_day;
  const std::string& last_day = overview.transitions_last_day;

  if (args.json) {
    JsonWriter w;
    w.BeginObject();
    w.Key("model_version").Uint(model ? model->version : 0);
    w.Key("k").Int(model ? model->k : 0);
    w.Key("objective").Double(model ? model->proto.objective() : 0);
    w.Key("silhouette").Double(model ? model->proto.silhouette() : 0);
    w.Key("fit_customers").Uint(model ? model->proto.fit_points() : 0);
    // Mean squared distance per customer: the full fit's, and the online steps' smoothed one.
    w.Key("objective_per_customer")
        .Double(model && model->proto.fit_points() > 0
                    ? model->proto.objective() / model->proto.fit_points()
                    : 0);
    w.Key("online_objective").Double(proto ? proto->online_objective() : 0);
    w.Key("online_points").Uint(proto ? proto->online_points() : 0);
    w.Key("births_total").Uint(model ? model->proto.births_total() : 0);
    w.Key("deaths_total").Uint(model ? model->proto.deaths_total() : 0);
    w.Key("features").BeginArray();
    if (model) {
      for (const std::string& n : model->spec.Names()) w.String(n);
    }
    w.EndArray();
    // The transform of each feature, as fitted with this model version (segments.transforms).
    w.Key("transforms").BeginArray();
    if (model) {
      const std::vector<std::string> names = model->spec.Names();
      for (size_t j = 0; j < names.size(); ++j) {
        const FeatureScaling& c = model->transform.columns()[j];
        w.BeginObject();
        w.Key("feature").String(names[j]);
        w.Key("transform").String(std::string(FeatureTransformKindName(c.kind)));
        if (c.kind == FeatureTransformKind::kYeoJohnson) w.Key("lambda").Double(c.lambda);
        w.Key("mean").Double(c.mean);
        w.Key("std").Double(c.std);
        w.EndObject();
      }
    }
    w.EndArray();
    w.Key("customers").Uint(total_customers);
    w.Key("revenue").Double(total_revenue);
    w.Key("segments").BeginArray();
    for (const SegmentProfile& p : profiles) {
      w.BeginObject();
      w.Key("cluster").Int(p.cluster);
      w.Key("segment").String(p.segment);
      w.Key("size").Uint(p.customers);
      w.Key("revenue").Double(p.revenue);
      w.Key("revenue_share").Double(total_revenue > 0 ? p.revenue / total_revenue : 0);
      w.Key("mean_recency_days").Double(p.mean_recency_days);
      w.Key("mean_frequency").Double(p.mean_frequency);
      w.Key("mean_monetary").Double(p.mean_monetary);
      w.Key("channel_mix").BeginObject();
      for (const auto& [name, share] : p.channel_mix) w.Key(name).Double(share);
      w.EndObject();
      const int row = model ? model->RowOf(p.cluster) : -1;
      if (row >= 0) {
        // The current (online) centre in original units.
        const int d = model->spec.dim();
        std::vector<float> centre(proto->centres().begin() + row * d,
                                  proto->centres().begin() + (row + 1) * d);
        std::vector<double> original = model->transform.Inverse(centre.data());
        const std::vector<std::string> names = model->spec.Names();
        w.Key("action").String(model->actions[row]);
        const v1::SegmentCluster& c = model->proto.clusters(row);
        w.Key("rfm_score").String(std::to_string(c.r_score()) + std::to_string(c.f_score()) +
                                  std::to_string(c.m_score()));
        w.Key("centre").BeginObject();
        for (int j = 0; j < d; ++j) w.Key(names[j]).Double(original[j]);
        w.EndObject();
      }
      w.EndObject();
    }
    w.EndArray();
    w.Key("transitions").BeginObject();
    w.Key("first_day").String(first_day);
    w.Key("last_day").String(last_day);
    w.Key("moves").BeginArray();
    for (const auto& [move, count] : transitions) {
      w.BeginObject();
      w.Key("from").Int(move.first);
      w.Key("from_segment").String(overview.NameOf(move.first));
      w.Key("to").Int(move.second);
      w.Key("to_segment").String(overview.NameOf(move.second));
      w.Key("count").Uint(count);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    w.EndObject();
    std::printf("%s\n", w.str().c_str());
    return kExitOk;
  }

  if (model) {
    std::printf("model v%llu: k=%d, objective %.4f, silhouette %.4f, fitted on %llu customers\n",
                static_cast<unsigned long long>(model->version), model->k,
                model->proto.objective(), model->proto.silhouette(),
                static_cast<unsigned long long>(model->proto.fit_points()));
    std::printf("clusters born %llu, died %llu over all fits; online objective %.4f per customer "
                "(fit: %.4f)\n",
                static_cast<unsigned long long>(model->proto.births_total()),
                static_cast<unsigned long long>(model->proto.deaths_total()),
                proto->online_objective(),
                model->proto.fit_points() > 0
                    ? model->proto.objective() / model->proto.fit_points()
                    : 0.0);
  } else {
    std::printf("no segment model stored\n");
  }
  std::printf("%-8s %-20s %9s %7s %14s %7s %10s %8s %11s  %s\n", "cluster", "segment", "customers",
              "share", "revenue", "rev%", "recency_d", "baskets", "spend/cust", "channels");
  for (const SegmentProfile& p : profiles) {
    std::string mix;
    for (const auto& [name, share] : p.channel_mix) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%s%s %.0f%%", mix.empty() ? "" : ", ", name.c_str(),
                    100 * share);
      mix += buf;
    }
    std::printf("%-8d %-20s %9llu %6.1f%% %14.2f %6.1f%% %10.1f %8.2f %11.2f  %s\n", p.cluster,
                p.segment.c_str(), static_cast<unsigned long long>(p.customers),
                total_customers ? 100.0 * p.customers / total_customers : 0.0, p.revenue,
                total_revenue > 0 ? 100.0 * p.revenue / total_revenue : 0.0,
                p.mean_recency_days, p.mean_frequency, p.mean_monetary, mix.c_str());
  }
  if (model) {
    std::printf("\nactions:\n");
    for (const SegmentProfile& p : profiles) {
      const int row = model->RowOf(p.cluster);
      if (row >= 0 && !model->actions[row].empty()) {
        std::printf("  %-20s %s\n", model->names[row].c_str(), model->actions[row].c_str());
      }
    }
  }
  std::printf("\ntransitions (customer moves, rows from, columns to)");
  if (transitions.empty()) {
    std::printf(": none\n");
    return kExitOk;
  }
  std::printf(", event-time days %s .. %s:\n", first_day.c_str(), last_day.c_str());
  std::vector<int32_t> ids;
  for (const SegmentProfile& p : profiles) ids.push_back(p.cluster);
  for (const auto& [move, count] : transitions) {
    ids.push_back(move.first);
    ids.push_back(move.second);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::printf("%-24s", "from \\ to");
  for (int32_t to : ids) std::printf(" %9d", to);
  std::printf("\n");
  for (int32_t from : ids) {
    std::printf("%-4d %-19.19s", from, overview.NameOf(from).c_str());
    for (int32_t to : ids) {
      auto it = transitions.find({from, to});
      if (it == transitions.end()) {
        std::printf(" %9s", from == to ? "-" : "0");
      } else {
        std::printf(" %9llu", static_cast<unsigned long long>(it->second));
      }
    }
    std::printf("\n");
  }
  return kExitOk;
}

}  // namespace

void AddSegmentsCommand(CLI::App& app, SegmentsArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "segments", "Print the segment profiles of a stored state (or JSON with the model)");
  cmd->add_option("--state-dir", args->state_dir, "RocksDB state directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_flag("--json", args->json, "JSON: model version, k, centres in original units, ...");
  cmd->callback([args, exit_code] { *exit_code = RunSegmentsCommand(*args); });
}

}  // namespace streamrec::cli
