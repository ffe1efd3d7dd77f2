#include "streamrec/config.h"

#include "streamrec/blended_recommender.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <vector>

#include "streamrec/blended_recommender.h"
#include "streamrec/kmeans_segmenter.h"
#include "streamrec/pseudonym.h"
#include "streamrec/time_util.h"

extern char** environ;

namespace streamrec {

namespace {

// One configuration key: how to parse it into a Config and how to print its value.
struct KeySpec {
  std::string path;
  std::string doc;
  std::function<Status(Config*, const std::string&)> set;
  std::function<std::string(const Config&)> get;
};

Status BadValue(const std::string& path, const std::string& value, const std::string& expected) {
  return Status::InvalidArgument("configuration key '" + path + "': bad value '" + value +
                                 "' (expected " + expected + ")");
}

std::string FormatDouble(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, end);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string QuoteIfNeeded(const std::string& s) {
  if (s.empty()) return "\"\"";
  bool plain = std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
           c == '/';
  });
  if (plain && s != "true" && s != "false" && s != "null") return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

template <typename Access>
KeySpec IntKey(std::string path, std::string doc, Access access, int64_t min, int64_t max) {
  KeySpec k{path, std::move(doc), nullptr, nullptr};
  k.set = [=](Config* c, const std::string& v) -> Status {
    int64_t parsed = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
    if (ec != std::errc() || end != v.data() + v.size()) return BadValue(path, v, "an integer");
    if (parsed < min || parsed > max) {
      return BadValue(path, v, "an integer in [" + std::to_string(min) + ", " +
                                   std::to_string(max) + "]");
    }
    access(*c) = static_cast<std::remove_reference_t<decltype(access(*c))>>(parsed);
    return Status::OK();
  };
  k.get = [=](const Config& c) { return std::to_string(access(const_cast<Config&>(c))); };
  return k;
}

template <typename Access>
KeySpec DoubleKey(std::string path, std::string doc, Access access, double min, double max) {
  KeySpec k{path, std::move(doc), nullptr, nullptr};
  k.set = [=](Config* c, const std::string& v) -> Status {
    double parsed = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
    if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(parsed)) {
      return BadValue(path, v, "a number");
    }
    if (parsed < min || parsed > max) {
      return BadValue(path, v, "a number in [" + FormatDouble(min) + ", " + FormatDouble(max) + "]");
    }
    access(*c) = parsed;
    return Status::OK();
  };
  k.get = [=](const Config& c) { return FormatDouble(access(const_cast<Config&>(c))); };
  return k;
}

template <typename Access>
KeySpec BoolKey(std::string path, std::string doc, Access access) {
  KeySpec k{path, std::move(doc), nullptr, nullptr};
  k.set = [=](Config* c, const std::string& v) -> Status {
    std::string lower = v;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") {
      access(*c) = true;
    } else if (lower == "false" || lower == "no" || lower == "off" || lower == "0") {
      access(*c) = false;
    } else {
      return BadValue(path, v, "true or false");
    }
    return Status::OK();
  };
  k.get = [=](const Config& c) { return std::string(access(const_cast<Config&>(c)) ? "true" : "false"); };
  return k;
}

// A string; when `allowed` is not empty the value must be one of them.
template <typename Access>
KeySpec StringKey(std::string path, std::string doc, Access access,
                  std::vector<std::string> allowed = {}) {
  KeySpec k{path, std::move(doc), nullptr, nullptr};
  k.set = [=](Config* c, const std::string& v) -> Status {
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return BadValue(path, v, "one of " + list);
    }
    access(*c) = v;
    return Status::OK();
  };
  k.get = [=](const Config& c) { return QuoteIfNeeded(access(const_cast<Config&>(c))); };
  return k;
}

const char* TimestampFormatName(TimestampFormat f) {
  switch (f) {
    case TimestampFormat::kAuto: return "auto";
    case TimestampFormat::kIso8601: return "iso8601";
    case TimestampFormat::kEpochSeconds: return "epoch_s";
    case TimestampFormat::kEpochMillis: return "epoch_ms";
  }
  return "auto";
}

const std::vector<KeySpec>& Schema() {
  static const std::vector<KeySpec> kSchema = [] {
    std::vector<KeySpec> s;
    // input
    s.push_back(StringKey("input.format",
                          "record format: csv (header row), json (one object per line/message), "
                          "protobuf (streamrec.v1.PurchaseEvent; Kafka only)",
                          [](Config& c) -> std::string& { return c.input.format; },
                          {"csv", "json", "protobuf"}));
    {
      KeySpec k{"input.timestamp_format",
                "auto (ISO-8601 text, or epoch seconds < 1e11 <= epoch ms), iso8601, epoch_s, "
                "epoch_ms",
                nullptr, nullptr};
      k.set = [](Config* c, const std::string& v) -> Status {
        for (auto f : {TimestampFormat::kAuto, TimestampFormat::kIso8601,
                       TimestampFormat::kEpochSeconds, TimestampFormat::kEpochMillis}) {
          if (v == TimestampFormatName(f)) {
            c->input.decoder.timestamp_format = f;
            return Status::OK();
          }
        }
        return BadValue("input.timestamp_format", v, "one of auto, iso8601, epoch_s, epoch_ms");
      };
      k.get = [](const Config& c) {
        return std::string(TimestampFormatName(c.input.decoder.timestamp_format));
      };
      s.push_back(std::move(k));
    }
    {
      KeySpec k{"input.default_zone",
                "zone of ISO-8601 times written without an offset: UTC or a fixed offset such "
                "as +07:00",
                nullptr, nullptr};
      k.set = [](Config* c, const std::string& v) -> Status {
        auto offset = ParseUtcOffset(v);
        if (!offset.ok()) {
          return BadValue("input.default_zone", v, "UTC or a fixed offset like +07:00");
        }
        c->input.default_zone = v;
        c->input.decoder.default_utc_offset_minutes = *offset;
        return Status::OK();
      };
      k.get = [](const Config& c) { return QuoteIfNeeded(c.input.default_zone); };
      s.push_back(std::move(k));
    }
    s.push_back(BoolKey("input.allow_negative_quantity",
                        "accept quantity < 0 (returns); otherwise such records are invalid",
                        [](Config& c) -> bool& { return c.input.decoder.allow_negative_quantity; }));
    {
      KeySpec k{"input.csv_delimiter", "CSV field delimiter (one character)", nullptr, nullptr};
      k.set = [](Config* c, const std::string& v) -> Status {
        std::string d = v == "\\t" ? "\t" : v;
        if (d.size() != 1 || d == "\"" || d == "\n") {
          return BadValue("input.csv_delimiter", v, "one character other than a quote");
        }
        c->input.decoder.csv_delimiter = d[0];
        return Status::OK();
      };
      k.get = [](const Config& c) {
        char d = c.input.decoder.csv_delimiter;
        return d == '\t' ? std::string("\"\\t\"") : QuoteIfNeeded(std::string(1, d));
      };
      s.push_back(std::move(k));
    }
    s.push_back(IntKey("input.min_event_time_ms",
                       "events before this time (ms since epoch) are rejected as absurd",
                       [](Config& c) -> int64_t& { return c.input.decoder.min_event_time_ms; }, 0,
                       std::numeric_limits<int64_t>::max()));
    s.push_back(IntKey("input.max_event_time_ms",
                       "events after this time (ms since epoch) are rejected as absurd",
                       [](Config& c) -> int64_t& { return c.input.decoder.max_event_time_ms; }, 1,
                       std::numeric_limits<int64_t>::max()));
    struct FieldSpec {
      const char* name;
      std::string FieldNames::*member;
    };
    for (const FieldSpec& f : std::initializer_list<FieldSpec>{
             {"event_id", &FieldNames::event_id},
             {"customer_id", &FieldNames::customer_id},
             {"item_id", &FieldNames::item_id},
             {"event_time", &FieldNames::event_time},
             {"quantity", &FieldNames::quantity},
             {"unit_price", &FieldNames::unit_price},
             {"amount", &FieldNames::amount},
             {"discount", &FieldNames::discount},
             {"channel", &FieldNames::channel},
             {"currency", &FieldNames::currency}}) {
      auto member = f.member;
      s.push_back(StringKey(std::string("input.fields.") + f.name,
                            std::string("source field (JSON key / CSV column) carrying ") + f.name,
                            [member](Config& c) -> std::string& {
                              return c.input.decoder.fields.*member;
                            }));
    }
    // state
    s.push_back(StringKey("state.dir", "RocksDB directory (replay: --state-dir overrides)",
                          [](Config& c) -> std::string& { return c.state.path; }));
    s.push_back(BoolKey("state.sync_wal",
                        "fsync the write-ahead log at every batch commit (survives power loss; "
                        "slower)",
                        [](Config& c) -> bool& { return c.state.sync_wal; }));
    s.push_back(IntKey("state.block_cache_mb", "RocksDB block cache, MiB",
                       [](Config& c) -> int& { return c.state.block_cache_mb; }, 8, 1 << 20));
    s.push_back(IntKey("state.write_buffer_mb", "RocksDB memtable size per column family, MiB",
                       [](Config& c) -> int& { return c.state.write_buffer_mb; }, 1, 1 << 16));
    s.push_back(StringKey("state.bottommost_compression",
                          "compression of RocksDB's last level, where nearly all data ends up "
                          "(none = as state.compression)",
                          [](Config& c) -> std::string& { return c.state.bottommost_compression; },
                          {"none", "snappy", "lz4", "zstd"}));
    s.push_back(IntKey("state.zstd_level", "zstd level of the last level",
                       [](Config& c) -> int& { return c.state.zstd_level; }, -5, 22));
    s.push_back(IntKey("state.dictionary_kb",
                       "compression dictionary of the last level, KiB, trained per file (0 = none)",
                       [](Config& c) -> int& { return c.state.dictionary_kb; }, 0, 1024));
    s.push_back(IntKey("state.block_size_kb", "RocksDB data block size before compression, KiB",
                       [](Config& c) -> int& { return c.state.block_size_kb; }, 1, 1024));
    s.push_back(IntKey("state.memtable_budget_mb",
                       "all column families' memtables together, MiB (0 = no cap)",
                       [](Config& c) -> int& { return c.state.memtable_budget_mb; }, 0, 1 << 20));
    s.push_back(StringKey("state.compression", "block compression",
                          [](Config& c) -> std::string& { return c.state.compression; },
                          {"none", "snappy", "lz4", "zstd"}));
    // features
    s.push_back(IntKey("features.max_items_per_customer",
                       "distinct items remembered per customer (least bought dropped first)",
                       [](Config& c) -> int& { return c.features.max_items_per_customer; }, 1,
                       4096));
    s.push_back(IntKey("features.max_channels", "distinct channels counted per customer",
                       [](Config& c) -> int& { return c.features.max_channels; }, 1, 256));
    s.push_back(IntKey("features.max_service_types",
                       "distinct service types / categories counted per customer",
                       [](Config& c) -> int& { return c.features.max_service_types; }, 1, 256));
    s.push_back(DoubleKey("features.spend_half_life_days",
                          "half-life of decayed spend and item popularity counts, days",
                          [](Config& c) -> double& { return c.features.spend_half_life_days; },
                          0.01, 36500));
    // pipeline
    s.push_back(IntKey("pipeline.state_cache_customers",
                       "decoded states of recently changed customers kept in memory in front of "
                       "RocksDB (write-through; 0 = none)",
                       [](Config& c) -> int64_t& { return c.pipeline.state_cache_customers; }, 0,
                       int64_t{1} << 32));
    s.push_back(IntKey("pipeline.batch_size", "records per micro-batch",
                       [](Config& c) -> int& { return c.pipeline.batch_size; }, 1, 1000000));
    // recommend
    s.push_back(IntKey("recommend.list_length", "items per recommendation list",
                       [](Config& c) -> int& { return c.recommend.list_length; }, 1, 1000));
    s.push_back(DoubleKey("recommend.popularity_half_life_days",
                          "half-life of item popularity (the items' decayed purchase counts and "
                          "the rankings that read them), days of event time",
                          [](Config& c) -> double& { return c.recommend.popularity_half_life_days; },
                          0.01, 36500));
    s.push_back(BoolKey("recommend.exclude_owned", "never offer an item the customer bought",
                        [](Config& c) -> bool& { return c.recommend.exclude_owned; }));
    s.push_back(DoubleKey("recommend.control_share",
                          "share of customers in the control group (hash of the customer id)",
                          [](Config& c) -> double& { return c.recommend.control_share; }, 0, 1));
    s.push_back(BoolKey("recommend.reoffer_due_exempt",
                        "owned items the re-offer strategy finds due may be offered again",
                        [](Config& c) -> bool& { return c.recommend.reoffer_due_exempt; }));
    s.push_back(StringKey("recommend.weights",
                          "strategy weights of every segment, name=weight,... over cooccurrence, "
                          "similar, als, popularity, upsell, reoffer (left out = 0)",
                          [](Config& c) -> std::string& { return c.recommend.weights; }));
    s.push_back(StringKey("recommend.segment_weights",
                          "per-segment weights, Segment:name=w,...;Segment:... (a segment named "
                          "here uses only its own weights)",
                          [](Config& c) -> std::string& { return c.recommend.segment_weights; }));
    s.push_back(IntKey("recommend.threads",
                       "threads building the lists of a micro-batch (the lists do not depend on "
                       "it; 1 = the consumer thread alone)",
                       [](Config& c) -> int& { return c.recommend.threads; }, 1, 64));
    s.push_back(IntKey("recommend.candidates_per_strategy",
                       "candidates each strategy proposes before the blend",
                       [](Config& c) -> int& { return c.recommend.candidates_per_strategy; }, 1,
                       100000));
    s.push_back(DoubleKey("recommend.price_cap_ratio",
                          "rule: an item may cost at most this many times the customer's average "
                          "price per purchase line; 0 = no cap",
                          [](Config& c) -> double& { return c.recommend.price_cap_ratio; }, 0, 1e9));
    s.push_back(BoolKey("recommend.channel_eligibility",
                        "rule: an item with a channel list only for customers whose main channel "
                        "is in it",
                        [](Config& c) -> bool& { return c.recommend.channel_eligibility; }));
    s.push_back(StringKey("recommend.exclude_items", "rule: item ids never offered, comma-separated",
                          [](Config& c) -> std::string& { return c.recommend.exclude_items; }));
    s.push_back(DoubleKey(
        "recommend.basket_coverage",
        "rules: an owned item bought in the same recent baskets as items already listed adds "
        "less (0 = plain score order, 1 = only what it adds)",
        [](Config& c) -> double& { return c.recommend.basket_coverage; }, 0, 1));
    s.push_back(IntKey("recommend.max_per_category",
                       "rule: at most this many items of one service type / category per list; "
                       "0 = no limit",
                       [](Config& c) -> int& { return c.recommend.max_per_category; }, 0, 1000));
    s.push_back(IntKey("recommend.max_exemplars",
                       "at most this many exemplars, those of the share whose ids hash lowest "
                       "(0 = no cap): bounds the panel and the similar strategy's work per list",
                       [](Config& c) -> int64_t& { return c.recommend.max_exemplars; }, 0,
                       int64_t{1} << 32));
    s.push_back(DoubleKey("recommend.exemplar_share",
                          "share of customers (hash of the id) in the exemplar panel behind "
                          "segment popularity and similar customers",
                          [](Config& c) -> double& { return c.recommend.exemplar_share; }, 0, 1));
    s.push_back(DoubleKey("recommend.refresh_after_days",
                          "a list older than this (event time) is refreshed in the background "
                          "even if its customer is quiet; 0 = never",
                          [](Config& c) -> double& { return c.recommend.refresh_after_days; }, 0,
                          36500));
    s.push_back(IntKey("recommend.refresh_per_batch",
                       "at most this many stale lists refreshed per micro-batch (rate limit)",
                       [](Config& c) -> int& { return c.recommend.refresh_per_batch; }, 0,
                       1000000));
    s.push_back(DoubleKey(
        "recommend.popularity_segment_tilt",
        "popularity: how strongly the customer's segment tilts it; 0 = global only",
        [](Config& c) -> double& { return c.recommend.strategies.popularity_segment_tilt; }, 0, 10));
    s.push_back(DoubleKey("recommend.cooccurrence_recency_half_life_days",
                          "co-occurrence: half-life of an owned item's weight by how recently it "
                          "was bought, days",
                          [](Config& c) -> double& {
                            return c.recommend.strategies.cooccurrence_recency_half_life_days;
                          },
                          0.01, 36500));
    s.push_back(DoubleKey(
        "recommend.cooccurrence_recency_floor",
        "co-occurrence: the weight an old owned item never falls below (0..1)",
        [](Config& c) -> double& { return c.recommend.strategies.cooccurrence_recency_floor; }, 0,
        1));
    s.push_back(DoubleKey(
        "recommend.cooccurrence_alpha",
        "co-occurrence: n_ij / (n_i^a * n_j^(1-a)); 0.5 = cosine",
        [](Config& c) -> double& { return c.recommend.strategies.cooccurrence_alpha; }, 0, 1));
    s.push_back(DoubleKey(
        "recommend.cooccurrence_trend",
        "co-occurrence: exponent of the trend factor (recent purchases / buyers); 0 = off",
        [](Config& c) -> double& { return c.recommend.strategies.cooccurrence_trend; }, 0, 10));
    s.push_back(IntKey(
        "recommend.cooccurrence_max_query_items",
        "co-occurrence: the most recently bought owned items that query the table",
        [](Config& c) -> int& { return c.recommend.strategies.cooccurrence_max_query_items; }, 1,
        4096));
    s.push_back(IntKey("recommend.similar_neighbours",
                       "similar customers: neighbours taken from the exemplar panel",
                       [](Config& c) -> int& { return c.recommend.strategies.similar_neighbours; },
                       1, 10000));
    s.push_back(DoubleKey(
        "recommend.reoffer_due_ratio",
        "re-offer: due when time since last purchase reaches this share of the usual gap",
        [](Config& c) -> double& { return c.recommend.strategies.reoffer_due_ratio; }, 0, 100));
    s.push_back(DoubleKey(
        "recommend.reoffer_repeat_exponent",
        "re-offer: weight of the item's repeat share over all customers (0 = the customer's own "
        "habit only)",
        [](Config& c) -> double& { return c.recommend.strategies.reoffer_repeat_exponent; }, 0,
        10));
    s.push_back(DoubleKey(
        "recommend.upsell_price_ratio",
        "upsell: a higher tier costs at most this many times the customer's usual price",
        [](Config& c) -> double& { return c.recommend.strategies.upsell_price_ratio; }, 1, 1000));
    s.push_back(StringKey(
        "recommend.upsell_top_segments",
        "upsell: segments shown the top of the ladder, comma-separated",
        [](Config& c) -> std::string& { return c.recommend.strategies.upsell_top_segments; }));
    s.push_back(IntKey("recommend.als_refit_every_events",
                       "re-fit the ALS model every this many events (0 = only when the segments "
                       "are re-fitted)",
                       [](Config& c) -> int64_t& { return c.recommend.als_refit_every_events; },
                       0, int64_t{1} << 50));
    s.push_back(IntKey("recommend.als_factors",
                       "ALS: latent factors per customer and item (cost per fit grows as f^2)",
                       [](Config& c) -> int& { return c.recommend.als_factors; }, 1, 1024));
    s.push_back(IntKey("recommend.als_iterations", "ALS: alternating sweeps per full fit",
                       [](Config& c) -> int& { return c.recommend.als_iterations; }, 1, 1000));
    s.push_back(IntKey("recommend.als_max_customers",
                       "ALS: customers a fit reads at most, a sample by hash of the id (0 = every "
                       "customer); the others are folded in at list time",
                       [](Config& c) -> int64_t& { return c.recommend.als_max_customers; }, 0,
                       int64_t{1} << 40));
    s.push_back(IntKey("recommend.als_warm_iterations",
                       "ALS: sweeps of a re-fit started from the model in use (0 = every re-fit "
                       "starts cold, with als_iterations)",
                       [](Config& c) -> int& { return c.recommend.als_warm_iterations; }, 0,
                       1000));
    s.push_back(DoubleKey("recommend.als_regularization",
                          "ALS: L2 penalty on the factors",
                          [](Config& c) -> double& { return c.recommend.als_regularization; }, 0,
                          1e6));
    s.push_back(StringKey("recommend.als_confidence",
                          "ALS: how purchase lines become a confidence: linear (c = 1 + alpha r) "
                          "or log (c = 1 + alpha ln(1 + r))",
                          [](Config& c) -> std::string& { return c.recommend.als_confidence; },
                          {"linear", "log"}));
    s.push_back(DoubleKey("recommend.als_alpha",
                          "ALS: confidence slope (Hu, Koren & Volinsky's alpha)",
                          [](Config& c) -> double& { return c.recommend.als_alpha; }, 0, 1e6));
    s.push_back(IntKey("recommend.als_threads", "ALS: threads of a full fit",
                       [](Config& c) -> int& { return c.recommend.als_threads; }, 1, 256));
    s.push_back(IntKey("recommend.als_refit_nice",
                       "ALS: nice value of a background re-fit's threads (ingestion keeps the CPU; "
                       "0 = the service's priority)",
                       [](Config& c) -> int& { return c.recommend.als_refit_nice; }, 0, 19));
    // segments
    s.push_back(DoubleKey("segments.champion_spend",
                          "rule segmenter: spend that makes a 10+-basket customer a Champion",
                          [](Config& c) -> double& { return c.segments.champion_spend; }, 0,
                          1e15));
    s.push_back(StringKey("segments.method",
                          "kmeans (online mini-batch K-Means + full re-fits) or rules (fixed RFM rules)",
                          [](Config& c) -> std::string& { return c.segments.method; },
                          {"kmeans", "rules"}));
    {
      KeySpec k{"segments.k", "clusters of a full re-fit: an integer >= 2, or auto (silhouette over k_min..k_max)",
                nullptr, nullptr};
      k.set = [](Config* c, const std::string& v) -> Status {
        if (v == "auto") {
          c->segments.k = 0;
          return Status::OK();
        }
        int parsed = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
        if (ec != std::errc() || end != v.data() + v.size() || parsed < 2 || parsed > 1000) {
          return BadValue("segments.k", v, "auto or an integer in [2, 1000]");
        }
        c->segments.k = parsed;
        return Status::OK();
      };
      k.get = [](const Config& c) {
        return c.segments.k == 0 ? std::string("auto") : std::to_string(c.segments.k);
      };
      s.push_back(std::move(k));
    }
    s.push_back(IntKey("segments.k_min", "k: auto tries k from k_min ...",
                       [](Config& c) -> int& { return c.segments.k_min; }, 2, 1000));
    s.push_back(IntKey("segments.k_max", "... to k_max",
                       [](Config& c) -> int& { return c.segments.k_max; }, 2, 1000));
    s.push_back(IntKey("segments.n_init", "K-Means initialisations per fit (lowest objective wins)",
                       [](Config& c) -> int& { return c.segments.n_init; }, 1, 1000));
    s.push_back(IntKey("segments.seed", "seed of k-means++ seeding, sampling and re-seeding",
                       [](Config& c) -> uint64_t& { return c.segments.seed; }, 0,
                       std::numeric_limits<int64_t>::max()));
    s.push_back(IntKey("segments.max_iterations", "Lloyd iterations per initialisation",
                       [](Config& c) -> int& { return c.segments.max_iterations; }, 1, 100000));
    s.push_back(IntKey("segments.refit_every_events",
                       "full re-fit after this many customer updates since the last fit; 0 = never",
                       [](Config& c) -> int64_t& { return c.segments.refit_every_events; }, 0,
                       std::numeric_limits<int64_t>::max()));
    s.push_back(DoubleKey("segments.refit_growth_ratio",
                          "full re-fit when customer updates since the last fit exceed this ratio x the "
                          "customers it was fitted on; 0 = never",
                          [](Config& c) -> double& { return c.segments.refit_growth_ratio; }, 0, 1e6));
    s.push_back(DoubleKey("segments.refit_interval_days",
                          "full re-fit when event time moved this many days past the last fit; 0 = never",
                          [](Config& c) -> double& { return c.segments.refit_interval_days; }, 0,
                          1e6));
    s.push_back(DoubleKey("segments.drift_ratio",
                          "full re-fit when the smoothed online objective exceeds this ratio x the fit's "
                          "(per customer); 0 = never",
                          [](Config& c) -> double& { return c.segments.drift_ratio; }, 0, 1e6));
    s.push_back(IntKey("segments.refit_sample_size",
                       "a re-fit trains on a uniform sample of at most this many customers, then assigns all",
                       [](Config& c) -> int64_t& { return c.segments.refit_sample_size; }, 100,
                       std::numeric_limits<int64_t>::max()));
    s.push_back(IntKey("segments.silhouette_sample_size",
                       "customers sampled for the silhouette score (k: auto and reports)",
                       [](Config& c) -> int64_t& { return c.segments.silhouette_sample_size; }, 10,
                       1000000));
    s.push_back(IntKey("segments.min_customers_for_fit",
                       "customers seen before the first model is fitted (until then: Unscored)",
                       [](Config& c) -> int64_t& { return c.segments.min_customers_for_fit; }, 2,
                       std::numeric_limits<int64_t>::max()));
    s.push_back(StringKey("segments.features",
                          "comma-separated clustering features (recency_days, frequency, monetary, avg_spend, "
                          "avg_discount, mean_gap_days, tenure_days, channel_share:<c>, service_share:<s>); "
                          "empty = the first seven",
                          [](Config& c) -> std::string& { return c.segments.features; }));
    s.push_back(
        StringKey("segments.transforms",
                  "per-feature transform before standardisation, feature:transform,... "
                  "e.g. monetary:yeo-johnson,frequency:log1p,avg_discount:none (none, "
                  "log1p, yeo-johnson: lambda fitted by maximum likelihood at each full "
                  "re-fit, stored with the model version); features not named keep the "
                  "default (log1p for counts, amounts and days, none for ratios and shares)",
                  [](Config& c) -> std::string& { return c.segments.transforms; }));
    s.push_back(DoubleKey("segments.half_life_events",
                          "forgetting of the online centres: half-life in customer updates; 0 = off",
                          [](Config& c) -> double& { return c.segments.half_life_events; }, 0, 1e15));
    s.push_back(DoubleKey("segments.reassignment_ratio",
                          "re-seed an online centre lighter than this ratio x the heaviest; 0 = never",
                          [](Config& c) -> double& { return c.segments.reassignment_ratio; }, 0, 1));
    s.push_back(IntKey("segments.threads", "threads of a full re-fit (results do not depend on it)",
                       [](Config& c) -> int& { return c.segments.threads; }, 1, 256));
    s.push_back(IntKey("segments.refit_nice",
                       "nice value of a background re-fit's threads (ingestion keeps the CPU; 0 = "
                       "the service's priority)",
                       [](Config& c) -> int& { return c.segments.refit_nice; }, 0, 19));
    s.push_back(IntKey(
        "segments.rescore_per_batch",
        "stored customers re-assigned to the online centres per micro-batch (a "
        "cursor over the store, wrapping); 0 = off",
        [](Config& c) -> int64_t& { return c.segments.rescore_per_batch; }, 0,
        std::numeric_limits<int64_t>::max()));
    s.push_back(BoolKey("segments.rescore_moves_centres",
                        "the swept customers also take part in the online mini-batch step (the "
                        "centres follow the whole population, not only buyers)",
                        [](Config& c) -> bool& { return c.segments.rescore_moves_centres; }));
    s.push_back(IntKey("segments.transition_window_days",
                       "event-time days the segment transition matrix sums (per-day counts)",
                       [](Config& c) -> int& { return c.segments.transition_window_days; }, 1,
                       3650));
    s.push_back(StringKey("segments.rules_file",
                          "CSV name,r_min,r_max,fm_min,fm_max,action replacing the default naming "
                          "rules; empty = default",
                          [](Config& c) -> std::string& { return c.segments.rules_file; }));
    // kafka
    s.push_back(StringKey("kafka.brokers",
                          "bootstrap.servers; empty: demo uses an embedded cluster, run refuses",
                          [](Config& c) -> std::string& { return c.kafka.brokers; }));
    s.push_back(StringKey("kafka.group_id", "consumer group id",
                          [](Config& c) -> std::string& { return c.kafka.group_id; }));
    s.push_back(StringKey("kafka.input_topic", "purchases topic",
                          [](Config& c) -> std::string& { return c.kafka.input_topic; }));
    s.push_back(StringKey("kafka.output_topic", "recommendations topic (compacted, key = customer)",
                          [](Config& c) -> std::string& { return c.kafka.output_topic; }));
    s.push_back(StringKey("kafka.dead_letter_topic", "where undecodable/invalid records go",
                          [](Config& c) -> std::string& { return c.kafka.dead_letter_topic; }));
    s.push_back(StringKey("kafka.segment_change_topic", "SegmentChange records",
                          [](Config& c) -> std::string& { return c.kafka.segment_change_topic; }));
    s.push_back(StringKey("kafka.changelog_topic",
                          "changelog of customer states, partitioned like the input (compacted, "
                          "key = customer); empty: none",
                          [](Config& c) -> std::string& { return c.kafka.changelog_topic; }));
    s.push_back(BoolKey("kafka.standby_replicas",
                        "keep warm copies of the partitions other instances own by tailing their "
                        "changelog (needs kafka.changelog_topic): a failover reads only the "
                        "changelog's tail",
                        [](Config& c) -> bool& { return c.kafka.standby_replicas; }));
    s.push_back(StringKey("kafka.model_topic",
                          "one segment model and one ALS model for all instances: the owner of "
                          "input partition 0 fits them and publishes them here (1 partition, "
                          "compacted), the others adopt them; empty: each instance fits its own",
                          [](Config& c) -> std::string& { return c.kafka.model_topic; }));
    s.push_back(StringKey("kafka.item_stats_topic",
                          "global item statistics: each instance publishes its partitions' item "
                          "statistics here (partitioned like the input, compacted, key = item) "
                          "and sums the others' with its own; empty: each instance counts the "
                          "partitions it processed",
                          [](Config& c) -> std::string& { return c.kafka.item_stats_topic; }));
    s.push_back(StringKey("kafka.sample_topic",
                          "samples for the shared segment fits: each instance publishes the "
                          "states of its customers in a uniform sample here (partitioned like "
                          "the input, compacted, key = customer) and the instance that fits for "
                          "all (kafka.model_topic) adds the other partitions' to its own; empty: "
                          "it fits on the customers it holds",
                          [](Config& c) -> std::string& { return c.kafka.sample_topic; }));
    s.push_back(DoubleKey("kafka.sample_share",
                          "share of the customers in that sample (by a hash of the id: the same "
                          "customers on every instance and run)",
                          [](Config& c) -> double& { return c.kafka.sample_share; }, 1e-6, 1.0));
    s.push_back(StringKey("kafka.cooccurrence_topic",
                          "global co-occurrence: each instance publishes its partitions' "
                          "co-occurrence rows here (partitioned like the input, compacted, key = "
                          "item) and adds the others' to its own customers'; needs "
                          "kafka.item_stats_topic; empty: each instance's covers the customers "
                          "it holds",
                          [](Config& c) -> std::string& { return c.kafka.cooccurrence_topic; }));
    s.push_back(IntKey("kafka.cooccurrence_publish_ms",
                       "changed co-occurrence rows are published at most this often (ms)",
                       [](Config& c) -> int& { return c.kafka.cooccurrence_publish_ms; }, 10,
                       3600000));
    s.push_back(IntKey("kafka.cooccurrence_neighbours",
                       "strongest neighbours a published co-occurrence row keeps (0 = all)",
                       [](Config& c) -> int& { return c.kafka.cooccurrence_neighbours; }, 0,
                       100000));
    s.push_back(StringKey("kafka.output_format", "value encoding of the output topics",
                          [](Config& c) -> std::string& { return c.kafka.output_format; },
                          {"protobuf", "json"}));
    s.push_back(StringKey("kafka.assignment_strategy", "partition.assignment.strategy",
                          [](Config& c) -> std::string& { return c.kafka.assignment_strategy; },
                          {"cooperative-sticky", "range", "roundrobin", "range,roundrobin"}));
    s.push_back(IntKey("kafka.max_batch_ms", "a micro-batch closes after this many ms",
                       [](Config& c) -> int& { return c.kafka.max_batch_ms; }, 1, 60000));
    s.push_back(IntKey("kafka.max_in_flight",
                       "unacknowledged output records above which partitions are paused",
                       [](Config& c) -> int& { return c.kafka.max_in_flight; }, 100, 100000000));
    s.push_back(IntKey("kafka.max_prefetch_mb",
                       "input fetched ahead of processing, MiB: librdkafka's queue is capped at "
                       "this much record payload and at 2048 records per MiB (~320 B of "
                       "bookkeeping each); fetching stops there, lag grows, nothing is dropped",
                       [](Config& c) -> int& { return c.kafka.max_prefetch_mb; }, 1, 2047));
    s.push_back(BoolKey("kafka.commit_offsets",
                        "commit consumed offsets to Kafka after each batch (lag monitoring)",
                        [](Config& c) -> bool& { return c.kafka.commit_offsets; }));
    s.push_back(IntKey("kafka.statistics_interval_ms",
                       "librdkafka statistics interval (consumer lag per partition and the "
                       "prefetch queue for the metrics), ms; 0 = off",
                       [](Config& c) -> int& { return c.kafka.statistics_interval_ms; }, 0,
                       3600000));
    // metrics
    s.push_back(StringKey("metrics.listen",
                          "host:port of the Prometheus exposer (/metrics); empty = none",
                          [](Config& c) -> std::string& { return c.metrics.listen; }));
    s.push_back(DoubleKey("metrics.attribution_window_days",
                          "a purchase of a listed item converts when the list was published at "
                          "most this many event-time days before",
                          [](Config& c) -> double& { return c.metrics.attribution_window_days; },
                          0, 3650));
    s.push_back(IntKey("metrics.segment_scan_interval_s",
                       "segment sizes and revenue: background scan of a store snapshot at most "
                       "this often, s; 0 = never",
                       [](Config& c) -> int& { return c.metrics.segment_scan_interval_s; }, 0,
                       86400));
    // http
    s.push_back(StringKey("http.listen", "host:port of the query API; empty = none",
                          [](Config& c) -> std::string& { return c.http.listen; }));
    s.push_back(StringKey("http.refit_token",
                          "bearer token POST /v1/refit requires; empty = refits refused "
                          "(use ${ENV_VAR} or STREAMREC_HTTP__REFIT_TOKEN)",
                          [](Config& c) -> std::string& { return c.http.refit_token; }));
    s.push_back(IntKey("http.threads", "query API handler threads",
                       [](Config& c) -> int& { return c.http.threads; }, 1, 256));
    // log
    s.push_back(BoolKey("log.pseudonymize_customer_ids",
                        "log lines name customers by a keyed pseudonym (c: + 16 hex digits) "
                        "instead of their id; the API and output topics keep real ids",
                        [](Config& c) -> bool& { return c.log.pseudonymize_customer_ids; }));
    {
      KeySpec k{"log.pseudonym_key",
                "secret key of the pseudonyms, 32 hex digits (openssl rand -hex 16); write "
                "${ENV_VAR} or ${file:/path}",
                nullptr, nullptr};
      // A plain string, but never echoed in an error: it is a secret (checked in Validate).
      k.set = [](Config* c, const std::string& v) -> Status {
        c->log.pseudonym_key = v;
        return Status::OK();
      };
      k.get = [](const Config& c) { return QuoteIfNeeded(c.log.pseudonym_key); };
      s.push_back(std::move(k));
    }
    // catalog
    s.push_back(StringKey("catalog.path", "catalogue CSV (item attributes); empty: none",
                          [](Config& c) -> std::string& { return c.catalog_path; }));
    return s;
  }();
  return kSchema;
}

const KeySpec* FindKey(const std::string& path) {
  for (const KeySpec& k : Schema()) {
    if (k.path == path) return &k;
  }
  return nullptr;
}

// Sections whose keys are free-form (librdkafka properties passed through).
std::map<std::string, std::string>* PassThroughSection(const std::string& path, Config* config) {
  if (path == "kafka.consumer") return &config->kafka.consumer;
  if (path == "kafka.producer") return &config->kafka.producer;
  return nullptr;
}

// A secret file named by ${file:/path}: at most this many bytes.
constexpr size_t kMaxSecretFileBytes = 64 * 1024;

// The contents of `file` for ${file:...} in configuration key `path`, without one trailing
// newline ("\n" or "\r\n", as editors and `echo` leave it). Only a regular file (a symlink to
// one, as Kubernetes mounts secrets, is fine) of at most kMaxSecretFileBytes: a device or a pipe
// could block or never end. Errors name the key and the file, never the contents.
Status ReadSecretFile(const std::string& path, const std::string& file, std::string* out) {
  auto fail = [&](const std::string& why) {
    return Status::InvalidArgument("configuration key '" + path + "' refers to file '" + file +
                                   "', which " + why);
  };
  if (file.empty() || file[0] != '/') return fail("is not an absolute path");
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) {
    return fail("cannot be read (" + std::string(std::strerror(errno)) + ")");
  }
  if (!S_ISREG(info.st_mode)) return fail("is not a regular file");
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail("cannot be read (" + std::string(std::strerror(errno)) + ")");
  std::string text(kMaxSecretFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return fail("cannot be read (" + std::string(std::strerror(errno)) + ")");
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxSecretFileBytes) {
    return fail("is larger than " + std::to_string(kMaxSecretFileBytes / 1024) +
                " KiB (a secret file holds one value)");
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  *out = std::move(text);
  return Status::OK();
}

// Replaces ${NAME} with the environment variable NAME and ${file:/path} with the file's contents
// (errors naming the key when unset or unreadable).
Status ExpandEnvironment(const std::string& path, const Environment& env, std::string* value) {
  static constexpr std::string_view kFilePrefix = "file:";
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t open = value->find("${", pos);
    if (open == std::string::npos) break;
    size_t close = value->find('}', open);
    if (close == std::string::npos) break;
    std::string name = value->substr(open + 2, close - open - 2);
    out.append(*value, pos, open - pos);
    if (name.rfind(kFilePrefix, 0) == 0) {
      std::string contents;
      STREAMREC_RETURN_IF_ERROR(ReadSecretFile(path, name.substr(kFilePrefix.size()), &contents));
      out.append(contents);
    } else {
      auto it = env.find(name);
      if (it == env.end()) {
        return Status::InvalidArgument("configuration key '" + path +
                                       "' refers to environment variable " + name +
                                       ", which is not set");
      }
      out.append(it->second);
    }
    pos = close + 1;
  }
  out.append(*value, pos, std::string::npos);
  *value = std::move(out);
  return Status::OK();
}

Status ApplyNode(const YAML::Node& node, const std::string& prefix, const std::string& file,
                 const Environment& env, Config* config) {
  if (!node.IsMap()) {
    return Status::InvalidArgument("configuration '" + file + "': '" +
                                   (prefix.empty() ? std::string("top level") : prefix) +
                                   "' must be a mapping");
  }
  for (const auto& entry : node) {
    std::string key = entry.first.as<std::string>();
    std::string path = prefix.empty() ? key : prefix + "." + key;
    const YAML::Node& value = entry.second;
    if (auto* section = PassThroughSection(path, config)) {
      if (!value.IsMap()) {
        return Status::InvalidArgument("configuration '" + file + "': '" + path +
                                       "' must be a mapping of librdkafka properties");
      }
      for (const auto& prop : value) {
        std::string name = prop.first.as<std::string>();
        if (!prop.second.IsScalar()) {
          return Status::InvalidArgument("configuration '" + file + "': '" + path + "." + name +
                                         "' must be a single value");
        }
        std::string text = prop.second.as<std::string>();
        STREAMREC_RETURN_IF_ERROR(ExpandEnvironment(path + "." + name, env, &text));
        (*section)[name] = text;
      }
      continue;
    }
    bool is_section = false;
    for (const KeySpec& k : Schema()) {
      if (k.path.rfind(path + ".", 0) == 0) {
        is_section = true;
        break;
      }
    }
    if (value.IsMap()) {
      if (!is_section) {
        return Status::InvalidArgument("configuration '" + file + "': unknown key '" + path + "'");
      }
      STREAMREC_RETURN_IF_ERROR(ApplyNode(value, path, file, env, config));
      continue;
    }
    const KeySpec* spec = FindKey(path);
    if (spec == nullptr && is_section) {
      return Status::InvalidArgument("configuration '" + file + "': '" + path +
                                     "' is a section and must be a mapping of keys");
    }
    if (spec == nullptr) {
      return Status::InvalidArgument("configuration '" + file + "': unknown key '" + path + "'");
    }
    if (value.IsSequence()) {
      return Status::InvalidArgument("configuration '" + file + "': key '" + path +
                                     "' takes a single value, not a list");
    }
    std::string text = value.IsNull() ? "" : value.as<std::string>();
    STREAMREC_RETURN_IF_ERROR(ExpandEnvironment(path, env, &text));
    Status s = spec->set(config, text);
    if (!s.ok()) return Status::InvalidArgument("configuration '" + file + "': " + s.message());
  }
  return Status::OK();
}

// "host:port" with a port in 0..65535 (empty = off).
Status CheckListenAddress(const std::string& key, const std::string& value) {
  if (value.empty()) return Status::OK();
  const size_t colon = value.rfind(':');
  int port = -1;
  if (colon != std::string::npos && colon + 1 < value.size()) {
    const char* begin = value.data() + colon + 1;
    const char* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(begin, end, port);
    if (ec != std::errc() || ptr != end) port = -1;
  }
  if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535) {
    return Status::InvalidArgument("configuration key '" + key + "': bad value '" + value +
                                   "' (expected host:port, e.g. 0.0.0.0:8080; empty = off)");
  }
  return Status::OK();
}

Status Validate(const Config& c) {
  STREAMREC_RETURN_IF_ERROR(CheckListenAddress("metrics.listen", c.metrics.listen));
  STREAMREC_RETURN_IF_ERROR(CheckListenAddress("http.listen", c.http.listen));
  if (!c.metrics.listen.empty() && c.metrics.listen == c.http.listen &&
      c.metrics.listen.substr(c.metrics.listen.rfind(':')) != ":0") {
    return Status::InvalidArgument("configuration keys 'metrics.listen' and 'http.listen' are "
                                   "both '" + c.metrics.listen + "'; they need different ports");
  }
  const FieldNames& f = c.input.decoder.fields;
  for (auto [name, value] : {std::pair<const char*, const std::string*>{"customer_id", &f.customer_id},
                             {"item_id", &f.item_id},
                             {"event_time", &f.event_time}}) {
    if (value->empty()) {
      return Status::InvalidArgument(std::string("configuration key 'input.fields.") + name +
                                     "': must name a source field (it is required)");
    }
  }
  if (c.input.decoder.min_event_time_ms >= c.input.decoder.max_event_time_ms) {
    return Status::InvalidArgument("configuration keys 'input.min_event_time_ms' (" +
                                   std::to_string(c.input.decoder.min_event_time_ms) +
                                   ") and 'input.max_event_time_ms' (" +
                                   std::to_string(c.input.decoder.max_event_time_ms) +
                                   "): min must be below max");
  }
  if (c.kafka.standby_replicas && c.kafka.changelog_topic.empty()) {
    return Status::InvalidArgument("configuration key 'kafka.standby_replicas' is on but "
                                   "'kafka.changelog_topic' is not set: standby copies tail the "
                                   "changelog");
  }
  if (!c.kafka.sample_topic.empty() && c.kafka.model_topic.empty()) {
    return Status::InvalidArgument("configuration key 'kafka.sample_topic' is set but "
                                   "'kafka.model_topic' is not: samples feed the fit one "
                                   "instance makes for all");
  }
  if (!c.kafka.cooccurrence_topic.empty() && c.kafka.item_stats_topic.empty()) {
    return Status::InvalidArgument("configuration key 'kafka.cooccurrence_topic' is set but "
                                   "'kafka.item_stats_topic' is not: co-occurrence is normalised "
                                   "by buyers, which the shared item statistics count");
  }
  if (c.segments.k_min > c.segments.k_max) {
    return Status::InvalidArgument("configuration keys 'segments.k_min' (" +
                                   std::to_string(c.segments.k_min) + ") and 'segments.k_max' (" +
                                   std::to_string(c.segments.k_max) + "): min must not exceed max");
  }
  {
    StrategyWeights w;
    STREAMREC_RETURN_IF_ERROR(ParseStrategyWeights("recommend.weights", c.recommend.weights, &w));
    std::map<std::string, StrategyWeights> sw;
    STREAMREC_RETURN_IF_ERROR(
        ParseSegmentWeights("recommend.segment_weights", c.recommend.segment_weights, &sw));
  }
  // The segmenter's own reading of the segment keys (feature names among them).
  auto fit_options = SegmentFitOptions::FromConfig(c.segments);
  if (!fit_options.ok()) return fit_options.status();
  if (c.log.pseudonymize_customer_ids) {
    if (c.log.pseudonym_key.empty()) {
      return Status::InvalidArgument(
          "configuration key 'log.pseudonymize_customer_ids' is on but 'log.pseudonym_key' is "
          "not set (32 hex digits, e.g. pseudonym_key: ${file:/run/secrets/pseudonym-key})");
    }
    auto key = ParseSipHashKey(c.log.pseudonym_key, "log.pseudonym_key");
    if (!key.ok()) return key.status();
  }
  return Status::OK();
}

}  // namespace

bool IsSecretKey(const std::string& key) {
  std::string lower = key;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  for (const char* word : {"password", "secret", "token", ".key", "key.pem", "credentials"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

Environment ProcessEnvironment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

namespace {

// Defaults, then the parsed document `root` (a null node: none; `name` is what error messages
// call it), then the environment; validated. LoadConfig and LoadConfigFromString share it.
StatusOr<Config> ApplyDocument(const YAML::Node& root, const std::string& name,
                               const Environment& env) {
  Config config;
  if (root.IsDefined() && !root.IsNull()) {
    try {
      STREAMREC_RETURN_IF_ERROR(ApplyNode(root, "", name, env, &config));
    } catch (const YAML::Exception& e) {
      return Status::InvalidArgument("configuration '" + name + "': " + e.what());
    }
  }
  static const std::string kPrefix = "STREAMREC_";
  for (const auto& [name, value] : env) {
    if (name.rfind(kPrefix, 0) != 0 || name.find("__") == std::string::npos) continue;
    std::string key = name.substr(kPrefix.size());
    std::string dotted;
    for (size_t i = 0; i < key.size(); ++i) {
      if (key.compare(i, 2, "__") == 0) {
        dotted.push_back('.');
        ++i;
      } else {
        dotted.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(key[i]))));
      }
    }
    const KeySpec* spec = FindKey(dotted);
    if (spec == nullptr) {
      return Status::InvalidArgument("environment variable " + name +
                                     " does not name a configuration key ('" + dotted + "')");
    }
    // STREAMREC_HTTP__REFIT_TOKEN='${file:/run/secrets/token}' as in the file.
    std::string text = value;
    Status expanded = ExpandEnvironment(dotted, env, &text);
    if (!expanded.ok()) {
      return Status::InvalidArgument("environment variable " + name + ": " + expanded.message());
    }
    Status s = spec->set(&config, text);
    if (!s.ok()) {
      return Status::InvalidArgument("environment variable " + name + ": " + s.message());
    }
  }
  // One half-life for item popularity: the counts the features keep and the strategies' reading.
  config.features.item_half_life_days = config.recommend.popularity_half_life_days;
  STREAMREC_RETURN_IF_ERROR(Validate(config));
  return config;
}

}  // namespace

StatusOr<Config> LoadConfig(const std::string& path, const Environment& env) {
  YAML::Node root;  // null: no file
  if (!path.empty()) {
    try {
      root = YAML::LoadFile(path);
    } catch (const YAML::BadFile&) {
      return Status::InvalidArgument("configuration '" + path + "': cannot read the file");
    } catch (const YAML::Exception& e) {
      return Status::InvalidArgument("configuration '" + path + "': " + e.what());
    }
  }
  return ApplyDocument(root, path, env);
}

StatusOr<Config> LoadConfigFromString(std::string_view yaml, const std::string& name,
                                      const Environment& env) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("configuration '" + name + "': " + e.what());
  }
  return ApplyDocument(root, name, env);
}

std::string DefaultConfigYaml() {
  Config defaults;
  std::ostringstream out;
  out << "# streamrec configuration: every key with its default.\n"
      << "# Override any key with STREAMREC_<PATH> (upper case, '.' as \"__\"),\n"
      << "# e.g. STREAMREC_STATE__BLOCK_CACHE_MB=512.\n";
  std::vector<std::string> open;  // currently open sections
  for (const KeySpec& k : Schema()) {
    std::vector<std::string> parts;
    std::stringstream ss(k.path);
    for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) {
      ++common;
    }
    open.resize(common);
    for (size_t i = common; i + 1 < parts.size(); ++i) {
      if (i == 0) out << "\n";
      out << std::string(2 * i, ' ') << parts[i] << ":\n";
      open.push_back(parts[i]);
    }
    std::string indent(2 * (parts.size() - 1), ' ');
    out << indent << "# " << k.doc << "\n"
        << indent << parts.back() << ": " << k.get(defaults) << "\n";
  }
  out << "\n# kafka.consumer and kafka.producer: any librdkafka property, passed through, e.g.\n"
      << "#   kafka:\n#     consumer:\n#       security.protocol: SASL_SSL\n"
      << "#       sasl.mechanism: SCRAM-SHA-512\n#       sasl.username: streamrec\n"
      << "#       sasl.password: ${KAFKA_PASSWORD}   # read from the environment, never logged\n"
      << "#       ssl.key.password: ${file:/run/secrets/kafka-key-password}   # from a file\n"
      << "# Any value may be written ${NAME} (environment variable) or ${file:/path} (the file's\n"
      << "# contents, one trailing newline removed).\n";
  return out.str();
}

}  // namespace streamrec
