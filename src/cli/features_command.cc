#include <cinttypes>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "streamrec/kmeans_segmenter.h"

namespace streamrec::cli {

namespace {

// One row per customer: the vector the current model clusters (its transform, at its fit's
// event time), with the customer's stored cluster.
int RunFeaturesCommand(const FeaturesArgs& args) {
  StoreOptions store_options;
  store_options.path = args.state_dir;
  auto store = OpenRocksStateStore(store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "streamrec features: %s\n", store.status().ToString().c_str());
    return kExitFailure;
  }
  auto proto = LoadStoredModel(store->get());
  if (!proto.ok()) {
    std::fprintf(stderr, "streamrec features: no segment model in %s (%s); run streamrec refit\n",
                 args.state_dir.c_str(), proto.status().ToString().c_str());
    return kExitFailure;
  }
  auto model = SegmentModelVersion::FromProto(*proto);
  if (!model.ok()) {
    std::fprintf(stderr, "streamrec features: %s\n", model.status().ToString().c_str());
    return kExitFailure;
  }
  const SegmentModelVersion& m = **model;
  std::FILE* out = std::fopen(args.out.c_str(), "w");
  if (out == nullptr) {
    std::fprintf(stderr, "streamrec features: cannot write %s\n", args.out.c_str());
    return kExitFailure;
  }
  std::fprintf(out, "customer_id,cluster");
  for (const std::string& name : m.spec.Names()) std::fprintf(out, ",%s", name.c_str());
  std::fprintf(out, "\n");
  const int d = m.spec.dim();
  std::vector<float> x(d);
  const int64_t now_ms = m.proto.created_event_time_ms();
  uint64_t rows = 0;
  Status decode_status;
  CustomerState state;
  Status s = (*store)->Scan(Column::kCustomers, "", [&](std::string_view, std::string_view value) {
    decode_status = DecodeState(value, &state);
    if (!decode_status.ok()) return false;
    BuildRawVector(m.spec, state, now_ms, x.data());
    m.transform.Apply(x.data(), x.data());
    std::fprintf(out, "%s,%d", state.customer_id().c_str(), state.cluster());
    for (int j = 0; j < d; ++j) std::fprintf(out, ",%.9g", x[j]);
    std::fprintf(out, "\n");
    ++rows;
    return true;
  });
  if (s.ok()) s = decode_status;
  if (std::fclose(out) != 0 && s.ok()) s = Status::IOError("closing " + args.out);
  if (!s.ok()) {
    std::fprintf(stderr, "streamrec features: %s\n", s.ToString().c_str());
    return kExitFailure;
  }
  std::fprintf(stderr, "wrote %" PRIu64 " rows x %d features (model v%" PRIu64 ") to %s\n", rows, d,
               m.version, args.out.c_str());
  return kExitOk;
}

}  // namespace

void AddFeaturesCommand(CLI::App& app, FeaturesArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "features", "Write the transformed clustering vectors: customer_id,cluster,f1..fd");
  cmd->add_option("--state-dir", args->state_dir, "RocksDB state directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out", args->out, "output CSV")->required();
  cmd->callback([args, exit_code] { *exit_code = RunFeaturesCommand(*args); });
}

}  // namespace streamrec::cli
