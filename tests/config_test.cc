#include "streamrec/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "kafka/kafka_conf.h"
#include "streamrec/kmeans_segmenter.h"
#include "streamrec/pseudonym.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::TempDir;
using testing::WriteFile;

StatusOr<Config> LoadText(const std::string& yaml, const Environment& env = {}) {
  TempDir dir;
  std::string path = dir.File("c.yaml");
  WriteFile(path, yaml);
  return LoadConfig(path, env);
}

void ExpectError(const StatusOr<Config>& c, const std::vector<std::string>& parts) {
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(c.status().IsInvalidArgument()) << c.status().ToString();
  for (const auto& p : parts) {
    EXPECT_NE(c.status().message().find(p), std::string::npos)
        << "'" << p << "' not in: " << c.status().message();
  }
}

TEST(ConfigTest, DefaultsWithoutFile) {
  ASSERT_OK_AND_ASSIGN(c, LoadConfig("", {}));
  EXPECT_EQ(c.input.format, "csv");
  EXPECT_EQ(c.input.decoder.fields.customer_id, "customer_id");
  EXPECT_EQ(c.input.decoder.fields.event_time, "timestamp");
  EXPECT_EQ(c.pipeline.batch_size, 5000);
  EXPECT_EQ(c.recommend.list_length, 10);
  EXPECT_FALSE(c.state.sync_wal);
}

TEST(ConfigTest, TelcoFieldMappingAndZone) {
  ASSERT_OK_AND_ASSIGN(c, LoadText(R"(
input:
  format: json
  default_zone: "+07:00"
  fields:
    customer_id: MSISDN
    item_id: PACKAGE_CODE
    event_time: BUY_DATE
    channel: CHANNEL
    amount: PRICE
state:
  sync_wal: true
  block_cache_mb: 512
  compression: zstd
)"));
  EXPECT_EQ(c.input.format, "json");
  EXPECT_EQ(c.input.decoder.default_utc_offset_minutes, 420);
  EXPECT_EQ(c.input.decoder.fields.customer_id, "MSISDN");
  EXPECT_EQ(c.input.decoder.fields.amount, "PRICE");
  EXPECT_TRUE(c.state.sync_wal);
  EXPECT_EQ(c.state.block_cache_mb, 512);
  EXPECT_EQ(c.state.compression, "zstd");
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  ExpectError(LoadText("state:\n  block_cache: 5\n"), {"unknown key", "state.block_cache"});
  ExpectError(LoadText("nosuch: 1\n"), {"unknown key", "nosuch"});
  ExpectError(LoadText("input:\n  fields:\n    msisdn: X\n"), {"input.fields.msisdn"});
}

TEST(ConfigTest, WrongTypeAndRangeNameKeyAndValue) {
  ExpectError(LoadText("state:\n  block_cache_mb: lots\n"), {"state.block_cache_mb", "'lots'", "integer"});
  ExpectError(LoadText("state:\n  block_cache_mb: 1\n"), {"state.block_cache_mb", "'1'", "[8,"});
  ExpectError(LoadText("state:\n  sync_wal: maybe\n"), {"state.sync_wal", "'maybe'"});
  ExpectError(LoadText("recommend:\n  control_share: 1.5\n"), {"recommend.control_share", "'1.5'"});
  ExpectError(LoadText("state:\n  compression: brotli\n"), {"state.compression", "'brotli'", "zstd"});
  ExpectError(LoadText("input:\n  default_zone: Asia/Jakarta\n"), {"input.default_zone", "Asia/Jakarta"});
  ExpectError(LoadText("state: 5\n"), {"state", "mapping"});
  ExpectError(LoadText("pipeline:\n  batch_size: [1, 2]\n"), {"pipeline.batch_size", "list"});
}

TEST(ConfigTest, RequiredFieldCannotBeEmptied) {
  ExpectError(LoadText("input:\n  fields:\n    customer_id: \"\"\n"), {"input.fields.customer_id"});
}

TEST(ConfigTest, EnvironmentOverridesFile) {
  Environment env{{"STREAMREC_STATE__BLOCK_CACHE_MB", "1024"},
                  {"STREAMREC_INPUT__FIELDS__CUSTOMER_ID", "MSISDN"},
                  {"STREAMREC_TEST_CRASH_AT", "ignored: no double underscore"},
                  {"HOME", "/root"}};
  ASSERT_OK_AND_ASSIGN(c, LoadText("state:\n  block_cache_mb: 64\n", env));
  EXPECT_EQ(c.state.block_cache_mb, 1024);
  EXPECT_EQ(c.input.decoder.fields.customer_id, "MSISDN");
}

TEST(ConfigTest, BadEnvironmentOverrideNamesTheVariable) {
  ExpectError(LoadConfig("", {{"STREAMREC_STATE__BLOCK_CACHE", "1"}}),
              {"STREAMREC_STATE__BLOCK_CACHE", "state.block_cache"});
  ExpectError(LoadConfig("", {{"STREAMREC_PIPELINE__BATCH_SIZE", "0"}}),
              {"STREAMREC_PIPELINE__BATCH_SIZE", "pipeline.batch_size", "'0'"});
}

TEST(ConfigTest, KafkaPassThroughAndSecretsFromEnvironment) {
  Environment env{{"KAFKA_PASSWORD", "s3cret"}};
  ASSERT_OK_AND_ASSIGN(c, LoadText(R"(
kafka:
  brokers: "b1:9092,b2:9092"
  input_topic: billing.purchases
  output_format: json
  consumer:
    security.protocol: SASL_SSL
    sasl.password: ${KAFKA_PASSWORD}
  producer:
    linger.ms: 20
)", env));
  EXPECT_EQ(c.kafka.brokers, "b1:9092,b2:9092");
  EXPECT_EQ(c.kafka.input_topic, "billing.purchases");
  EXPECT_EQ(c.kafka.output_format, "json");
  EXPECT_EQ(c.kafka.consumer.at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(c.kafka.consumer.at("sasl.password"), "s3cret");
  EXPECT_EQ(c.kafka.producer.at("linger.ms"), "20");
  EXPECT_TRUE(IsSecretKey("sasl.password"));
  EXPECT_TRUE(IsSecretKey("ssl.key.password"));
  EXPECT_TRUE(IsSecretKey("sasl.oauthbearer.client.secret"));
  EXPECT_FALSE(IsSecretKey("security.protocol"));

  ExpectError(LoadText("kafka:\n  consumer:\n    sasl.password: ${NOT_SET_ANYWHERE}\n"),
              {"kafka.consumer.sasl.password", "NOT_SET_ANYWHERE"});
  ExpectError(LoadText("kafka:\n  consumer: 5\n"), {"kafka.consumer", "mapping"});
  ExpectError(LoadText("kafka:\n  output_format: avro\n"), {"kafka.output_format", "'avro'"});
}

// ${file:/path}: secrets mounted as files (Kubernetes, Docker secrets) instead of environment
// variables, in any value: schema keys, librdkafka pass-through properties, environment overrides.
TEST(ConfigTest, SecretsFromFiles) {
  TempDir dir;
  WriteFile(dir.File("token"), "t0ken-from-file\n");              // echo's trailing newline
  WriteFile(dir.File("password"), "pa ss\r\n");                    // an editor's CRLF
  WriteFile(dir.File("two-lines"), "first\nsecond\n\n");           // only one newline removed
  WriteFile(dir.File("topic"), "purchases-eu");                     // no newline at all
  WriteFile(dir.File("key"), "000102030405060708090a0b0c0d0e0f");
  ASSERT_OK_AND_ASSIGN(c, LoadText("http:\n  refit_token: ${file:" + dir.File("token") + "}\n"
                                   "kafka:\n  consumer:\n    sasl.password: ${file:" +
                                   dir.File("password") + "}\n"
                                   "  group_id: g-${file:" + dir.File("two-lines") + "}-${SUFFIX}\n"
                                   "  input_topic: ${file:" + dir.File("topic") + "}\n"
                                   "log:\n  pseudonymize_customer_ids: true\n"
                                   "  pseudonym_key: ${file:" + dir.File("key") + "}\n",
                                   {{"SUFFIX", "x"}}));
  EXPECT_EQ(c.http.refit_token, "t0ken-from-file");
  EXPECT_EQ(c.kafka.consumer.at("sasl.password"), "pa ss");
  EXPECT_EQ(c.kafka.group_id, "g-first\nsecond\n-x");
  EXPECT_EQ(c.kafka.input_topic, "purchases-eu");
  EXPECT_EQ(c.log.pseudonym_key, "000102030405060708090a0b0c0d0e0f");
  // Environment overrides may name a file too.
  ASSERT_OK_AND_ASSIGN(e, LoadConfig("", {{"STREAMREC_HTTP__REFIT_TOKEN",
                                           "${file:" + dir.File("token") + "}"}}));
  EXPECT_EQ(e.http.refit_token, "t0ken-from-file");

  // Errors name the key and the file, and say why; never the contents.
  const std::string missing = dir.File("no-such-secret");
  ExpectError(LoadText("http:\n  refit_token: ${file:" + missing + "}\n"),
              {"'http.refit_token'", "'" + missing + "'", "cannot be read",
               "No such file or directory"});
  ExpectError(LoadText("kafka:\n  producer:\n    sasl.password: ${file:" + missing + "}\n"),
              {"'kafka.producer.sasl.password'", missing});
  ExpectError(LoadConfig("", {{"STREAMREC_HTTP__REFIT_TOKEN", "${file:" + missing + "}"}}),
              {"STREAMREC_HTTP__REFIT_TOKEN", "'http.refit_token'", missing});
  ExpectError(LoadText("http:\n  refit_token: ${file:" + dir.path() + "}\n"),
              {"'http.refit_token'", dir.path(), "not a regular file"});
  ExpectError(LoadText("http:\n  refit_token: ${file:/dev/zero}\n"),
              {"'/dev/zero'", "not a regular file"});
  ExpectError(LoadText("http:\n  refit_token: ${file:token}\n"),
              {"'http.refit_token'", "'token'", "not an absolute path"});
  WriteFile(dir.File("big"), std::string(64 * 1024 + 1, 's'));
  ExpectError(LoadText("http:\n  refit_token: ${file:" + dir.File("big") + "}\n"),
              {"'http.refit_token'", "larger than 64 KiB"});
  WriteFile(dir.File("unreadable"), "secret");
  if (::geteuid() != 0) {  // root reads a file whatever its mode
    std::filesystem::permissions(dir.File("unreadable"), std::filesystem::perms::none);
    ExpectError(LoadText("http:\n  refit_token: ${file:" + dir.File("unreadable") + "}\n"),
                {"'http.refit_token'", dir.File("unreadable"), "cannot be read"});
  }
}

TEST(ConfigTest, PseudonymKeyIsRequiredWellFormedAndNeverEchoed) {
  ASSERT_OK_AND_ASSIGN(off, LoadConfig("", {}));
  EXPECT_FALSE(off.log.pseudonymize_customer_ids);
  EXPECT_FALSE(CustomerIdsInLogs::FromConfig(off.log).pseudonymized());
  ExpectError(LoadText("log:\n  pseudonymize_customer_ids: true\n"),
              {"'log.pseudonymize_customer_ids'", "'log.pseudonym_key' is not set"});
  const std::string bad = "not-a-key-hunter2-not-a-key-hun";
  auto c = LoadText("log:\n  pseudonymize_customer_ids: true\n  pseudonym_key: " + bad + "\n");
  ExpectError(c, {"'log.pseudonym_key'", "32 hex digits"});
  EXPECT_EQ(c.status().message().find("hunter2"), std::string::npos) << "a secret was echoed";
  ASSERT_OK_AND_ASSIGN(
      on, LoadConfig("", {{"STREAMREC_LOG__PSEUDONYMIZE_CUSTOMER_IDS", "true"},
                          {"STREAMREC_LOG__PSEUDONYM_KEY", "000102030405060708090A0B0C0D0E0F"}}));
  const CustomerIdsInLogs ids = CustomerIdsInLogs::FromConfig(on.log);
  EXPECT_TRUE(ids.pseudonymized());
  EXPECT_EQ(ids.Name("6281234567890").rfind("c:", 0), 0u);
  // A key without pseudonyms switched on is accepted and unused.
  ASSERT_OK(LoadText("log:\n  pseudonym_key: 000102030405060708090a0b0c0d0e0f\n").status());
}

TEST(ConfigTest, PrefetchBound) {
  ASSERT_OK_AND_ASSIGN(c, LoadConfig("", {}));
  EXPECT_EQ(c.kafka.max_prefetch_mb, 64);
  // 64 MiB of payload, and 2048 records per MiB: 131,072 records.
  const auto props = PrefetchProperties(c.kafka.max_prefetch_mb);
  EXPECT_EQ(props.at("queued.max.messages.kbytes"), "65536");
  EXPECT_EQ(props.at("queued.min.messages"), "131072");
  ASSERT_OK_AND_ASSIGN(small, LoadConfig("", {{"STREAMREC_KAFKA__MAX_PREFETCH_MB", "1"}}));
  EXPECT_EQ(PrefetchProperties(small.kafka.max_prefetch_mb).at("queued.min.messages"), "2048");
  // librdkafka's ceiling for queued.max.messages.kbytes is 2097151.
  ExpectError(LoadText("kafka:\n  max_prefetch_mb: 2048\n"), {"kafka.max_prefetch_mb", "'2048'"});
  ExpectError(LoadText("kafka:\n  max_prefetch_mb: 0\n"), {"kafka.max_prefetch_mb", "'0'"});
  ASSERT_OK(MakeKafkaConf(PrefetchProperties(2047), "consumer").status());
  ASSERT_OK(MakeKafkaConf(PrefetchProperties(1), "consumer").status());
}

TEST(ConfigTest, StandbyReplicasNeedAChangelog) {
  ASSERT_OK_AND_ASSIGN(c, LoadConfig("", {}));
  EXPECT_FALSE(c.kafka.standby_replicas);
  ExpectError(LoadText("kafka:\n  standby_replicas: true\n"),
              {"kafka.standby_replicas", "kafka.changelog_topic"});
  ASSERT_OK_AND_ASSIGN(on, LoadText("kafka:\n  standby_replicas: true\n  changelog_topic: cl\n"));
  EXPECT_TRUE(on.kafka.standby_replicas);
}

TEST(ConfigTest, SampleTopicNeedsAModelTopicAndAShareInRange) {
  ASSERT_OK_AND_ASSIGN(c, LoadConfig("", {}));
  EXPECT_TRUE(c.kafka.sample_topic.empty());
  EXPECT_DOUBLE_EQ(c.kafka.sample_share, 0.05);
  ExpectError(LoadText("kafka:\n  sample_topic: s\n"), {"kafka.sample_topic", "kafka.model_topic"});
  ExpectError(LoadText("kafka:\n  sample_topic: s\n  model_topic: m\n  sample_share: 1.5\n"),
              {"kafka.sample_share", "1.5"});
  ASSERT_OK_AND_ASSIGN(on, LoadText("kafka:\n  sample_topic: s\n  model_topic: m\n"
                                    "  sample_share: 0.01\n"));
  EXPECT_EQ(on.kafka.sample_topic, "s");
  EXPECT_DOUBLE_EQ(on.kafka.sample_share, 0.01);
}

TEST(ConfigTest, CooccurrenceTopicNeedsTheItemStatisticsTopic) {
  ASSERT_OK_AND_ASSIGN(c, LoadConfig("", {}));
  EXPECT_TRUE(c.kafka.cooccurrence_topic.empty());
  EXPECT_EQ(c.kafka.cooccurrence_publish_ms, 2000);
  EXPECT_EQ(c.kafka.cooccurrence_neighbours, 100);
  ExpectError(LoadText("kafka:\n  cooccurrence_topic: co\n"),
              {"kafka.cooccurrence_topic", "kafka.item_stats_topic"});
  ExpectError(LoadText("kafka:\n  cooccurrence_publish_ms: 1\n"),
              {"kafka.cooccurrence_publish_ms", "1"});
  ASSERT_OK_AND_ASSIGN(on, LoadText("kafka:\n  cooccurrence_topic: co\n  item_stats_topic: is\n"
                                    "  cooccurrence_neighbours: 0\n"));
  EXPECT_EQ(on.kafka.cooccurrence_topic, "co");
  EXPECT_EQ(on.kafka.cooccurrence_neighbours, 0);
}

TEST(ConfigTest, SegmentRulesFileIsCheckedAtLoad) {
  TempDir dir;
  const std::string rules = dir.File("rules.csv");
  WriteFile(rules, "name,r_min,r_max,fm_min,fm_max,action\nAll,1,5,1,5,Say hello\n");
  ASSERT_OK_AND_ASSIGN(c, LoadText("segments:\n  rules_file: " + rules +
                                   "\n  transition_window_days: 7\n"));
  EXPECT_EQ(c.segments.rules_file, rules);
  EXPECT_EQ(c.segments.transition_window_days, 7);

  WriteFile(rules, "name,r_min,r_max,fm_min,fm_max,action\nAll,1,5,1,5,ok\nBad,0,5,1,5,x\n");
  ExpectError(LoadText("segments:\n  rules_file: " + rules + "\n"),
              {"segments.rules_file", rules + ":3:", "R range 0-5"});
  ExpectError(LoadText("segments:\n  rules_file: " + dir.File("none.csv") + "\n"),
              {"segments.rules_file", "none.csv"});
  ExpectError(LoadText("segments:\n  transition_window_days: 0\n"),
              {"segments.transition_window_days", "0"});
}

TEST(ConfigTest, SegmentTransformsAndRescoreSweep) {
  ASSERT_OK_AND_ASSIGN(defaults, LoadConfig("", {}));
  EXPECT_EQ(defaults.segments.transforms, "");
  EXPECT_EQ(defaults.segments.rescore_per_batch, 50);
  EXPECT_TRUE(defaults.segments.rescore_moves_centres);
  ASSERT_OK_AND_ASSIGN(c, LoadText("segments:\n  transforms: monetary:yeo-johnson,frequency:log1p,"
                                   "avg_discount:none\n  rescore_per_batch: 50\n"
                                   "  rescore_moves_centres: false\n"));
  EXPECT_EQ(c.segments.transforms, "monetary:yeo-johnson,frequency:log1p,avg_discount:none");
  EXPECT_EQ(c.segments.rescore_per_batch, 50);
  EXPECT_FALSE(c.segments.rescore_moves_centres);
  ASSERT_OK_AND_ASSIGN(options, SegmentFitOptions::FromConfig(c.segments));
  EXPECT_EQ(options.transforms[2], FeatureTransformKind::kYeoJohnson);

  ExpectError(LoadText("segments:\n  transforms: monetary:box-cox\n"),
              {"segments.transforms", "monetary", "box-cox"});
  // A feature the clustering vector does not hold.
  ExpectError(LoadText("segments:\n  features: recency_days,frequency\n"
                       "  transforms: monetary:log1p\n"),
              {"segments.transforms", "'monetary'"});
  ExpectError(LoadText("segments:\n  rescore_per_batch: -1\n"),
              {"segments.rescore_per_batch", "-1"});
}

TEST(ConfigTest, AlsKeysAndOnePopularityHalfLife) {
  ASSERT_OK_AND_ASSIGN(defaults, LoadConfig("", {}));
  EXPECT_EQ(defaults.recommend.als_confidence, "linear");
  EXPECT_EQ(defaults.features.item_half_life_days, defaults.recommend.popularity_half_life_days);
  ASSERT_OK_AND_ASSIGN(c, LoadText("recommend:\n  als_factors: 16\n  als_iterations: 4\n"
                                   "  als_regularization: 0.5\n  als_confidence: log\n"
                                   "  als_alpha: 3\n  als_threads: 1\n"
                                   "  popularity_half_life_days: 5\n"));
  EXPECT_EQ(c.recommend.als_factors, 16);
  EXPECT_EQ(c.recommend.als_iterations, 4);
  EXPECT_EQ(c.recommend.als_regularization, 0.5);
  EXPECT_EQ(c.recommend.als_confidence, "log");
  EXPECT_EQ(c.recommend.als_alpha, 3);
  EXPECT_EQ(c.recommend.als_threads, 1);
  // The items' stored decayed counts follow the popularity half-life the strategies read.
  EXPECT_EQ(c.features.item_half_life_days, 5);
  ExpectError(LoadText("recommend:\n  als_confidence: sqrt\n"),
              {"recommend.als_confidence", "sqrt"});
  ExpectError(LoadText("recommend:\n  als_factors: 0\n"), {"recommend.als_factors", "0"});
}

TEST(ConfigTest, MissingOrBrokenFile) {
  ExpectError(LoadConfig("/nonexistent/streamrec.yaml", {}), {"/nonexistent/streamrec.yaml"});
  ExpectError(LoadText("state: [unclosed\n"), {"c.yaml"});
}

// LoadConfigFromString (what fuzz/config_fuzz.cc drives) is LoadConfig without the file.
TEST(ConfigTest, FromStringMatchesTheFileAndNamesTheDocument) {
  const std::string yaml =
      "input:\n  fields:\n    customer_id: MSISDN\nhttp:\n  refit_token: ${TOKEN}\n";
  const Environment env = {{"TOKEN", "t"}, {"STREAMREC_STATE__BLOCK_CACHE_MB", "512"}};
  ASSERT_OK_AND_ASSIGN(from_file, LoadText(yaml, env));
  ASSERT_OK_AND_ASSIGN(from_string, LoadConfigFromString(yaml, "inline", env));
  EXPECT_EQ(from_string.input.decoder.fields.customer_id, "MSISDN");
  EXPECT_EQ(from_string.http.refit_token, from_file.http.refit_token);
  EXPECT_EQ(from_string.state.block_cache_mb, 512);
  ASSERT_OK_AND_ASSIGN(empty, LoadConfigFromString("", "inline", {}));
  EXPECT_EQ(empty.pipeline.batch_size, 5000);
  ExpectError(LoadConfigFromString("state: [unclosed\n", "inline", {}), {"'inline'"});
  ExpectError(LoadConfigFromString("nope: 1\n", "inline", {}), {"'inline'", "unknown key 'nope'"});
}

TEST(ConfigTest, PrintedDefaultsLoadBackToDefaults) {
  std::string yaml = DefaultConfigYaml();
  EXPECT_NE(yaml.find("block_cache_mb: 256"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("# "), std::string::npos);
  ASSERT_OK_AND_ASSIGN(loaded, LoadText(yaml));
  ASSERT_OK_AND_ASSIGN(defaults, LoadConfig("", {}));
  // Printing the loaded config again gives the same text: every key round-trips.
  (void)defaults;
  EXPECT_EQ(loaded.state.block_cache_mb, defaults.state.block_cache_mb);
  EXPECT_EQ(loaded.input.decoder.csv_delimiter, ',');
  EXPECT_EQ(loaded.input.decoder.fields.event_time, "timestamp");
  EXPECT_EQ(loaded.recommend.control_share, defaults.recommend.control_share);
  EXPECT_EQ(loaded.input.decoder.max_event_time_ms, defaults.input.decoder.max_event_time_ms);
  EXPECT_EQ(loaded.catalog_path, "");
}

}  // namespace
}  // namespace streamrec
