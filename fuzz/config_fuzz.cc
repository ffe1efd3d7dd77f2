// libFuzzer target: the configuration loader. The input up to the first NUL byte is the YAML
// document; what follows it, one NAME=VALUE per line, is the environment (STREAMREC_*__*
// overrides and the variables ${NAME} values refer to). LoadConfigFromString is LoadConfig
// without the file. Seeds: fuzz/corpus/config/ (the files of config/, edge cases);
// dictionary: fuzz/config.dict.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "streamrec/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // segments.rules_file is read from disk: keep the fuzzer off devices (/dev/stdin blocks,
  // /dev/zero never ends) and kernel files.
  for (std::string_view special : {"/dev", "/proc", "/sys"}) {
    if (input.find(special) != std::string_view::npos) return -1;  // not added to the corpus
  }
  const size_t nul = input.find('\0');
  const std::string_view yaml = input.substr(0, nul);
  streamrec::Environment env;
  if (nul != std::string_view::npos) {
    std::string_view rest = input.substr(nul + 1);
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      const std::string_view line = rest.substr(0, nl);
      const size_t eq = line.find('=');
      if (eq != std::string_view::npos) {
        env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
      }
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
  }
  auto config = streamrec::LoadConfigFromString(yaml, "fuzz.yaml", env);
  if (!config.ok()) {
    streamrec::fuzz::Check(config.status().IsInvalidArgument() &&
                               !config.status().message().empty(),
                           "config error", config.status().ToString());
    return 0;
  }
  // What Validate promises the rest of the program.
  const streamrec::Config& c = *config;
  streamrec::fuzz::Check(!c.input.decoder.fields.customer_id.empty() &&
                             !c.input.decoder.fields.item_id.empty() &&
                             !c.input.decoder.fields.event_time.empty(),
                         "required field name empty");
  streamrec::fuzz::Check(c.input.decoder.min_event_time_ms < c.input.decoder.max_event_time_ms,
                         "event time range empty");
  streamrec::fuzz::Check(c.segments.k_min <= c.segments.k_max, "k_min > k_max");
  return 0;
}
