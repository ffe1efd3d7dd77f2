#include <cstdio>

#include "cli/commands.h"
#include "progress.h"
#include "streamrec/clock.h"
#include "streamrec/generator.h"

namespace streamrec::cli {

namespace {

// events.csv.gz -> events.catalog.csv
std::string DefaultCatalogPath(const std::string& events_path) {
  std::string base = events_path;
  for (const char* suffix : {".gz", ".csv", ".jsonl"}) {
    size_t n = std::string(suffix).size();
    if (base.size() > n && base.compare(base.size() - n, n, suffix) == 0) base.resize(base.size() - n);
  }
  return base + ".catalog.csv";
}

int RunGenerateCommand(const GenerateArgs& args) {
  TelcoGeneratorOptions options;
  options.customers = args.customers;
  options.events = args.events;
  options.seed = args.seed;
  std::string catalog = args.catalog_out.empty() ? DefaultCatalogPath(args.out) : args.catalog_out;
  ProgressBar progress(stderr, SystemClock(), "events");
  Status s = GenerateTelcoFeed(options, args.out, catalog, [&](uint64_t done, uint64_t total) {
    progress.Update(done, total ? static_cast<double>(done) / total : -1);
  });
  if (!s.ok()) {
    std::fprintf(stderr, "streamrec generate: %s\n", s.ToString().c_str());
    return s.IsInvalidArgument() ? kExitConfig : kExitFailure;
  }
  progress.Finish(args.events);
  std::printf("wrote %llu events of %llu customers to %s\ncatalogue: %s\n",
              static_cast<unsigned long long>(args.events),
              static_cast<unsigned long long>(args.customers), args.out.c_str(), catalog.c_str());
  return kExitOk;
}

}  // namespace

void AddGenerateCommand(CLI::App& app, GenerateArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "generate", "Write a synthetic telco data-package purchase feed and its catalogue");
  cmd->add_option("--customers", args->customers, "subscribers")->check(CLI::Range(1ULL, 1ULL << 40));
  cmd->add_option("--events", args->events, "purchase events")->check(CLI::Range(1ULL, 1ULL << 40));
  cmd->add_option("--seed", args->seed, "random seed (same seed, same file)");
  cmd->add_option("--out", args->out, "events file (.csv or .csv.gz)")->required();
  cmd->add_option("--catalog-out", args->catalog_out,
                  "catalogue file (default: beside --out, <name>.catalog.csv)");
  cmd->callback([args, exit_code] { *exit_code = RunGenerateCommand(*args); });
}

}  // namespace streamrec::cli
