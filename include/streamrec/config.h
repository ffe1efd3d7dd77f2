// Configuration: one YAML file plus environment overrides, validated once at start.
//
// Every key has a documented default (`streamrec config --print-defaults`). An environment
// variable STREAMREC_<SECTION>__<KEY> (path upper-cased, '.' written as "__") overrides the
// file, e.g. STREAMREC_STATE__BLOCK_CACHE_MB=512 or STREAMREC_INPUT__FIELDS__CUSTOMER_ID=MSISDN.
// An unknown key, a value of the wrong type or out of range is an error naming the key (or the
// variable) and the value.
//
// Secrets stay out of the file: in any value (file, kafka.consumer.* / kafka.producer.*
// properties, environment overrides) ${NAME} is replaced by the environment variable NAME and
// ${file:/path} by the contents of the file at /path (one trailing newline removed; a regular
// file of at most 64 KiB). Unset variables and unreadable files are errors naming the key.
#ifndef STREAMREC_CONFIG_H_
#define STREAMREC_CONFIG_H_

#include <map>
#include <string>
#include <string_view>

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
  // Decoded states of this many recently changed customers kept in front of the store
  // (write-through; 0 = none). See PipelineOptions::state_cache_customers.
  int64_t state_cache_customers = 100000;
};

struct SegmentsConfig {
  // "kmeans" (online mini-batch K-Means with full re-fits) or "rules" (the fixed RFM rule
  // segmenter).
  std::string method = "kmeans";
  // Placeholder rule segmenter: spend (currency units) that makes a 10+-basket customer a
  // Champion.
  double champion_spend = 1000.0;
  // Clusters of a full re-fit; 0 = "auto": chosen over [k_min, k_max] by silhouette.
  int k = 0;
  int k_min = 3;
  int k_max = 8;
  // K-Means initialisations per fit (the lowest objective wins).
  int n_init = 4;
  // Seed of k-means++ seeding, sampling and re-seeding.
  uint64_t seed = 1234;
  // Lloyd iterations per initialisation.
  int max_iterations = 300;
  // Full re-fit after this many customer updates since the last fit; 0 = never.
  int64_t refit_every_events = 0;
  // Full re-fit when the customer updates since the last fit exceed this ratio x the customers
  // it was fitted on (a geometric schedule while the population grows; amortised O(1) per
  // update); 0 = never.
  double refit_growth_ratio = 1.0;
  // Full re-fit when event time moved this many days past the last fit; 0 = never.
  double refit_interval_days = 0;
  // Full re-fit when the smoothed online objective exceeds this ratio x the fit's mean
  // objective per customer; 0 = never.
  double drift_ratio = 0;
  // A re-fit trains on a uniform sample of at most this many customers (then assigns all).
  int64_t refit_sample_size = 200000;
  // Points the silhouette of `k: auto` compares pairwise (cost: this squared, per k tried).
  int64_t silhouette_sample_size = 2000;
  // Customers seen before the first model is fitted; until then customers are "Unscored".
  int64_t min_customers_for_fit = 200;
  // Comma-separated feature names (see feature_vector.h); empty = the default seven.
  std::string features;
  // Per-feature transform before standardisation, "feature:transform,..." with transform none,
  // log1p or yeo-johnson (lambda fitted by maximum likelihood at each full re-fit and stored
  // with the model version). Features not named keep their default (log1p for counts, amounts
  // and days; none for ratios and shares). Takes effect at the next full re-fit: a model scores
  // with the transform it was fitted with.
  std::string transforms;
  // Forgetting of the online centres: half-life in customer updates; 0 = off.
  double half_life_events = 0;
  // Re-seed an online centre whose weight falls below this ratio x the largest; 0 = never.
  double reassignment_ratio = 0.01;
  // Threads of a full re-fit (results do not depend on it).
  int threads = 2;
  // Nice value (0..19) of a background re-fit's threads: the consumer thread keeps the CPU when
  // both want it, and the fit takes what ingestion leaves (0 = the service's own priority).
  int refit_nice = 10;
  // Rescore sweep: each micro-batch also re-assigns up to this many stored customers (a cursor
  // over the store in key order, wrapping) to the current online centres, so customers who do not
  // buy follow centre moves and re-fits; a changed cluster is written with the batch and emits a
  // SegmentChange. O(rescore_per_batch x k x d) per batch; 0 = off.
  int64_t rescore_per_batch = 50;
  // The swept customers also take part in the online mini-batch step (true: the centres follow
  // the whole population, not only the customers who buy; false: they are only re-labelled).
  bool rescore_moves_centres = true;
  // Customer moves between clusters are counted per event-time day; the transition matrix
  // (`streamrec segments`) sums the newest this many days.
  int transition_window_days = 30;
  // Optional CSV of naming rules replacing the default table (segment_naming.h):
  // header `name,r_min,r_max,fm_min,fm_max,action`, one rule per line, first match wins.
  // Empty = the default table.
  std::string rules_file;
};

struct KafkaConfig {
  // bootstrap.servers. Empty: `streamrec demo` starts an embedded cluster; `run` refuses.
  std::string brokers;
  std::string group_id = "streamrec";
  std::string input_topic = "purchases";
  std::string output_topic = "recommendations";
  std::string dead_letter_topic = "purchases-dlq";
  std::string segment_change_topic = "segment-changes";
  // Changelog of customer states and positions, partitioned like the input (compacted, key =
  // customer id); "" = none. Another instance restores a partition's state from it.
  std::string changelog_topic;
  // Keep warm copies of every partition this instance does not own by tailing their changelog
  // partitions (needs changelog_topic): a failover then reads only the changelog's tail.
  bool standby_replicas = false;
  // One segment model and one ALS model for all instances: the owner of input partition 0 fits
  // them and publishes every version here (one partition, compacted); the others adopt them.
  // Empty: every instance fits its own.
  std::string model_topic;
  // Global item statistics: every instance publishes its partitions' statistics of the items
  // they touch here (partitioned like the input, compacted, key = item id) and sums every other
  // partition's latest record with its own. Empty: each instance's item statistics cover the
  // partitions it processed.
  std::string item_stats_topic;
  // Samples for the shared fits: every instance publishes here the states of its customers in
  // a uniform sample (those whose id hashes below sample_share; partitioned like the input,
  // compacted, key = customer id) and the instance that fits the segment model for all
  // (kafka.model_topic) adds the other partitions' samples to its own customers. Empty: the
  // fitting instance fits on the customers it holds.
  std::string sample_topic;
  double sample_share = 0.05;
  // Global co-occurrence: every instance publishes here its partitions' co-occurrence rows
  // (partitioned like the input, compacted, key = item id; each row the item's buyers and its
  // strongest cooccurrence_neighbours neighbours) at most every cooccurrence_publish_ms, and
  // adds every other partition's rows to its own customers'. Needs item_stats_topic. Empty:
  // each instance's co-occurrence covers the customers it holds.
  std::string cooccurrence_topic;
  int cooccurrence_publish_ms = 2000;
  int cooccurrence_neighbours = 100;
  // Value encoding of the recommendations and segment-changes topics: "protobuf" or "json".
  std::string output_format = "protobuf";
  // partition.assignment.strategy of the consumer group.
  std::string assignment_strategy = "cooperative-sticky";
  // A micro-batch closes at pipeline.batch_size records or after this many milliseconds.
  int max_batch_ms = 10;
  // Outbox records produced but not yet acknowledged above which partitions are paused.
  int max_in_flight = 200000;
  // Memory for input records fetched ahead of processing, MiB: librdkafka's local queue is
  // bounded to this many MiB of record payload (queued.max.messages.kbytes) and to
  // max_prefetch_mb x 2048 records (queued.min.messages, which librdkafka treats as a cap):
  // a queued record costs its payload plus ~320 bytes of librdkafka bookkeeping, so the count
  // cap keeps small records within about this budget too. When the service is slower than its
  // input, fetching stops at the bound (lag grows; nothing is dropped) instead of the queue
  // growing. librdkafka may overshoot by one fetch response per broker. kafka.consumer.*
  // settings of those two properties win.
  int max_prefetch_mb = 64;
  // Commit consumed offsets to Kafka (for lag monitoring; the stored position is the truth).
  bool commit_offsets = true;
  // librdkafka statistics.interval.ms: how often consumer lag per partition and the prefetch
  // queue are refreshed for the metrics. 0 = never (no lag or prefetch metrics).
  int statistics_interval_ms = 5000;
  // Any librdkafka property, passed through (SASL/SSL among them). Values may be written as
  // ${ENV_VAR} to read a secret from the environment; values of keys that look secret
  // (password, secret, key, token) are never logged.
  std::map<std::string, std::string> consumer;
  std::map<std::string, std::string> producer;
};

// The release, for --version and the streamrec_build_info metric.
inline constexpr char kStreamrecVersion[] = "0.1.0";

struct MetricsConfig {
  // host:port of the Prometheus exposer (GET /metrics). Empty = no exposer. Port 0 = any free
  // port (tests).
  std::string listen = "0.0.0.0:9464";
  // A purchase of an item that was on the customer's published list counts as a conversion when
  // the list was published at most this many event-time days before the purchase.
  double attribution_window_days = 7;
  // Segment sizes and revenue come from a scan of a store snapshot in the background, at most
  // this often, seconds. 0 = never.
  int segment_scan_interval_s = 60;
};

struct HttpConfig {
  // host:port of the query API. Empty = no API. Port 0 = any free port (tests).
  std::string listen = "0.0.0.0:8080";
  // Bearer token POST /v1/refit requires. Empty = the endpoint refuses every request.
  // Write it as ${ENV_VAR} or set STREAMREC_HTTP__REFIT_TOKEN; it is never logged.
  std::string refit_token;
  // Request handler threads.
  int threads = 4;
};

struct LogConfig {
  // Log lines (and error messages that may reach them) name customers by a stable keyed
  // pseudonym, "c:" + 16 hex digits, instead of their id (pseudonym.h). The query API and the
  // output topics keep the real ids.
  bool pseudonymize_customer_ids = false;
  // The pseudonyms' secret key: 32 hex digits (128 bits, e.g. `openssl rand -hex 16`), required
  // when pseudonymize_customer_ids is on. Write it as ${ENV_VAR} or ${file:/path}; it is never
  // logged or printed. Changing it changes every pseudonym.
  std::string pseudonym_key;
};

struct Config {
  InputConfig input;
  StoreOptions state;            // state.*: dir, sync_wal, block_cache_mb, ...
  FeatureOptions features;
  PipelineConfig pipeline;
  RecommenderOptions recommend;
  SegmentsConfig segments;
  KafkaConfig kafka;
  MetricsConfig metrics;
  HttpConfig http;
  LogConfig log;
  std::string catalog_path;      // catalog.path: catalogue CSV (optional)
};

// True for librdkafka property names whose values must not be logged.
bool IsSecretKey(const std::string& key);

using Environment = std::map<std::string, std::string>;

// The process environment, for LoadConfig.
Environment ProcessEnvironment();

// Defaults, then `path` (skipped when empty), then STREAMREC_*__* variables of `env`; validated.
StatusOr<Config> LoadConfig(const std::string& path, const Environment& env);

// LoadConfig with the YAML text itself instead of a file; error messages call it `name`
// (where LoadConfig names the path). The fuzz target (fuzz/config_fuzz.cc) drives this.
StatusOr<Config> LoadConfigFromString(std::string_view yaml, const std::string& name,
                                      const Environment& env);

// The documented defaults as a commented YAML file that LoadConfig accepts.
std::string DefaultConfigYaml();

}  // namespace streamrec

#endif  // STREAMREC_CONFIG_H_
