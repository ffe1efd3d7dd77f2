#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "streamrec/config.h"

namespace streamrec::cli {

void AddConfigCommand(CLI::App& app, ConfigArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand("config", "Print the default configuration or check a file");
  cmd->add_flag("--print-defaults", args->print_defaults,
                "print every configuration key with its default and meaning");
  cmd->add_option("--check", args->check,
                  "validate a configuration file (with environment overrides)");
  cmd->require_option(1);
  cmd->callback([args, exit_code] {
    if (args->print_defaults) {
      std::fputs(DefaultConfigYaml().c_str(), stdout);
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
