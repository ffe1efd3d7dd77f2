#include <algorithm>
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/common.h"
#include "json_writer.h"
#include "streamrec/kmeans_segmenter.h"

namespace streamrec::cli {

namespace {

struct Profile {
  int32_t cluster = -1;
  std::string segment;
  uint64_t customers = 0;
  double revenue = 0;
  double sum_last_days = 0;
  double sum_frequency = 0;
  std::map<std::string, uint64_t> channels;
  uint64_t channel_lines = 0;
};

int RunSegmentsCommand(const SegmentsArgs& args) {
  StoreOptions store_options;
  store_options.path = args.state_dir;
  auto store = OpenRocksStateStore(store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "streamrec segments: %s\n", store.status().ToString().c_str());
    return kExitFailure;
  }
  std::map<int32_t, Profile> by_cluster;
  int64_t now_ms = 0;
  Status decode_status;
  CustomerState state;
  Status s = (*store)->Scan(Column::kCustomers, "", [&](std::string_view, std::string_view value) {
    decode_status = DecodeState(value, &state);
    if (!decode_status.ok()) return false;
    now_ms = std::max(now_ms, state.last_time_ms());
    Profile& p = by_cluster[state.cluster()];
    p.cluster = state.cluster();
    p.segment = state.segment();
    ++p.customers;
    p.revenue += state.total_spend();
    p.sum_last_days += state.last_time_ms() / 86400000.0;
    p.sum_frequency += static_cast<double>(state.purchase_count());
    for (const v1::CountEntry& c : state.channels()) {
      p.channels[c.key().empty() ? "(none)" : c.key()] += c.count();
      p.channel_lines += c.count();
    }
    return true;
  });
  if (s.ok()) s = decode_status;
  if (!s.ok()) {
    std::fprintf(stderr, "streamrec segments: %s\n", s.ToString().c_str());
    return kExitFailure;
  }
  double total_revenue = 0;
  uint64_t total_customers = 0;
  for (const auto& [id, p] : by_cluster) {
    total_revenue += p.revenue;
    total_customers += p.customers;
  }
  auto channel_mix = [](const Profile& p) {
    std::vector<std::pair<std::string, double>> mix;
    for (const auto& [name, n] : p.channels) {
      mix.emplace_back(name, p.channel_lines ? static_cast<double>(n) / p.channel_lines : 0.0);
    }
    return mix;
  };

  auto proto = LoadStoredModel(store->get());
  std::shared_ptr<const SegmentModelVersion> model;
  if (proto.ok()) {
    auto m = SegmentModelVersion::FromProto(*proto);
    if (m.ok()) model = *m;
  }

  if (args.json) {
    JsonWriter w;
    w.BeginObject();
    w.Key("model_version").Uint(model ? model->version : 0);
    w.Key("k").Int(model ? model->k : 0);
    w.Key("objective").Double(model ? model->proto.objective() : 0);
    w.Key("silhouette").Double(model ? model->proto.silhouette() : 0);
    w.Key("fit_customers").Uint(model ? model->proto.fit_points() : 0);
    w.Key("features").BeginArray();
    if (model) {
      for (const std::string& n : model->spec.Names()) w.String(n);
    }
    w.EndArray();
    w.Key("customers").Uint(total_customers);
    w.Key("revenue").Double(total_revenue);
    w.Key("segments").BeginArray();
    for (const auto& [id, p] : by_cluster) {
      w.BeginObject();
      w.Key("cluster").Int(p.cluster);
      w.Key("segment").String(p.segment);
      w.Key("size").Uint(p.customers);
      w.Key("revenue").Double(p.revenue);
      w.Key("revenue_share").Double(total_revenue > 0 ? p.revenue / total_revenue : 0);
      w.Key("mean_recency_days").Double(now_ms / 86400000.0 - p.sum_last_days / p.customers);
      w.Key("mean_frequency").Double(p.sum_frequency / p.customers);
      w.Key("mean_monetary").Double(p.revenue / p.customers);
      w.Key("channel_mix").BeginObject();
      for (const auto& [name, share] : channel_mix(p)) w.Key(name).Double(share);
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
    w.EndObject();
    std::printf("%s\n", w.str().c_str());
    return kExitOk;
  }

  if (model) {
    std::printf("model v%llu: k=%d, objective %.4f, silhouette %.4f, fitted on %llu customers\n",
                static_cast<unsigned long long>(model->version), model->k,
                model->proto.objective(), model->proto.silhouette(),
                static_cast<unsigned long long>(model->proto.fit_points()));
  } else {
    std::printf("no segment model stored\n");
  }
  std::printf("%-8s %-20s %9s %7s %14s %7s %10s %8s %11s  %s\n", "cluster", "segment", "customers",
              "share", "revenue", "rev%", "recency_d", "baskets", "spend/cust", "channels");
  for (const auto& [id, p] : by_cluster) {
    std::string mix;
    for (const auto& [name, share] : channel_mix(p)) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%s%s %.0f%%", mix.empty() ? "" : ", ", name.c_str(),
                    100 * share);
      mix += buf;
    }
    std::printf("%-8d %-20s %9llu %6.1f%% %14.2f %6.1f%% %10.1f %8.2f %11.2f  %s\n", p.cluster,
                p.segment.c_str(), static_cast<unsigned long long>(p.customers),
                total_customers ? 100.0 * p.customers / total_customers : 0.0, p.revenue,
                total_revenue > 0 ? 100.0 * p.revenue / total_revenue : 0.0,
                now_ms / 86400000.0 - p.sum_last_days / p.customers,
                p.sum_frequency / p.customers, p.revenue / p.customers, mix.c_str());
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
