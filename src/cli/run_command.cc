#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "streamrec/service.h"

namespace streamrec::cli {

namespace {

int RunServiceCommand(const RunArgs& args) {
  ServiceOptions options;
  if (!LoadConfigOrReport(args.config_path, &options.config)) return kExitConfig;
  if (!args.state_dir.empty()) options.config.state.path = args.state_dir;
  if (options.config.kafka.brokers.empty()) {
    std::fprintf(stderr,
                 "streamrec run: kafka.brokers is not set (configuration key kafka.brokers or "
                 "STREAMREC_KAFKA__BROKERS); `streamrec demo` runs on an embedded cluster\n");
    return kExitConfig;
  }
  if (options.config.state.path.empty()) {
    std::fprintf(stderr, "streamrec run: no state directory (state.dir or --state-dir)\n");
    return kExitConfig;
  }
  options.fault_hook = CrashHookFromEnvironment();
  options.stop_at_end = args.stop_at_end;
  auto service = Service::Create(std::move(options));
  if (!service.ok()) {
    std::fprintf(stderr, "streamrec run: %s\n", service.status().ToString().c_str());
    return service.status().IsInvalidArgument() ? kExitConfig : kExitFailure;
  }
  Status s = (*service)->Run(StopFlag());
  if (!s.ok()) {
    std::fprintf(stderr, "streamrec run: %s\n", s.ToString().c_str());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void AddRunCommand(CLI::App& app, RunArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "run", "Run the service against Kafka until SIGINT/SIGTERM, then stop cleanly");
  cmd->add_option("--config", args->config_path, "YAML configuration file")->check(CLI::ExistingFile);
  cmd->add_option("--state-dir", args->state_dir, "RocksDB state directory (overrides state.dir)");
  cmd->add_flag("--stop-at-end", args->stop_at_end,
                "Stop cleanly once every assigned partition is applied up to its end (a backfill "
                "or catch-up run that ends by itself)");
  cmd->callback([args, exit_code] { *exit_code = RunServiceCommand(*args); });
}

}  // namespace streamrec::cli
