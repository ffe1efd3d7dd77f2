// Configuration: one YAML file plus environment overrides, validated once at start.
//
// Every key has a documented default (`streamrec config --print-defaults`). An environment
// variable STREAMREC_<SECTION>__<KEY> (path upper-cased, '.' written as "__") overrides the
// file, e.g. STREAMREC_STATE__BLOCK_CACHE_MB=512 or STREAMREC_INPUT__FIELDS__CUSTOMER_ID=MSISDN.
// An unknown key, a value of the wrong type or out of range is an error naming the key (or the
// variable) and the value.
#ifndef STREAMREC_CONFIG_H_
#define STREAMREC_CONFIG_H_

#include <map>
#include <string>

#include "streamrec/decoder.h"
#include "streamrec/features.h"
#include "streamrec/recommender.h"
#include "streamrec/state_store.h"
#include "streamrec/status.h"

namespace streamrec {

struct InputConfig {
  // Record format: "csv" (header row, then one event per line), "json" (one object per line
  // or message), "protobuf" (streamrec.v1.PurchaseEvent; Kafka only).
  std::string format = "csv";
  // Zone of ISO-8601 times without an offset: "UTC" or a fixed offset like "+07:00".
  std::string default_zone = "UTC";
  DecoderOptions decoder;  // fields, timestamp format, negative quantities, delimiter
};

struct PipelineConfig {
  // Records per micro-batch (file source; the Kafka source also bounds batches by time).
  int batch_size = 5000;
};

struct SegmentsConfig {
  // Placeholder rule segmenter: spend (currency units) that makes a 10+-basket customer a
  // Champion.
  double champion_spend = 1000.0;
};

struct Config {
  InputConfig input;
  StoreOptions state;            // state.*: dir, sync_wal, block_cache_mb, ...
  FeatureOptions features;
  PipelineConfig pipeline;
  RecommenderOptions recommend;
  SegmentsConfig segments;
  std::string catalog_path;      // catalog.path: catalogue CSV (optional)
};

using Environment = std::map<std::string, std::string>;

// The process environment, for LoadConfig.
Environment ProcessEnvironment();

// Defaults, then `path` (skipped when empty), then STREAMREC_*__* variables of `env`; validated.
StatusOr<Config> LoadConfig(const std::string& path, const Environment& env);

// The documented defaults as a commented YAML file that LoadConfig accepts.
std::string DefaultConfigYaml();

}  // namespace streamrec

#endif  // STREAMREC_CONFIG_H_
