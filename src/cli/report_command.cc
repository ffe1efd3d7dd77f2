#include <cinttypes>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "file_io.h"
#include "streamrec/report.h"

namespace streamrec::cli {

namespace {

int RunReportCommand(const ReportArgs& args) {
  // Opening a store creates one where there is none: refuse a directory that holds no state
  // rather than leave an empty store in it.
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(args.state_dir) / "CURRENT", ec)) {
    std::fprintf(stderr,
                 "streamrec report: %s is not a streamrec state directory (no store in it); "
                 "give the --state-dir of a replay or run\n",
                 args.state_dir.c_str());
    return kExitFailure;
  }
  StoreOptions store_options;
  store_options.path = args.state_dir;
  auto store = OpenRocksStateStore(store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "streamrec report: cannot open %s: %s\n", args.state_dir.c_str(),
                 store.status().ToString().c_str());
    return kExitFailure;
  }
  auto data = LoadReportData(store->get());
  if (!data.ok()) {
    std::fprintf(stderr, "streamrec report: %s: %s\n", args.state_dir.c_str(),
                 data.status().ToString().c_str());
    return kExitFailure;
  }
  data->source = args.state_dir;
  if (!data->model) {
    std::fprintf(stderr, "streamrec report: model plots unavailable: %s\n",
                 data->model_unavailable_reason.c_str());
  }
  const std::string html = RenderReportHtml(*data);
  Status s;
  auto writer = LineWriter::Open(args.out);
  if (writer.ok()) {
    s = (*writer)->Write(html);
    const Status closed = (*writer)->Close();
    if (s.ok()) s = closed;
  } else {
    s = writer.status();
  }
  if (!s.ok()) {
    std::fprintf(stderr, "streamrec report: cannot write %s: %s\n", args.out.c_str(),
                 s.ToString().c_str());
    return kExitFailure;
  }
  const uintmax_t bytes = std::filesystem::file_size(args.out, ec);
  std::printf("wrote %s (%" PRIuMAX " bytes, %zu segments, %s)\n", args.out.c_str(),
              ec ? uintmax_t{0} : bytes, data->segments.size(),
              data->model ? ("model v" + std::to_string(data->model->version)).c_str()
                          : "no segment model");
  return kExitOk;
}

}  // namespace

void AddReportCommand(CLI::App& app, ReportArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "report", "Write the analyst report of a stored state: one self-contained HTML page");
  cmd->add_option("--state-dir", args->state_dir, "RocksDB state directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out", args->out, "output HTML file")->required();
  cmd->callback([args, exit_code] { *exit_code = RunReportCommand(*args); });
}

}  // namespace streamrec::cli
