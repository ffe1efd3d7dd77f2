#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "streamrec/config.h"
#include "streamrec/pseudonym.h"

namespace streamrec::cli {

void AddConfigCommand(CLI::App& app, ConfigArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand("config", "Print the default configuration or check a file");
  cmd->add_flag("--print-defaults", args->print_defaults,
                "print every configuration key with its default and meaning");
  cmd->add_option("--check", args->check,
                  "validate a configuration file (with environment overrides)");
  cmd->add_option("--pseudonym", args->pseudonym,
                  "print the log pseudonym of each customer id (log.pseudonym_key of --config "
                  "and the environment), to find a customer's log lines");
  cmd->add_option("--config", args->config, "configuration file (with --pseudonym)");
  cmd->callback([args, exit_code] {
    const int modes = (args->print_defaults ? 1 : 0) + (args->check.empty() ? 0 : 1) +
                      (args->pseudonym.empty() ? 0 : 1);
    if (modes != 1) {
      std::fprintf(stderr, "streamrec config: give one of --print-defaults, --check FILE, "
                           "--pseudonym ID...\n");
      *exit_code = kExitConfig;
      return;
    }
    if (args->print_defaults) {
      std::fputs(DefaultConfigYaml().c_str(), stdout);
      *exit_code = kExitOk;
      return;
    }
    if (!args->pseudonym.empty()) {
      Config config;
      if (!LoadConfigOrReport(args->config, &config)) {
        *exit_code = kExitConfig;
        return;
      }
      if (config.log.pseudonym_key.empty()) {
        std::fprintf(stderr, "streamrec config: log.pseudonym_key is not set (in --config or "
                             "STREAMREC_LOG__PSEUDONYM_KEY)\n");
        *exit_code = kExitConfig;
        return;
      }
      auto key = ParseSipHashKey(config.log.pseudonym_key, "log.pseudonym_key");
      if (!key.ok()) {
        std::fprintf(stderr, "streamrec config: %s\n", key.status().message().c_str());
        *exit_code = kExitConfig;
        return;
      }
      for (const std::string& id : args->pseudonym) {
        std::printf("%s %s\n", CustomerPseudonym(*key, id).c_str(), id.c_str());
      }
      *exit_code = kExitOk;
      return;
    }
    Config config;
    if (!LoadConfigOrReport(args->check, &config)) {
      *exit_code = kExitConfig;
      return;
    }
    std::printf("%s: ok\n", args->check.c_str());
    *exit_code = kExitOk;
  });
}

}  // namespace streamrec::cli
