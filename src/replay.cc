#include "streamrec/replay.h"

#include "streamrec/blended_recommender.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "file_io.h"
#include "file_source.h"
#include "json_writer.h"
#include "progress.h"
#include "streamrec/blended_recommender.h"
#include "streamrec/pipeline.h"
#include "streamrec/time_util.h"

namespace streamrec {

namespace {

constexpr uint32_t kFilePartition = 0;
constexpr int kInvalidExamplesShown = 10;

bool IsJsonLines(const std::string& format) { return format == "json"; }

}  // namespace

StatusOr<ReplaySummary> RunReplay(const ReplayOptions& options, const Clock* clock) {
  const Config& config = options.config;
  if (config.input.format == "protobuf") {
    return Status::InvalidArgument(
        "input.format protobuf is for Kafka messages; a file replay reads csv or json lines");
  }
  const int64_t start_us = clock->NowMicros();

  auto store_or = OpenRocksStateStore(config.state);
  if (!store_or.ok()) return store_or.status();
  std::unique_ptr<StateStore> store = std::move(store_or).value();

  Catalog catalog;
  if (!config.catalog_path.empty()) {
    auto loaded = Catalog::LoadCsv(config.catalog_path);
    if (!loaded.ok()) return loaded.status();
    catalog = std::move(loaded).value();
  }

  PipelineOptions pipeline_options;
  pipeline_options.source_name = "file";
  pipeline_options.features = config.features;
  pipeline_options.recommend = config.recommend;
  pipeline_options.state_cache_customers =
      static_cast<size_t>(config.pipeline.state_cache_customers);
  const CustomerIdsInLogs log_ids = CustomerIdsInLogs::FromConfig(config.log);
  pipeline_options.log_ids = log_ids;
  auto segmenter_or = NewSegmenter(config, store.get());
  if (!segmenter_or.ok()) return segmenter_or.status();
  std::unique_ptr<Segmenter> segmenter = std::move(segmenter_or).value();
  AlsRefitOptions refit;
  refit.log_ids = log_ids;
  auto recommender_or = NewBlendedRecommender(config.recommend, &catalog, std::move(refit));
  if (!recommender_or.ok()) return recommender_or.status();
  std::unique_ptr<Recommender> recommender = std::move(recommender_or).value();
  Pipeline pipeline(pipeline_options, store.get(), &catalog, segmenter.get(), recommender.get());
  STREAMREC_RETURN_IF_ERROR(pipeline.Open());

  auto position_or = pipeline.Position(kFilePartition);
  if (!position_or.ok()) return position_or.status();
  const uint64_t resume_at = position_or->next_offset();

  const bool csv = !IsJsonLines(config.input.format);
  auto source_or = FileSource::Open(options.input_path, csv);
  if (!source_or.ok()) return source_or.status();
  std::unique_ptr<FileSource> source = std::move(source_or).value();

  std::unique_ptr<Decoder> decoder;
  if (csv) {
    auto d = NewCsvDecoder(config.input.decoder, source->header());
    if (!d.ok()) {
      return Status::InvalidArgument("input '" + options.input_path + "': " + d.status().message());
    }
    decoder = std::move(d).value();
  } else {
    decoder = NewJsonDecoder(config.input.decoder);
  }

  // Lists go to recs_out: a fresh state starts a fresh file; a resumed one appends.
  std::unique_ptr<LineWriter> recs;
  if (!options.recs_out.empty()) {
    auto w = LineWriter::Open(options.recs_out, /*append=*/resume_at > 0);
    if (!w.ok()) return w.status();
    recs = std::move(w).value();
  }
  uint64_t published_lines = 0;
  auto publish = [&](const v1::OutboxRecord& record) -> Status {
    if (record.payload_case() != v1::OutboxRecord::kList) return Status::OK();
    if (recs != nullptr) {
      STREAMREC_RETURN_IF_ERROR(recs->Write(RecommendationListToJson(record.list())));
    }
    ++published_lines;
    if (options.on_list) options.on_list(record.list());
    if (options.fault_hook) options.fault_hook("publish", published_lines);
    return Status::OK();
  };
  auto sync = [&]() -> Status { return recs ? recs->Flush() : Status::OK(); };
  uint64_t outbox_cursor = 0;
  auto drain = [&]() -> Status {
    auto n = DrainOutbox(store.get(), kFilePartition, publish, sync, &outbox_cursor);
    return n.ok() ? Status::OK() : n.status();
  };

  // Whatever a killed run committed but did not publish goes out first.
  STREAMREC_RETURN_IF_ERROR(drain());
  if (resume_at > 0) {
    if (options.progress) {
      std::fprintf(options.progress, "resuming at record %llu (stored position)\n",
                   static_cast<unsigned long long>(resume_at));
    }
    STREAMREC_RETURN_IF_ERROR(source->SeekTo(resume_at));
  }

  ReplaySummary summary;
  summary.resumed_from_offset = resume_at;
  ProgressBar progress(options.progress, clock, "events");
  std::vector<SourceRecord> batch;
  BatchResult result;
  const size_t batch_size = static_cast<size_t>(std::max(1, config.pipeline.batch_size));
  uint64_t batches = 0;
  int invalid_shown = 0;
  bool more = true;
  while (more) {
    if (options.stop != nullptr && options.stop->load()) {
      summary.stopped = true;
      break;
    }
    more = source->NextBatch(batch_size, &batch);
    if (!more) STREAMREC_RETURN_IF_ERROR(source->status());
    if (batch.empty()) continue;
    ++batches;
    if (options.fault_hook) options.fault_hook("batch", batches);
    STREAMREC_RETURN_IF_ERROR(pipeline.ProcessBatch(kFilePartition, batch, decoder.get(), &result));
    if (options.fault_hook) options.fault_hook("commit", batches);
    STREAMREC_RETURN_IF_ERROR(drain());

    summary.events_this_run += result.events;
    summary.records_this_run += result.records;
    for (const InvalidRecord& bad : result.invalid) {
      ++summary.invalid_by_reason[InvalidReason(bad.status)];
      if (options.progress && invalid_shown < kInvalidExamplesShown) {
        // Offsets are data lines; with a header the file line number is offset + 2.
        std::fprintf(options.progress, "%sskipped record %llu (file line %llu): %s\n",
                     "\r", static_cast<unsigned long long>(bad.offset),
                     static_cast<unsigned long long>(bad.offset + (csv ? 2 : 1)),
                     InvalidRecordForLog(bad.status, log_ids).c_str());
        if (++invalid_shown == kInvalidExamplesShown) {
          std::fprintf(options.progress, "further invalid records are counted, not shown\n");
        }
      }
    }
    progress.Update(summary.events_this_run, source->fraction_read());
  }
  progress.Finish(summary.events_this_run);
  if (recs) STREAMREC_RETURN_IF_ERROR(recs->Close());
  STREAMREC_RETURN_IF_ERROR(store->Flush());

  auto final_position = pipeline.Position(kFilePartition);
  if (!final_position.ok()) return final_position.status();
  summary.events = final_position->events();
  summary.invalid = final_position->invalid();
  summary.customers = final_position->customers();
  summary.lists_published = final_position->lists_published();
  summary.watermark_ms = final_position->watermark_ms();
  auto digest = StateDigest(store.get());
  if (!digest.ok()) return digest.status();
  summary.state_digest = *digest;
  std::tie(summary.cooccurrence_buyers, summary.cooccurrence_pairs) =
      recommender->cooccurrence_totals();
  summary.wall_seconds = (clock->NowMicros() - start_us) / 1e6;
  summary.events_per_second =
      summary.wall_seconds > 0 ? summary.events_this_run / summary.wall_seconds : 0;
  return summary;
}

std::string ReplaySummaryToJson(const ReplaySummary& s) {
  JsonWriter w;
  w.BeginObject();
  w.Key("events").Uint(s.events);
  w.Key("invalid").Uint(s.invalid);
  w.Key("customers").Uint(s.customers);
  w.Key("lists_published").Uint(s.lists_published);
  w.Key("wall_seconds").Double(std::round(s.wall_seconds * 1000) / 1000);
  w.Key("events_per_second").Double(std::round(s.events_per_second));
  w.Key("state_digest").String(s.state_digest);
  w.Key("events_this_run").Uint(s.events_this_run);
  w.Key("resumed_from_offset").Uint(s.resumed_from_offset);
  w.Key("watermark").String(s.watermark_ms > 0 ? FormatIso8601(s.watermark_ms) : "");
  w.Key("stopped").Bool(s.stopped);
  w.Key("invalid_by_reason").BeginObject();
  for (const auto& [reason, n] : s.invalid_by_reason) w.Key(reason).Uint(n);
  w.EndObject();
  w.EndObject();
  return w.Release();
}

StatusOr<std::vector<SegmentProfile>> ProfileSegments(StateStore* store) {
  // One pass: recency is the newest event time minus the mean last-purchase time.
  std::map<int32_t, SegmentProfile> by_cluster;
  std::map<int32_t, double> sum_last_time_days;
  int64_t now_ms = 0;
  Status decode_status;
  CustomerState state;
  STREAMREC_RETURN_IF_ERROR(
      store->Scan(Column::kCustomers, "", [&](std::string_view, std::string_view value) {
        decode_status = DecodeState(value, &state);
        if (!decode_status.ok()) return false;
        now_ms = std::max(now_ms, state.last_time_ms());
        SegmentProfile& p = by_cluster[state.cluster()];
        p.cluster = state.cluster();
        p.segment = state.segment();
        ++p.customers;
        p.revenue += state.total_spend();
        p.mean_frequency += static_cast<double>(state.purchase_count());
        p.mean_monetary += state.total_spend();
        sum_last_time_days[state.cluster()] += state.last_time_ms() / 86400000.0;
        for (const v1::CountEntry& c : state.channels()) p.channel_mix[c.key()] += c.count();
        return true;
      }));
  STREAMREC_RETURN_IF_ERROR(decode_status);
  std::vector<SegmentProfile> out;
  for (auto& [cluster, p] : by_cluster) {
    p.mean_recency_days = now_ms / 86400000.0 - sum_last_time_days[cluster] / p.customers;
    p.mean_frequency /= p.customers;
    p.mean_monetary /= p.customers;
    double lines = 0;
    for (const auto& [channel, n] : p.channel_mix) lines += n;
    for (auto& [channel, share] : p.channel_mix) share = lines > 0 ? share / lines : 0;
    out.push_back(p);
  }
  return out;
}

}  // namespace streamrec
