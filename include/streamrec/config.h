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

struct KafkaConfig {
  // bootstrap.servers. Empty: `streamrec demo` starts an embedded cluster; `run` refuses.
  std::string brokers;
  std::string group_id = "streamrec";
  std::string input_topic = "purchases";
  std::string output_topic = "recommendations";
  std::string dead_letter_topic = "purchases-dlq";
  std::string segment_change_topic = "segment-changes";
  // Value encoding of the recommendations and segment-changes topics: "protobuf" or "json".
  std::string output_format = "protobuf";
  // partition.assignment.strategy of the consumer group.
  std::string assignment_strategy = "cooperative-sticky";
  // A micro-batch closes at pipeline.batch_size records or after this many milliseconds.
  int max_batch_ms = 200;
  // Outbox records produced but not yet acknowledged above which partitions are paused.
  int max_in_flight = 200000;
  // Commit consumed offsets to Kafka (for lag monitoring; the stored position is the truth).
  bool commit_offsets = true;
  // Any librdkafka property, passed through (SASL/SSL among them). Values may be written as
  // ${ENV_VAR} to read a secret from the environment; values of keys that look secret
  // (password, secret, key, token) are never logged.
  std::map<std::string, std::string> consumer;
  std::map<std::string, std::string> producer;
};

struct Config {
  InputConfig input;
  StoreOptions state;            // state.*: dir, sync_wal, block_cache_mb, ...
  FeatureOptions features;
  PipelineConfig pipeline;
  RecommenderOptions recommend;
  SegmentsConfig segments;
  KafkaConfig kafka;
  std::string catalog_path;      // catalog.path: catalogue CSV (optional)
};

// True for librdkafka property names whose values must not be logged.
bool IsSecretKey(const std::string& key);

using Environment = std::map<std::string, std::string>;

// The process environment, for LoadConfig.
Environment ProcessEnvironment();

// Defaults, then `path` (skipped when empty), then STREAMREC_*__* variables of `env`; validated.
StatusOr<Config> LoadConfig(const std::string& path, const Environment& env);

// The documented defaults as a commented YAML file that LoadConfig accepts.
std::string DefaultConfigYaml();

}  // namespace streamrec

#endif  // STREAMREC_CONFIG_H_
