// The Kafka service: consumer group -> Pipeline -> outbox -> idempotent producer.
#include "streamrec/service.h"

#include <librdkafka/rdkafkacpp.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <set>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "http/http_api.h"
#include "json_writer.h"
#include "kafka/changelog_restore.h"
#include "kafka/cooccurrence_exchange.h"
#include "kafka/item_stats_feed.h"
#include "kafka/sample_feed.h"
#include "kafka/model_feed.h"
#include "kafka/standby.h"
#include "kafka/kafka_conf.h"
#include "kafka/outbox_publisher.h"
#include "metrics/service_metrics.h"
#include "streamrec/blended_recommender.h"
#include "streamrec/catalog.h"
#include "streamrec/decoder.h"
#include "streamrec/kmeans_segmenter.h"
#include "streamrec/pipeline.h"
#include "streamrec/replay.h"
#include "streamrec/state_store.h"
#include "streamrec/time_util.h"

namespace streamrec {

namespace {

constexpr int kMaxPollWaitMs = 100;
// While output records await their delivery reports (served between polls), the consumer waits
// at most this long, so a list's acknowledgement is not held up by a quiet input.
constexpr int kInFlightPollWaitMs = 5;
constexpr int kCloseFlushTimeoutMs = 30000;
// At destruction: how long the purged output records' delivery reports may take.
constexpr int kDropInFlightTimeoutMs = 5000;
// On revocation with a changelog, the outbox is flushed for at most this long.
constexpr int kRevokeFlushTimeoutMs = 10000;
// A restore of one partition from the changelog gives up after this long.
constexpr int kRestoreTimeoutMs = 30 * 60 * 1000;
// stop_at_end: how often an idle service asks the broker for its partitions' ends, and how long
// one such question may take.
constexpr int64_t kEndCheckIntervalUs = 200000;
constexpr int kEndCheckTimeoutMs = 2000;
constexpr int64_t kMetricsIntervalUs = 1000000;   // gauges refreshed once a second
constexpr int64_t kUnhealthyAfterMs = 30000;
// While the store refuses writes, it is asked to resume (and the batch tried again) this often.
constexpr int64_t kStorageRetryUs = 1000000;      // /healthz: the poll loop stalled this long

class ServiceImpl : public Service,
                    public RdKafka::RebalanceCb,
                    public RdKafka::EventCb,
                    public QueryBackend {
 public:
  explicit ServiceImpl(ServiceOptions options) : options_(std::move(options)) {}

  ~ServiceImpl() override {
    // The API and the exposer go first: their threads read the store and the caches.
    http_.reset();
    exposer_.reset();
    standby_.reset();  // its thread writes the store
    model_feed_.reset();  // its thread offers models to the segmenter
    item_feed_.reset();
    if (cooccurrence_ != nullptr) cooccurrence_->Flush(kDropInFlightTimeoutMs);
    cooccurrence_.reset();
    if (model_producer_ != nullptr) model_producer_->flush(kDropInFlightTimeoutMs);
    model_producer_.reset();
    if (scan_thread_.joinable()) scan_thread_.join();
    // After SimulateCrash the consumer is destroyed without close() (librdkafka's C++
    // destructor does not close): no commit, no LeaveGroup, as if the process died.
    consumer_.reset();
    // What a crash, a failed run or a timed-out flush left in flight stays in the outbox; the
    // producer would destroy those messages without a delivery report, leaking their records.
    if (publisher_ != nullptr && producer_ != nullptr) {
      Status dropped = publisher_->DropInFlight(kDropInFlightTimeoutMs);
      if (!dropped.ok()) log_->Warn("at exit: " + dropped.message());
    }
    producer_.reset();
  }

  Status Init();
  Status Run(const std::atomic<bool>& stop) override;
  // stop_at_end: idle, and every assigned partition applied up to its high watermark.
  bool AtEnd();
  void SimulateCrash() override { crash_.store(true); }
  ServiceStats stats() const override {
    std::lock_guard<std::mutex> lock(stats_mu_);
    return stats_;
  }
  bool WaitFor(const std::function<bool(const ServiceStats&)>& done, int timeout_ms) override {
    std::unique_lock<std::mutex> lock(stats_mu_);
    return stats_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                              [&] { return done(stats_); });
  }

  // RdKafka::RebalanceCb — runs inside consumer_->consume() on the service thread.
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;
  // RdKafka::EventCb — errors, logs and statistics from librdkafka.
  void event_cb(RdKafka::Event& event) override;

  // QueryBackend — on the API's threads.
  HttpReply Customer(const std::string& id) override;
  HttpReply Segments() override;
  HttpReply Model() override;
  HttpReply Refit() override;
  bool Healthy(std::string* why) override;
  bool Ready(std::string* why) override;

 private:
  struct PartitionBatch {
    std::vector<std::unique_ptr<RdKafka::Message>> messages;
  };

  Status ProcessPending(const std::vector<int32_t>* only = nullptr);
  Status ProcessPartition(int32_t partition, PartitionBatch* batch);
  void Commit(const std::vector<int32_t>& partitions, bool sync);
  // Pauses the assigned partitions while output backpressure or a storage fault says so, and
  // resumes them when neither does.
  void Backpressure();
  void SetPaused(bool pause);
  // A store write failed (`error`): the input is paused, the unstored records stay pending, and
  // the service stops being ready until TryResumeStorage succeeds.
  void EnterStorageFault(const Status& error);
  // Every kStorageRetryUs while storage_error_ is set: asks the store to resume and applies the
  // pending records again.
  void TryResumeStorage();
  void UpdateStats();
  // Metrics and the API's caches (service thread, at most once a second).
  void UpdateMetrics(bool force);
  // Starts a background scan of a store snapshot for segment sizes and revenue.
  void StartSegmentScan();
  void OnStatistics(const std::string& json);
  // On assignment, with a changelog: restores `partition` from it when the changelog's state is
  // ahead of the local one (or a restore here did not finish). Blocks the poll loop meanwhile
  // (the service is not ready). An error is fatal only when the local state is partial. True
  // when the partition was restored.
  StatusOr<bool> MaybeRestore(uint32_t partition);
  // Puts in `partition`'s outbox (after OutboxPublisher::DropPartition, from the restored
  // position's outbox sequence on) what the restore found that may never have left its writer:
  // the lists after the changelog's progress mark and, with kafka.item_stats_topic, the
  // partition's item statistics (see the definition).
  Status RepublishRestored(uint32_t partition);
  Status StartServers();
  std::vector<uint32_t> KnownPartitions();
  // kafka.model_topic: this instance fits the shared model while it owns partition 0.
  void UpdateRefitter();
  // kafka.model_topic (each loop turn): publishes the versions fitted here, adopts a newer one
  // read from the topic.
  void PublishAndAdoptModels();
  // A background ALS fit that finished since the last batch is installed and stored now, not at
  // the next batch (Recommender::UpdateModelIdle).
  void UpdateModelIdle();
  // The same for the segment model (KMeansSegmenter::UpdateModelIdle): a finished background
  // re-fit is installed and stored, and a re-fit asked for while one ran (POST /v1/refit, a
  // trigger) starts, without waiting for the next purchase.
  void UpdateSegmentModelIdle();
  // Stores the segmenter's writes (a model version `how`: "installed", "adopted") outside a
  // batch; on failure logs that the next batch stores them.
  void StoreSegmentModelNow(const char* how);
  // Produces one model record (key, value, `headers`, owned by the call) to the model topic;
  // logs "<what> published to '<topic>'<detail>", or why not. Returns whether it was produced.
  bool PublishModel(const std::string& key, const std::string& value, RdKafka::Headers* headers,
                    const std::string& what, const std::string& detail);
  // kafka.item_stats_topic: the other instances' item statistics read since the last call go
  // into the pipeline (each loop turn, consumer thread); after a rebalance the pipeline learns
  // which partitions' statistics are its own (UpdateOwnedFeeds, which also tells the sample
  // feed whose samples the store has).
  void ApplyRemoteItemStats();
  void UpdateOwnedFeeds();
  // kafka.cooccurrence_topic (each loop turn): the rows read go into the pipeline, rows not
  // delivered are handed out again, and at most every kafka.cooccurrence_publish_ms (or at
  // once with `now`) the owned partitions' changed rows are produced.
  void ExchangeCooccurrence(bool now);

  ServiceOptions options_;
  const KafkaConfig& kafka() const { return options_.config.kafka; }
  std::shared_ptr<Logger> log_;

  std::unique_ptr<StateStore> store_;
  Catalog catalog_;
  std::unique_ptr<Decoder> decoder_;
  // Samples of the other instances' customers for the shared fits (kafka.sample_topic): before
  // the segmenter, whose background fits read it, so that it outlives them.
  std::unique_ptr<SampleFeed> sample_feed_;
  std::unique_ptr<Segmenter> segmenter_;
  std::unique_ptr<Recommender> recommender_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<OutboxPublisher> publisher_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Producer> producer_;

  std::map<int32_t, PartitionBatch> pending_;
  size_t pending_count_ = 0;
  int64_t batch_deadline_us_ = 0;
  std::vector<int32_t> assigned_;
  std::map<int32_t, int64_t> committed_next_;  // partition -> next offset to commit
  bool paused_ = false;        // the assigned partitions are paused (either reason below)
  bool backpressure_ = false;  // too many output records unacknowledged
  Status fatal_;
  // Storage faults (service thread): set while the store refuses writes.
  Status storage_error_;
  int64_t storage_failed_us_ = 0;
  int64_t storage_retry_us_ = 0;
  uint64_t storage_errors_ = 0, storage_retries_ = 0;
  std::atomic<bool> storage_writable_{true};
  mutable std::mutex storage_mu_;
  std::string storage_why_;  // guarded by storage_mu_: for Ready on the API's threads
  // Restores from the changelog (service thread; restore_why_ guarded by storage_mu_).
  std::atomic<bool> restoring_{false};
  uint64_t store_id_ = 0;  // StoreId: the writer of our positions in the changelog
  std::string restore_why_;
  uint64_t restored_partitions_ = 0, restored_records_ = 0, restored_from_standby_ = 0;
  uint64_t republished_lists_ = 0;
  uint64_t republished_item_stats_ = 0;
  // The lists each restore found unpublished (ChangelogRestoreStats::unpublished_lists), until
  // RepublishRestored puts them in the partition's outbox.
  std::map<uint32_t, std::vector<std::string>> unpublished_lists_;
  // Standby copies of the partitions other instances own (kafka.standby_replicas).
  std::unique_ptr<StandbyReplicas> standby_;
  // One segment model for all instances (kafka.model_topic): the versions this instance reads,
  // and those it fitted while it owned partition 0, to publish (service thread).
  std::unique_ptr<ModelFeed> model_feed_;
  std::unique_ptr<RdKafka::Producer> model_producer_;
  std::vector<v1::SegmentModel> fitted_models_;
  std::vector<std::pair<uint64_t, std::string>> fitted_als_;  // (version, encoded ALS model)
  uint64_t als_models_published_ = 0;
  // Global item statistics (kafka.item_stats_topic) and the records summed in so far.
  std::unique_ptr<ItemStatsFeed> item_feed_;
  uint64_t item_stats_remote_records_ = 0;
  // Global co-occurrence (kafka.cooccurrence_topic): rows read and published, refused rows,
  // when rows were last published, and the digest of the index (refreshed every second).
  std::unique_ptr<CooccurrenceExchange> cooccurrence_;
  uint64_t cooccurrence_rows_read_ = 0, cooccurrence_rows_refused_ = 0;
  int64_t cooccurrence_published_us_ = 0, cooccurrence_totals_us_ = 0;
  std::pair<uint64_t, uint64_t> cooccurrence_totals_{0, 0};
  uint64_t models_published_ = 0;
  std::atomic<bool> crash_{false};

  mutable std::mutex stats_mu_;
  std::condition_variable stats_cv_;
  ServiceStats stats_;
  uint64_t records_ = 0, events_ = 0, invalid_ = 0, batches_ = 0, lists_ = 0;
  uint64_t consumer_errors_ = 0, rebalances_ = 0, pauses_ = 0, outbox_written_ = 0;
  // From the last librdkafka statistics (service thread: they are served inside consume()).
  ConsumerQueueStats queue_stats_;
  std::map<int32_t, uint64_t> applied_;  // partition -> records applied (stored position)
  std::map<std::string, uint64_t> invalid_by_reason_;
  int64_t watermark_ms_ = 0;

  // Observability.
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<ServiceMetrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<HttpApi> http_;
  KMeansSegmenter* kmeans_ = nullptr;  // segmenter_ when it is the K-Means engine
  int64_t last_metrics_us_ = 0;
  int64_t last_scan_us_ = 0;
  uint64_t scanned_model_version_ = 0;  // segment model and events at the last scan
  uint64_t scanned_events_ = 0;
  std::thread scan_thread_;
  std::atomic<bool> scan_running_{false};
  std::atomic<bool> assignment_received_{false};
  std::atomic<bool> failed_{false};  // Run stopped on an error (fatal_ is the service thread's)
  std::atomic<int64_t> loop_alive_ms_{0};

  // Caches the API reads (guarded by api_mu_).
  mutable std::mutex api_mu_;
  std::vector<SegmentProfile> profiles_;
  int64_t profiles_unix_ms_ = 0;
  SegmenterStats segmenter_stats_;
  uint64_t als_version_ = 0;
  std::vector<uint32_t> partitions_cache_;
  bool partitions_dirty_ = true;
};

Status ServiceImpl::Init() {
  log_ = options_.logger ? options_.logger : NewNullLogger();
  const Config& config = options_.config;
  if (kafka().brokers.empty()) {
    return Status::InvalidArgument("kafka.brokers is not set (bootstrap servers, e.g. host:9092)");
  }
  if (config.state.path.empty()) return Status::InvalidArgument("state.dir is not set");
  if (config.input.format == "csv") {
    return Status::InvalidArgument(
        "input.format csv needs a header line; Kafka messages use json or protobuf");
  }

  auto store = OpenRocksStateStore(config.state);
  if (!store.ok()) return store.status();
  store_ = std::move(store).value();
  if (!config.catalog_path.empty()) {
    auto loaded = Catalog::LoadCsv(config.catalog_path);
    if (!loaded.ok()) return loaded.status();
    catalog_ = std::move(loaded).value();
  }
  decoder_ = config.input.format == "json" ? NewJsonDecoder(config.input.decoder)
                                           : NewProtobufDecoder(config.input.decoder);
  auto segmenter = NewSegmenter(config, store_.get(), /*background_refit=*/true);
  if (!segmenter.ok()) return segmenter.status();
  segmenter_ = std::move(segmenter).value();
  kmeans_ = dynamic_cast<KMeansSegmenter*>(segmenter_.get());
  const CustomerIdsInLogs log_ids = CustomerIdsInLogs::FromConfig(config.log);
  // Re-fits in the background, like the segmenter's: the poll loop never waits for a fit.
  AlsRefitOptions refit;
  refit.background = true;
  refit.logger = log_;
  refit.log_ids = log_ids;
  auto recommender = NewBlendedRecommender(config.recommend, &catalog_, std::move(refit));
  if (!recommender.ok()) return recommender.status();
  recommender_ = std::move(recommender).value();
  PipelineOptions pipeline_options;
  pipeline_options.source_name = "kafka:" + kafka().input_topic;
  pipeline_options.features = config.features;
  pipeline_options.recommend = config.recommend;
  pipeline_options.state_cache_customers =
      static_cast<size_t>(config.pipeline.state_cache_customers);
  pipeline_options.dead_letters = true;
  pipeline_options.changelog = !kafka().changelog_topic.empty();
  pipeline_options.share_item_stats = !kafka().item_stats_topic.empty();
  pipeline_options.sample_share = kafka().sample_topic.empty() ? 0 : kafka().sample_share;
  pipeline_options.share_cooccurrence = !kafka().cooccurrence_topic.empty();
  pipeline_options.cooccurrence_neighbours =
      static_cast<size_t>(std::max(0, kafka().cooccurrence_neighbours));
  auto store_id = StoreId(store_.get());
  if (!store_id.ok()) return store_id.status();
  store_id_ = *store_id;
  pipeline_options.writer_id = store_id_;
  pipeline_options.log_ids = log_ids;
  pipeline_options.attribution_window_days = config.metrics.attribution_window_days;
  pipeline_ = std::make_unique<Pipeline>(pipeline_options, store_.get(), &catalog_,
                                         segmenter_.get(), recommender_.get());
  STREAMREC_RETURN_IF_ERROR(pipeline_->Open());

  registry_ = options_.registry ? options_.registry : std::make_shared<prometheus::Registry>();
  metrics_ = std::make_unique<ServiceMetrics>(*registry_, kafka().input_topic, kStreamrecVersion);
  publisher_ = std::make_unique<OutboxPublisher>(store_.get(), kafka(), log_);
  // With a changelog, a partition's outbox goes out only while the partition is ours.
  publisher_->set_ownership_gate(!kafka().changelog_topic.empty());
  publisher_->set_on_delivered([this](const v1::OutboxRecord& record) {
    metrics_->RecordDelivered(record, WallClockMillis());
    if (options_.on_delivered) options_.on_delivered(record);
  });

  // Producer: idempotent; user properties win over ours.
  const std::map<std::string, std::string> producer_props = ProducerProperties(kafka(), "streamrec");
  auto pconf = MakeKafkaConf(producer_props, "producer");
  if (!pconf.ok()) return pconf.status();
  std::string error;
  (*pconf)->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(publisher_.get()), error);
  (*pconf)->set("event_cb", static_cast<RdKafka::EventCb*>(this), error);
  producer_.reset(RdKafka::Producer::create(pconf->get(), error));
  if (!producer_) return Status::InvalidArgument("cannot create Kafka producer: " + error);
  publisher_->set_producer(producer_.get());

  // Consumer: manual offsets (the store is the truth), rebalance callback for both protocols.
  std::map<std::string, std::string> consumer_props = {
      {"bootstrap.servers", kafka().brokers},
      {"client.id", "streamrec"},
      {"group.id", kafka().group_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // A partition without a stored position is assigned at its beginning explicitly; this
      // applies only when a stored position has left the log (retention deleted records never
      // applied): stop that partition loudly instead of skipping them.
      {"auto.offset.reset", "error"},
      {"partition.assignment.strategy", kafka().assignment_strategy},
      {"enable.partition.eof", "false"},
      // The broker answers a fetch at once when records are there, else after this long; the
      // default 500 ms adds up to that much to a purchase's way to its list on a quiet topic.
      {"fetch.wait.max.ms", "50"},
  };
  // Overload: records fetched ahead of processing are bounded (fetching stops, lag grows), so
  // memory does not grow with the backlog. Within the bound, the queue keeps the poll loop fed.
  for (const auto& [k, v] : PrefetchProperties(kafka().max_prefetch_mb)) consumer_props[k] = v;
  if (kafka().statistics_interval_ms > 0) {
    consumer_props["statistics.interval.ms"] = std::to_string(kafka().statistics_interval_ms);
  }
  for (const auto& [k, v] : kafka().consumer) consumer_props[k] = v;
  auto cconf = MakeKafkaConf(consumer_props, "consumer");
  if (!cconf.ok()) return cconf.status();
  (*cconf)->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), error);
  (*cconf)->set("event_cb", static_cast<RdKafka::EventCb*>(this), error);
  consumer_.reset(RdKafka::KafkaConsumer::create(cconf->get(), error));
  if (!consumer_) return Status::InvalidArgument("cannot create Kafka consumer: " + error);

  log_->Info("kafka consumer: " + RedactedProperties(consumer_props));
  log_->Info("kafka producer: " + RedactedProperties(producer_props));
  STREAMREC_RETURN_IF_ERROR(publisher_->Recover());
  if (!kafka().model_topic.empty()) {
    if (kmeans_ == nullptr) {
      return Status::InvalidArgument("kafka.model_topic shares a K-Means model: it needs "
                                     "segments.method kmeans, not '" + config.segments.method + "'");
    }
    kmeans_->SetRefitter(false);  // until the group assigns partition 0 here
    kmeans_->set_on_fitted([this](const v1::SegmentModel& m) { fitted_models_.push_back(m); });
    // The ALS model too: fitted where the segment model is, adopted everywhere else.
    recommender_->SetModelRefitter(false);
    recommender_->set_on_model_fitted([this](uint64_t version, const std::string& encoded) {
      fitted_als_.emplace_back(version, encoded);
    });
    // An ALS model is items x factors x 4 bytes (50,000 items x 32 factors: 6.4 MB), above
    // the default record size limit: the topic's max.message.bytes must allow it too.
    std::map<std::string, std::string> props = ProducerProperties(kafka(), "streamrec-models");
    props.emplace("message.max.bytes", "200000000");  // unless kafka.producer sets it
    auto mconf = MakeKafkaConf(props, "model producer");
    if (!mconf.ok()) return mconf.status();
    model_producer_.reset(RdKafka::Producer::create(mconf->get(), error));
    if (!model_producer_) return Status::InvalidArgument("cannot create the model producer: " + error);
    auto feed = ModelFeed::Start(kafka(), kmeans_, recommender_.get(), log_);
    if (!feed.ok()) return feed.status();
    model_feed_ = std::move(feed).value();
  }
  if (!kafka().sample_topic.empty() && kmeans_ != nullptr) {
    auto feed = SampleFeed::Start(kafka(), log_);
    if (!feed.ok()) return feed.status();
    sample_feed_ = std::move(feed).value();
    sample_feed_->SetOwned({});  // until the first assignment
    SampleFeed* samples = sample_feed_.get();
    const SharedFitSamples shared{
        [samples](const std::function<void(const CustomerState&)>& add) { samples->ForEach(add); },
        [samples] { return samples->owned(); }};
    kmeans_->SetSharedSamples(shared);
    recommender_->SetSharedSamples(shared);
  }
  if (!kafka().item_stats_topic.empty()) {
    // Until the first assignment no partition is this instance's: its stored statistics of
    // partitions it processed before may be older than what their owners publish.
    STREAMREC_RETURN_IF_ERROR(pipeline_->SetOwnedPartitions({}));
    auto feed = ItemStatsFeed::Start(kafka(), log_);
    if (!feed.ok()) return feed.status();
    item_feed_ = std::move(feed).value();
  }
  if (!kafka().cooccurrence_topic.empty()) {
    auto exchange = CooccurrenceExchange::Start(kafka(), log_);
    if (!exchange.ok()) return exchange.status();
    cooccurrence_ = std::move(exchange).value();
  }
  if (kafka().standby_replicas) {
    // Tails nothing until the first assignment says which partitions are this instance's.
    auto standby = StandbyReplicas::Start(kafka(), store_.get(), log_);
    if (!standby.ok()) return standby.status();
    standby_ = std::move(standby).value();
  }
  return StartServers();
}

Status ServiceImpl::StartServers() {
  const Config& config = options_.config;
  int metrics_port = 0, http_port = 0;
  if (!config.metrics.listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(config.metrics.listen);
    } catch (const std::exception& e) {
      return Status::IOError("metrics.listen '" + config.metrics.listen +
                             "': cannot serve /metrics (" + e.what() + ")");
    }
    exposer_->RegisterCollectable(registry_);
    auto ports = exposer_->GetListeningPorts();
    metrics_port = ports.empty() ? 0 : ports.front();
    log_->Info("metrics: http://" + config.metrics.listen.substr(0, config.metrics.listen.rfind(':')) +
               ":" + std::to_string(metrics_port) + "/metrics");
  }
  if (!config.http.listen.empty()) {
    auto api = HttpApi::Start(config.http, this, [this](const std::string& route, int status) {
      metrics_->CountHttpRequest(route, status);
    });
    if (!api.ok()) return api.status();
    http_ = std::move(api).value();
    http_port = http_->port();
    log_->Info("query API: http://" + config.http.listen.substr(0, config.http.listen.rfind(':')) +
               ":" + std::to_string(http_port) + "/v1/...");
  }
  UpdateMetrics(/*force=*/true);
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.metrics_port = metrics_port;
  stats_.http_port = http_port;
  return Status::OK();
}

void ServiceImpl::event_cb(RdKafka::Event& event) {
  switch (event.type()) {
    case RdKafka::Event::EVENT_ERROR:
      ++consumer_errors_;
      if (event.fatal()) fatal_ = Status::IOError("fatal Kafka error: " + event.str());
      if (consumer_errors_ <= 20 || consumer_errors_ % 100 == 0) {
        log_->Warn("kafka: " + RdKafka::err2str(event.err()) + ": " + event.str());
      }
      break;
    case RdKafka::Event::EVENT_LOG:
      if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_ERROR) log_->Warn("kafka: " + event.str());
      break;
    case RdKafka::Event::EVENT_STATS:
      OnStatistics(event.str());
      break;
    default:
      break;
  }
}

void ServiceImpl::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                               std::vector<RdKafka::TopicPartition*>& partitions) {
  const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
  ++rebalances_;
  std::vector<int32_t> ids;
  for (auto* tp : partitions) ids.push_back(tp->partition());
  std::string list;
  for (int32_t p : ids) list += (list.empty() ? "" : ",") + std::to_string(p);

  if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
    // A partition whose state the changelog has further than this store is restored first.
    // Its outbox, written by an earlier tenure here, describes the state the restore replaced:
    // dropped. Otherwise what it holds is published now (see OutboxPublisher::SetOwned).
    if (standby_ != nullptr) {
      // These partitions' standby copies are written no more: their restore reads them.
      std::vector<int32_t> owned = cooperative ? assigned_ : std::vector<int32_t>();
      owned.insert(owned.end(), ids.begin(), ids.end());
      standby_->SetOwned(owned);
    }
    if (!kafka().changelog_topic.empty()) {
      std::vector<uint32_t> replaced;
      for (auto* tp : partitions) {
        const uint32_t p = static_cast<uint32_t>(tp->partition());
        auto restored = MaybeRestore(p);
        Status s = restored.ok() ? Status::OK() : restored.status();
        if (s.ok() && *restored) {
          replaced.push_back(p);
          s = publisher_->DropPartition(p);
          if (s.ok()) s = RepublishRestored(p);
        }
        if (!s.ok()) {
          fatal_ = s;
          return;
        }
        publisher_->SetOwned(p, true);
      }
      // The recommender's index of customers is rebuilt once for all restored partitions, at
      // the end of this callback (together with a change of the owned set).
      Status s = pipeline_->PartitionsReplaced(replaced);
      if (!s.ok()) {
        fatal_ = s;
        return;
      }
    }
    // Seek to the positions stored with the state: they, not Kafka's commits, are the truth.
    for (auto* tp : partitions) {
      pipeline_->ForgetPosition(static_cast<uint32_t>(tp->partition()));
      auto position = pipeline_->Position(static_cast<uint32_t>(tp->partition()));
      if (!position.ok()) {
        fatal_ = position.status();
        return;
      }
      applied_[tp->partition()] = position->events() + position->invalid();
      tp->set_offset(position->next_offset() > 0 ? static_cast<int64_t>(position->next_offset())
                                                 : RdKafka::Topic::OFFSET_BEGINNING);
    }
    RdKafka::Error* error = nullptr;
    RdKafka::ErrorCode code = RdKafka::ERR_NO_ERROR;
    if (cooperative) {
      error = consumer->incremental_assign(partitions);
    } else {
      code = consumer->assign(partitions);
    }
    if (error != nullptr) {
      log_->Error("incremental_assign failed: " + error->str());
      delete error;
    } else if (code != RdKafka::ERR_NO_ERROR) {
      log_->Error("assign failed: " + RdKafka::err2str(code));
    }
    if (cooperative) {
      for (int32_t p : ids) {
        if (std::find(assigned_.begin(), assigned_.end(), p) == assigned_.end()) assigned_.push_back(p);
      }
    } else {
      assigned_ = ids;
    }
    if (paused_) consumer->pause(partitions);
    assignment_received_.store(true);
    log_->Info(std::string(cooperative ? "cooperative" : "eager") + " assignment: +[" + list +
               "], resuming from stored positions");
  } else {
    // Revoked: finish the in-flight batch of these partitions, commit, then let them go. When
    // the store refuses the batch, its records are dropped instead: never stored, they are read
    // again from the stored position by the partition's next owner.
    Status s = storage_error_.ok() ? ProcessPending(&ids) : storage_error_;
    if (s.IsIOError()) {
      for (int32_t p : ids) {
        auto it = pending_.find(p);
        if (it == pending_.end()) continue;
        pending_count_ -= it->second.messages.size();
        pending_.erase(it);
      }
      if (storage_error_.ok()) EnterStorageFault(s);
    } else if (!s.ok()) {
      fatal_ = s;
    }
    Commit(ids, /*sync=*/true);
    // Their co-occurrence rows changed since the last publish go before the partitions do.
    ExchangeCooccurrence(/*now=*/true);
    if (!kafka().changelog_topic.empty() && s.ok()) {
      // The partitions' next owner restores them from the changelog: it must hold every batch
      // committed here before they go (a record arriving after the new owner's would leave an
      // older state last for its customer).
      Status flushed = publisher_->Flush(kRevokeFlushTimeoutMs);
      if (!flushed.ok()) {
        log_->Warn("changelog: revoked partitions [" + list + "] handed over before the outbox "
                   "was flushed (" + flushed.message() + ")");
      }
    }
    for (int32_t p : ids) publisher_->SetOwned(static_cast<uint32_t>(p), false);
    if (cooperative) {
      RdKafka::Error* error = consumer->incremental_unassign(partitions);
      if (error != nullptr) {
        log_->Error("incremental_unassign failed: " + error->str());
        delete error;
      }
      for (int32_t p : ids) assigned_.erase(std::remove(assigned_.begin(), assigned_.end(), p), assigned_.end());
    } else {
      consumer->unassign();
      assigned_.clear();
    }
    for (int32_t p : ids) {
      committed_next_.erase(p);
      metrics_->ForgetConsumerLag(p);
    }
    // The partitions that went are tailed from their copies' offsets (a copy is the changelog
    // as far as it was read, whether or not this instance's last batches reached it yet).
    if (standby_ != nullptr) standby_->SetOwned(assigned_);
    log_->Info(std::string(cooperative ? "cooperative" : "eager") + " revocation: -[" + list +
               "] after finishing their batch" + (err == RdKafka::ERR__REVOKE_PARTITIONS ? "" : " (" + RdKafka::err2str(err) + ")"));
  }
  UpdateRefitter();
  UpdateOwnedFeeds();
  // Restored partitions and a new owned set: one rebuild of the recommender's index for both.
  Status indexed = pipeline_->EnsureRecommenderIndex();
  if (!indexed.ok() && fatal_.ok()) fatal_ = indexed;
  {
    std::lock_guard<std::mutex> lock(api_mu_);
    partitions_dirty_ = true;
  }
  UpdateStats();
}

void ServiceImpl::UpdateRefitter() {
  if (model_feed_ == nullptr) return;
  const bool leader = std::find(assigned_.begin(), assigned_.end(), 0) != assigned_.end();
  if (leader == kmeans_->refitter()) return;
  kmeans_->SetRefitter(leader);
  recommender_->SetModelRefitter(leader);
  log_->Info(leader ? "segment model: partition 0 is assigned here: this instance fits the "
                      "model for all and publishes it to '" + kafka().model_topic + "'"
                    : "segment model: partition 0 went elsewhere: this instance adopts the "
                      "model published to '" + kafka().model_topic + "'");
}

void ServiceImpl::UpdateOwnedFeeds() {
  const std::set<uint32_t> owned(assigned_.begin(), assigned_.end());
  if (sample_feed_ != nullptr) sample_feed_->SetOwned(owned);
  if (item_feed_ == nullptr) return;
  Status s = pipeline_->SetOwnedPartitions(owned);
  if (!s.ok() && fatal_.ok()) fatal_ = s;
}

void ServiceImpl::ExchangeCooccurrence(bool now) {
  if (cooccurrence_ == nullptr) return;
  cooccurrence_rows_read_ += cooccurrence_->Drain(
      [&](uint32_t partition, const std::string& item_id, const std::string* encoded,
          const CooccurrenceRow* decoded) {
        std::string_view value = encoded != nullptr ? std::string_view(*encoded) : "";
        Status s = pipeline_->ApplyRemoteCooccurrence(
            partition, item_id, encoded != nullptr ? &value : nullptr, decoded);
        if (!s.ok() && cooccurrence_rows_refused_++ % 1000 == 0) log_->Warn(s.message());
      });
  cooccurrence_->Poll([&](uint32_t partition, const std::string& item_id) {
    pipeline_->CooccurrenceRowNotPublished(partition, item_id);
  });
  const int64_t at = options_.clock->NowMicros();
  if (!now && at - cooccurrence_published_us_ < int64_t{1000} * kafka().cooccurrence_publish_ms) {
    return;
  }
  cooccurrence_published_us_ = at;
  cooccurrence_->Publish(pipeline_->TakeCooccurrenceRows());
}

void ServiceImpl::ApplyRemoteItemStats() {
  if (item_feed_ == nullptr) return;
  item_stats_remote_records_ += item_feed_->Drain(
      [&](uint32_t partition, const ItemStats& stats) {
        pipeline_->ApplyRemoteItemStats(partition, stats);
      });
}

bool ServiceImpl::PublishModel(const std::string& key, const std::string& value,
                               RdKafka::Headers* headers, const std::string& what,
                               const std::string& detail) {
  RdKafka::ErrorCode err = model_producer_->produce(
      kafka().model_topic, 0, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
      value.size(), key.data(), key.size(), 0, headers, nullptr);
  if (err != RdKafka::ERR_NO_ERROR) {
    delete headers;
    log_->Warn(what + " not published to '" + kafka().model_topic + "': " + RdKafka::err2str(err));
    return false;
  }
  log_->Info(what + " published to '" + kafka().model_topic + "'" + detail);
  return true;
}

void ServiceImpl::UpdateModelIdle() {
  if (!storage_error_.ok()) return;
  WriteSet writes;
  const bool installed = recommender_->UpdateModelIdle(store_.get(), &writes);
  if (writes.empty()) return;
  Status s = store_->Write(writes);
  if (!s.ok()) {
    log_->Warn("ALS model v" + std::to_string(recommender_->model_version()) +
               (installed ? " installed" : " trigger") + " not stored (" + s.message() +
               "); a restart fits it again");
  }
}

void ServiceImpl::UpdateSegmentModelIdle() {
  if (kmeans_ == nullptr || !storage_error_.ok()) return;
  if (kmeans_->UpdateModelIdle()) StoreSegmentModelNow("installed");
}

void ServiceImpl::StoreSegmentModelNow(const char* how) {
  WriteSet writes;
  segmenter_->AppendWrites(&writes);
  Status s = store_->Write(writes);
  if (!s.ok()) {
    log_->Warn("segment model v" + std::to_string(kmeans_->model_version()) + " " + how +
               " but not stored yet (" + s.message() + "); the next batch stores it");
  }
}

void ServiceImpl::PublishAndAdoptModels() {
  if (model_feed_ == nullptr) return;
  model_producer_->poll(0);
  for (const v1::SegmentModel& m : fitted_models_) {
    if (!kmeans_->refitter() || m.version() <= model_feed_->latest_version()) continue;
    RdKafka::Headers* headers = RdKafka::Headers::create();
    headers->add("content-type", "application/x-streamrec-state; messageType=streamrec.v1.SegmentModel");
    if (PublishModel(kSegmentModelKey, EncodeState(m), headers,
                     "segment model v" + std::to_string(m.version()), "")) {
      ++models_published_;
    }
  }
  fitted_models_.clear();
  for (const auto& [version, encoded] : fitted_als_) {
    if (!kmeans_->refitter() || version <= model_feed_->latest_als_version()) continue;
    RdKafka::Headers* headers = RdKafka::Headers::create();
    headers->add("content-type", "application/x-streamrec-als-model");
    headers->add(kModelVersionHeader, std::to_string(version));
    if (PublishModel(kAlsModelTopicKey, encoded, headers, "ALS model v" + std::to_string(version),
                     " (" + std::to_string(encoded.size()) + " bytes)")) {
      ++als_models_published_;
    }
  }
  fitted_als_.clear();
  if (storage_error_.ok()) {
    WriteSet writes;
    if (recommender_->AdoptOffered(&writes)) {
      Status s = store_->Write(writes);
      log_->Info("ALS model v" + std::to_string(recommender_->model_version()) + " adopted from '" +
                 kafka().model_topic + "'" +
                 (s.ok() ? std::string() : " (not stored: " + s.message() + ")"));
    }
  }
  // A version read from the topic newer than ours: in use from now, stored at once.
  if (storage_error_.ok() && kmeans_->AdoptOffered()) StoreSegmentModelNow("adopted");
}

Status ServiceImpl::ProcessPartition(int32_t partition, PartitionBatch* batch) {
  if (batch->messages.empty()) return Status::OK();
  std::vector<SourceRecord> records;
  records.reserve(batch->messages.size());
  for (const auto& m : batch->messages) {
    SourceRecord r;
    r.offset = static_cast<uint64_t>(m->offset());
    if (m->key_pointer() != nullptr) r.key = std::string_view(static_cast<const char*>(m->key_pointer()), m->key_len());
    r.payload = std::string_view(static_cast<const char*>(m->payload()), m->len());
    const RdKafka::MessageTimestamp ts = m->timestamp();
    if (ts.type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE) r.timestamp_ms = ts.timestamp;
    records.push_back(r);
  }
  if (options_.on_trace) {
    const int64_t now_ms = WallClockMillis();
    for (const SourceRecord& r : records) {
      if (r.timestamp_ms > 0) options_.on_trace("processing", r.timestamp_ms, now_ms);
    }
  }
  ++batches_;
  if (options_.fault_hook) options_.fault_hook("batch", batches_);
  BatchResult result;
  const auto start = std::chrono::steady_clock::now();
  STREAMREC_RETURN_IF_ERROR(
      pipeline_->ProcessBatch(static_cast<uint32_t>(partition), records, decoder_.get(), &result));
  metrics_->RecordBatch(result, records.size(),
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (options_.fault_hook) options_.fault_hook("commit", batches_);
  records_ += result.records;
  events_ += result.events;
  invalid_ += result.invalid.size();
  for (const InvalidRecord& bad : result.invalid) ++invalid_by_reason_[InvalidReason(bad.status)];
  lists_ += result.lists_published;
  outbox_written_ += result.lists_published + result.segment_changes + result.invalid.size();
  {
    auto position = pipeline_->Position(static_cast<uint32_t>(partition));
    if (position.ok()) applied_[partition] = position->events() + position->invalid();
  }
  watermark_ms_ = std::max(watermark_ms_, result.watermark_ms);
  committed_next_[partition] = batch->messages.back()->offset() + 1;
  const int64_t committed_ms = WallClockMillis();
  for (const OutboxEntry& entry : result.outbox) {
    const v1::OutboxRecord& record = entry.record;
    if (record.payload_case() != v1::OutboxRecord::kList || record.source_time_ms() <= 0) continue;
    metrics_->RecordCommitted(record.source_time_ms(), committed_ms);
    if (options_.on_trace) options_.on_trace("committed", record.source_time_ms(), committed_ms);
  }
  // The batch's outbox records go to the publisher in memory: it need not read them back. Those
  // written to other partitions (segment changes after a re-fit) are among them; the store, the
  // truth, is still checked for those partitions (one seek each, only after such a batch).
  publisher_->Enqueue(std::move(result.outbox));
  for (uint32_t other : result.other_outbox_partitions) publisher_->Notify(other);
  batch->messages.clear();
  return Status::OK();
}

Status ServiceImpl::ProcessPending(const std::vector<int32_t>* only) {
  for (auto& [partition, batch] : pending_) {
    if (only != nullptr && std::find(only->begin(), only->end(), partition) == only->end()) continue;
    const size_t n = batch.messages.size();
    // On failure the batch keeps its records (nothing of them was stored).
    STREAMREC_RETURN_IF_ERROR(ProcessPartition(partition, &batch));
    pending_count_ -= n;
  }
  if (pending_count_ == 0) batch_deadline_us_ = 0;
  return Status::OK();
}

void ServiceImpl::Commit(const std::vector<int32_t>& partitions, bool sync) {
  if (!kafka().commit_offsets) return;
  std::vector<RdKafka::TopicPartition*> offsets;
  for (int32_t p : partitions) {
    auto it = committed_next_.find(p);
    if (it == committed_next_.end()) continue;
    offsets.push_back(RdKafka::TopicPartition::create(kafka().input_topic, p, it->second));
  }
  if (!offsets.empty()) {
    RdKafka::ErrorCode err = sync ? consumer_->commitSync(offsets) : consumer_->commitAsync(offsets);
    if (err != RdKafka::ERR_NO_ERROR && err != RdKafka::ERR__NO_OFFSET) {
      log_->Warn("offset commit (lag monitoring only) failed: " + RdKafka::err2str(err));
    }
  }
  RdKafka::TopicPartition::destroy(offsets);
}

void ServiceImpl::Backpressure() {
  const uint64_t limit = static_cast<uint64_t>(kafka().max_in_flight);
  const uint64_t in_flight = publisher_->in_flight();
  if (!backpressure_ && in_flight >= limit) {
    backpressure_ = true;
    ++pauses_;
    log_->Warn("backpressure: " + std::to_string(in_flight) +
               " output records unacknowledged; partitions paused");
  } else if (backpressure_ && in_flight <= limit / 2) {
    backpressure_ = false;
    log_->Info("backpressure cleared");
  }
  SetPaused(backpressure_ || !storage_error_.ok());
}

void ServiceImpl::SetPaused(bool pause) {
  if (pause == paused_) return;
  std::vector<RdKafka::TopicPartition*> parts;
  consumer_->assignment(parts);
  if (pause) {
    consumer_->pause(parts);
  } else {
    consumer_->resume(parts);
    log_->Info("partitions resumed");
  }
  RdKafka::TopicPartition::destroy(parts);
  paused_ = pause;
}

void ServiceImpl::EnterStorageFault(const Status& error) {
  const int64_t now = options_.clock->NowMicros();
  ++storage_errors_;
  if (storage_error_.ok()) {
    storage_failed_us_ = now;
    log_->Error("state store write failed: " + error.ToString() +
                ". Input paused; nothing of the batch is stored or kept in memory; the store "
                "is asked to resume every second and the batch applied again");
  }
  storage_error_ = error;
  storage_retry_us_ = now + kStorageRetryUs;
  storage_writable_.store(false);
  {
    std::lock_guard<std::mutex> lock(storage_mu_);
    storage_why_ = "the state store refuses writes (" + error.message() +
                   "); input paused, retrying every second";
  }
  SetPaused(true);
}

void ServiceImpl::TryResumeStorage() {
  const int64_t now = options_.clock->NowMicros();
  if (storage_error_.ok() || now < storage_retry_us_) return;
  Status s = store_->Resume();
  if (s.ok()) {
    std::vector<int32_t> done;
    for (const auto& [p, b] : pending_) {
      if (!b.messages.empty()) done.push_back(p);
    }
    s = ProcessPending();
    if (s.ok()) Commit(done, /*sync=*/false);
  }
  if (!s.ok()) {
    ++storage_retries_;
    storage_retry_us_ = now + kStorageRetryUs;
    if (storage_retries_ <= 5 || storage_retries_ % 60 == 0) {
      log_->Warn("state store still refuses writes (" + s.message() + "); retry " +
                 std::to_string(storage_retries_));
    }
    // An I/O error is the fault itself; Busy is a store that could not reopen while a reader
    // (a segment scan, a background fit) held a snapshot: both are tried again. Anything else
    // (a corrupt store) stops the service.
    if (!s.IsIOError() && !s.IsBusy()) fatal_ = s;
    return;
  }
  log_->Info("state store takes writes again after " +
             std::to_string((now - storage_failed_us_) / 1000) + " ms; input resumed");
  storage_error_ = Status::OK();
  storage_writable_.store(true);
  {
    std::lock_guard<std::mutex> lock(storage_mu_);
    storage_why_.clear();
  }
  Backpressure();
}

void ServiceImpl::UpdateStats() {
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.records = records_;
  stats_.events = events_;
  stats_.invalid = invalid_;
  stats_.invalid_by_reason = invalid_by_reason_;
  stats_.batches = batches_;
  stats_.lists_published = lists_;
  stats_.outbox_written = outbox_written_;
  stats_.applied = 0;
  for (const auto& [p, n] : applied_) stats_.applied += n;
  stats_.delivered = publisher_->delivered();
  stats_.outbox_read_back = publisher_->read_from_store();
  stats_.delivery_errors = publisher_->delivery_errors();
  stats_.in_flight = publisher_->in_flight();
  stats_.consumer_errors = consumer_errors_;
  stats_.rebalances = rebalances_;
  stats_.pauses = pauses_;
  stats_.storage_errors = storage_errors_;
  stats_.storage_retries = storage_retries_;
  stats_.storage_writable = storage_error_.ok();
  stats_.queue = queue_stats_;
  stats_.assigned = assigned_;
  stats_.restored_partitions = restored_partitions_;
  stats_.restored_records = restored_records_;
  stats_.restored_from_standby = restored_from_standby_;
  stats_.republished_lists = republished_lists_;
  stats_.republished_item_stats = republished_item_stats_;
  if (kmeans_ != nullptr) {
    stats_.segment_model_version = kmeans_->model_version();
    stats_.segment_refits = kmeans_->refits();
    stats_.segment_models_adopted = kmeans_->adopted();
    stats_.segment_refitter = kmeans_->refitter();
    stats_.segment_refit_running = kmeans_->stats().refit_running;
  }
  stats_.segment_models_published = models_published_;
  stats_.als_model_version = recommender_->model_version();
  stats_.als_models_adopted = recommender_->models_adopted();
  stats_.als_models_published = als_models_published_;
  const ModelRefitStats als = recommender_->refit_stats();
  stats_.als_fit_customers = als.last_customers;
  stats_.als_refit_running = als.running;
  stats_.als_refits = als.installed;
  stats_.item_stats_purchases = pipeline_->item_purchases();
  stats_.item_stats_buyers = pipeline_->item_buyers();
  stats_.customers = 0;
  for (int32_t p : assigned_) {
    auto position = pipeline_->Position(static_cast<uint32_t>(p));
    if (position.ok()) stats_.customers += position->customers();
  }
  if (sample_feed_ != nullptr) {
    stats_.fit_samples_remote = sample_feed_->remote();
    stats_.fit_samples_refused = sample_feed_->refused();
  }
  if (kmeans_ != nullptr) {
    auto model = kmeans_->model();
    stats_.segment_fit_customers = model ? model->proto.fit_points() : 0;
  }
  if (item_feed_ != nullptr) {
    stats_.item_stats_remote_records = item_stats_remote_records_;
    stats_.item_stats_refused = item_feed_->refused();
    stats_.item_stats_lag = item_feed_->lag();
  }
  if (cooccurrence_ != nullptr) {
    const int64_t at = options_.clock->NowMicros();
    if (at - cooccurrence_totals_us_ >= 1000000) {  // a walk over every pair: once a second
      cooccurrence_totals_ = recommender_->cooccurrence_totals();
      cooccurrence_totals_us_ = at;
    }
    stats_.cooccurrence_buyers = cooccurrence_totals_.first;
    stats_.cooccurrence_pairs = cooccurrence_totals_.second;
    stats_.cooccurrence_rows_read = cooccurrence_rows_read_;
    stats_.cooccurrence_rows_published = cooccurrence_->published();
    stats_.cooccurrence_rows_refused = cooccurrence_->refused() + cooccurrence_rows_refused_;
    stats_.cooccurrence_remote_rows = pipeline_->cooccurrence_remote_rows();
    stats_.cooccurrence_lag = cooccurrence_->lag();
  }
  if (standby_ != nullptr) {
    const StandbyStats standby = standby_->stats();
    stats_.standby_records = standby.records;
    stats_.standby_partitions = standby.partitions;
    stats_.standby_lag = standby.lag;
    stats_.standby_caught_up = standby.caught_up;
  }
  std::sort(stats_.assigned.begin(), stats_.assigned.end());
  stats_.watermark_ms = watermark_ms_;
  std::string why;
  stats_.ready = Ready(&why);
  stats_cv_.notify_all();
}

Status ServiceImpl::Run(const std::atomic<bool>& stop) {
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.running = true;
  }
  RdKafka::ErrorCode err = consumer_->subscribe({kafka().input_topic});
  if (err != RdKafka::ERR_NO_ERROR) {
    return Status::IOError("subscribe to '" + kafka().input_topic + "': " + RdKafka::err2str(err));
  }
  log_->Info("consuming '" + kafka().input_topic + "' in group '" + kafka().group_id + "' from " +
             kafka().brokers);
  const size_t batch_size = static_cast<size_t>(std::max(1, options_.config.pipeline.batch_size));
  Status status;
  int64_t last_stats_us = 0;
  int64_t last_end_check_us = 0;
  while (!stop.load() && !crash_.load()) {
    int64_t now = options_.clock->NowMicros();
    loop_alive_ms_.store(WallClockMillis());
    int wait_ms = publisher_->in_flight() > 0 ? kInFlightPollWaitMs : kMaxPollWaitMs;
    if (!storage_error_.ok()) {
      // Paused on a storage fault: nothing to batch, only the next retry to wait for.
      wait_ms = static_cast<int>(std::clamp<int64_t>((storage_retry_us_ - now) / 1000, 0, wait_ms));
    } else if (pending_count_ > 0) {
      wait_ms = static_cast<int>(std::clamp<int64_t>((batch_deadline_us_ - now) / 1000, 0, wait_ms));
    }
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(wait_ms));
    if (!fatal_.ok()) {
      status = fatal_;
      break;
    }
    switch (msg->err()) {
      case RdKafka::ERR_NO_ERROR: {
        int32_t partition = msg->partition();
        const RdKafka::MessageTimestamp ts = msg->timestamp();
        if (ts.type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE) {
          const int64_t now_ms = WallClockMillis();
          metrics_->RecordConsumed(ts.timestamp, now_ms);
          if (options_.on_trace) options_.on_trace("consumed", ts.timestamp, now_ms);
        }
        if (pending_count_ == 0) {
          batch_deadline_us_ = options_.clock->NowMicros() + kafka().max_batch_ms * 1000LL;
        }
        pending_[partition].messages.push_back(std::move(msg));
        ++pending_count_;
        break;
      }
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF:
        break;
      case RdKafka::ERR__AUTO_OFFSET_RESET:
        ++consumer_errors_;
        log_->Error("partition " + std::to_string(msg->partition()) +
                    ": the stored position is no longer in the log (" + msg->errstr() +
                    "); records were deleted before they were applied. The partition is "
                    "stopped; set kafka.consumer.auto.offset.reset=earliest to skip ahead");
        break;
      default:
        ++consumer_errors_;
        if (consumer_errors_ <= 20 || consumer_errors_ % 100 == 0) {
          log_->Warn("consumer: " + msg->errstr());
        }
        break;
    }
    if (!storage_error_.ok()) {
      TryResumeStorage();
    } else if (pending_count_ >= batch_size ||
               (pending_count_ > 0 && options_.clock->NowMicros() >= batch_deadline_us_)) {
      std::vector<int32_t> done;
      for (const auto& [p, b] : pending_) {
        if (!b.messages.empty()) done.push_back(p);
      }
      status = ProcessPending();
      if (status.IsIOError()) {
        EnterStorageFault(status);
        status = Status::OK();
      }
      if (!status.ok()) break;
      Commit(done, /*sync=*/false);
    }
    if (crash_.load()) break;
    status = publisher_->Pump();
    if (!status.ok()) break;
    Backpressure();
    // Stats are published at most every 10 ms: cheap at a million messages per second, and
    // prompt for anyone waiting on them.
    int64_t after = options_.clock->NowMicros();
    if (after - last_stats_us >= 10000) {
      UpdateModelIdle();
      UpdateSegmentModelIdle();
      PublishAndAdoptModels();
      ApplyRemoteItemStats();
      ExchangeCooccurrence(/*now=*/false);
      UpdateStats();
      last_stats_us = after;
    }
    UpdateMetrics(/*force=*/false);
    if (options_.stop_at_end && storage_error_.ok() && pending_count_ == 0 &&
        publisher_->in_flight() == 0 &&
        after - last_end_check_us >= kEndCheckIntervalUs) {
      last_end_check_us = after;
      if (AtEnd()) {
        log_->Info("every assigned partition is applied up to its end: stopping (--stop-at-end)");
        break;
      }
    }
  }
  if (crash_.load()) {
    UpdateStats();
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.running = false;
    stats_cv_.notify_all();
    return Status::Aborted("simulated crash");
  }
  if (status.ok()) {
    // Clean stop: finish the batch, publish and flush, commit, close. While the store refuses
    // writes, the pending records are left to the next run (they were never stored).
    if (storage_error_.ok()) {
      status = ProcessPending();
    } else {
      log_->Warn("stopping while the state store refuses writes: " +
                 std::to_string(pending_count_) + " consumed records were not applied; the "
                 "next run reads them again from the stored positions");
    }
    Status flushed = publisher_->Flush(kCloseFlushTimeoutMs);
    if (!flushed.ok()) log_->Warn("at stop: " + flushed.message());
    producer_->flush(5000);
    // The co-occurrence rows changed since the last publish go now, not with the next owner.
    ExchangeCooccurrence(/*now=*/true);
    if (cooccurrence_ != nullptr) cooccurrence_->Flush(5000);
    std::vector<int32_t> all;
    for (const auto& [p, next] : committed_next_) all.push_back(p);
    Commit(all, /*sync=*/true);
  } else {
    failed_.store(true);
    log_->Error("stopping: " + status.ToString());
  }
  consumer_->close();
  Status flushed = store_->Flush();
  if (status.ok()) status = flushed;
  UpdateStats();
  UpdateMetrics(/*force=*/true);  // the last scrape (and `streamrec bench`) sees the end state
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.running = false;
    stats_cv_.notify_all();
  }
  log_->Info("stopped: " + std::to_string(events_) + " events, " + std::to_string(invalid_) +
             " dead letters, " + std::to_string(publisher_->delivered()) + " records delivered");
  return status;
}

bool ServiceImpl::AtEnd() {
  if (!assignment_received_.load() || assigned_.empty()) return false;
  for (int32_t p : assigned_) {
    auto position = pipeline_->Position(static_cast<uint32_t>(p));
    if (!position.ok()) return false;
    int64_t low = 0;
    int64_t high = 0;
    RdKafka::ErrorCode err =
        consumer_->query_watermark_offsets(kafka().input_topic, p, &low, &high, kEndCheckTimeoutMs);
    if (err != RdKafka::ERR_NO_ERROR) return false;
    if (static_cast<int64_t>(position->next_offset()) < high) return false;
  }
  return true;
}

void ServiceImpl::UpdateMetrics(bool force) {
  const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  if (!force && now_us - last_metrics_us_ < kMetricsIntervalUs) return;
  last_metrics_us_ = now_us;
  ServiceTotals totals;
  totals.rebalances = rebalances_;
  totals.consumer_errors = consumer_errors_;
  totals.pauses = pauses_;
  totals.delivery_errors = publisher_->delivery_errors();
  totals.storage_errors = storage_errors_;
  totals.storage_retries = storage_retries_;
  metrics_->SetTotals(totals);
  metrics_->SetAssignedPartitions(assigned_.size());
  if (standby_ != nullptr) {
    const StandbyStats standby = standby_->stats();
    metrics_->SetStandby(standby.records, standby.partitions, standby.lag);
  }
  metrics_->SetItemStats(pipeline_->item_purchases(), item_stats_remote_records_,
                         item_feed_ != nullptr ? item_feed_->lag() : 0);
  if (sample_feed_ != nullptr) metrics_->SetFitSamples(sample_feed_->remote(), sample_feed_->lag());
  if (cooccurrence_ != nullptr) {
    metrics_->SetCooccurrence(cooccurrence_->published(), pipeline_->cooccurrence_remote_rows(),
                              cooccurrence_->lag());
  }
  const uint64_t written = publisher_->recovered() + outbox_written_;
  const uint64_t delivered = publisher_->delivered();
  metrics_->SetOutboxPending(written > delivered ? written - delivered : 0);
  if (watermark_ms_ > 0) metrics_->SetEventTimeLag((WallClockMillis() - watermark_ms_) / 1000.0);
  std::string why;
  metrics_->SetReady(Ready(&why));
  metrics_->SetStorageWritable(storage_error_.ok());
  metrics_->SetStoreProperties(store_->Properties());
  const SegmenterStats segmenter = segmenter_->stats();
  metrics_->SetSegmenterStats(segmenter);
  if (model_feed_ != nullptr) {
    metrics_->SetSharedModel(kmeans_->refitter(), models_published_, kmeans_->adopted());
  }
  const uint64_t als_version = recommender_->model_version();
  metrics_->SetAlsStats(als_version, recommender_->refit_stats());
  {
    std::lock_guard<std::mutex> lock(api_mu_);
    segmenter_stats_ = segmenter;
    als_version_ = als_version;
  }
  // Segment sizes: every interval, and soon after a new model relabelled customers (or the
  // first customers arrived), at most every kMinScanUs.
  constexpr int64_t kMinScanUs = 5000000;
  const int interval_s = options_.config.metrics.segment_scan_interval_s;
  const bool changed = segmenter.model_version != scanned_model_version_ ||
                       (scanned_events_ == 0 && events_ > 0);
  if (interval_s > 0 && (last_scan_us_ == 0 || now_us - last_scan_us_ >= interval_s * 1000000LL ||
                         (changed && now_us - last_scan_us_ >= kMinScanUs))) {
    last_scan_us_ = now_us;
    scanned_model_version_ = segmenter.model_version;
    scanned_events_ = events_;
    StartSegmentScan();
  }
}

void ServiceImpl::StartSegmentScan() {
  if (scan_running_.exchange(true)) return;  // the last one is still going
  if (scan_thread_.joinable()) scan_thread_.join();
  // The snapshot is taken here, between two batches; the scan reads it on its own thread.
  std::shared_ptr<StateStore> snapshot = store_->Snapshot();
  scan_thread_ = std::thread([this, snapshot] {
    auto profiles = ProfileSegments(snapshot.get());
    if (profiles.ok()) {
      metrics_->SetSegmentProfiles(*profiles);
      std::lock_guard<std::mutex> lock(api_mu_);
      profiles_ = std::move(profiles).value();
      profiles_unix_ms_ = WallClockMillis();
    } else {
      log_->Warn("segment scan for the metrics: " + profiles.status().ToString());
    }
    scan_running_.store(false);
  });
}

void ServiceImpl::OnStatistics(const std::string& json) {
  // {"type":"consumer", "topics":{"<topic>":{"partitions":{"0":{"consumer_lag":N,
  //  "fetchq_cnt":N, "fetchq_size":N, ...},...}}}}
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(json);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return;
  std::string_view type;
  if (doc["type"].get_string().get(type) || type != "consumer") return;
  simdjson::ondemand::object partitions;
  if (doc["topics"][kafka().input_topic]["partitions"].get_object().get(partitions)) return;
  // The high-level consumer forwards every partition's fetch queue to its one queue, and
  // librdkafka reports that queue's totals under each partition (librdkafka 2.0.2, checked): the
  // prefetch is the largest figure reported, not the sum.
  ConsumerQueueStats q = queue_stats_;
  q.lag = 0;
  q.prefetch_messages = 0;
  q.prefetch_bytes = 0;
  for (auto field : partitions) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return;
    int32_t partition = -1;
    std::from_chars(key.data(), key.data() + key.size(), partition);
    simdjson::ondemand::object p;
    if (field.value().get_object().get(p)) return;
    if (partition < 0) continue;  // -1: librdkafka's internal partition
    if (std::find(assigned_.begin(), assigned_.end(), partition) == assigned_.end()) continue;
    int64_t lag = -1, count = 0, bytes = 0;
    if (!p["consumer_lag"].get_int64().get(lag) && lag >= 0) {  // -1: unknown
      metrics_->SetConsumerLag(partition, lag);
      q.lag += static_cast<uint64_t>(lag);
    }
    if (!p["fetchq_cnt"].get_int64().get(count) && count > 0) {
      q.prefetch_messages = std::max(q.prefetch_messages, static_cast<uint64_t>(count));
    }
    if (!p["fetchq_size"].get_int64().get(bytes) && bytes > 0) {
      q.prefetch_bytes = std::max(q.prefetch_bytes, static_cast<uint64_t>(bytes));
    }
  }
  q.peak_lag = std::max(q.peak_lag, q.lag);
  q.peak_prefetch_messages = std::max(q.peak_prefetch_messages, q.prefetch_messages);
  q.peak_prefetch_bytes = std::max(q.peak_prefetch_bytes, q.prefetch_bytes);
  ++q.reports;
  queue_stats_ = q;
  metrics_->SetConsumerPrefetch(q.prefetch_messages, q.prefetch_bytes);
}

std::vector<uint32_t> ServiceImpl::KnownPartitions() {
  std::lock_guard<std::mutex> lock(api_mu_);
  if (partitions_dirty_) {
    // Every partition with a stored position: a customer's state lives under one of them.
    std::vector<uint32_t> found;
    Status s = store_->Scan(Column::kPositions, "", [&](std::string_view, std::string_view value) {
      v1::SourcePosition position;
      if (DecodeState(value, &position).ok() &&
          position.source() == pipeline_->options().source_name) {
        found.push_back(position.partition());
      }
      return true;
    });
    if (s.ok()) {
      partitions_cache_ = std::move(found);
      partitions_dirty_ = false;
    }
  }
  return partitions_cache_;
}

HttpReply ServiceImpl::Customer(const std::string& id) {
  CustomerState state;
  uint32_t partition = 0;
  bool found = false;
  for (uint32_t p : KnownPartitions()) {
    std::string value;
    Status s = store_->Get(Column::kCustomers, PartitionKey(p, id), &value);
    if (s.IsNotFound()) continue;
    if (!s.ok()) return {500, JsonError("reading customer '" + id + "': " + s.ToString())};
    s = DecodeState(value, &state);
    if (!s.ok()) return {500, JsonError("customer '" + id + "': " + s.ToString())};
    partition = p;
    found = true;
    break;
  }
  if (!found) return {404, JsonError("unknown customer '" + id + "'")};
  v1::RecommendationList list;
  bool has_list = false;
  {
    std::string value;
    Status s = store_->Get(Column::kLists, ListKey(partition, id), &value);
    if (s.ok()) has_list = DecodeState(value, &list).ok();
  }
  int64_t now_ms = 0;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    now_ms = std::max(stats_.watermark_ms, state.last_time_ms());
  }
  const DerivedFeatures f = Derive(state, now_ms);
  std::shared_ptr<const SegmentModelVersion> model = kmeans_ != nullptr ? kmeans_->model() : nullptr;

  JsonWriter w;
  w.BeginObject();
  w.Key("customer_id").String(id);
  w.Key("partition").Uint(partition);
  w.Key("as_of").String(FormatIso8601(now_ms));
  w.Key("group").String(InControlGroup(id, options_.config.recommend.control_share) ? "control"
                                                                                     : "treatment");
  w.Key("cluster").Int(state.cluster());
  w.Key("segment").String(state.segment());
  w.Key("segment_model_version").Uint(state.model_version());
  if (model) {
    const int row = model->RowOf(state.cluster());
    if (row >= 0) w.Key("segment_action").String(model->actions[row]);
    const RfmScore score = model->rfm.ScoreCentre(f.recency_days, f.frequency, f.monetary);
    w.Key("rfm").BeginObject().Key("r").Int(score.r).Key("f").Int(score.f).Key("m").Int(score.m)
        .EndObject();
  }
  w.Key("features").BeginObject();
  w.Key("first_purchase").String(FormatIso8601(state.first_time_ms()));
  w.Key("last_purchase").String(FormatIso8601(state.last_time_ms()));
  w.Key("recency_days").Double(f.recency_days);
  w.Key("baskets").Uint(state.purchase_count());
  w.Key("lines").Uint(state.event_count());
  w.Key("total_spend").Double(state.total_spend());
  w.Key("decayed_spend").Double(state.decayed_spend());
  w.Key("avg_basket_spend").Double(f.avg_spend);
  w.Key("avg_discount").Double(f.avg_discount);
  w.Key("mean_gap_days").Double(f.mean_gap_days);
  w.Key("tenure_days").Double(f.tenure_days);
  w.Key("channels").BeginObject();
  for (const v1::CountEntry& c : state.channels()) w.Key(c.key()).Uint(c.count());
  w.EndObject();
  w.Key("service_types").BeginObject();
  for (const v1::CountEntry& c : state.service_types()) w.Key(c.key()).Uint(c.count());
  w.EndObject();
  if (model) {
    std::vector<float> raw(model->spec.dim());
    BuildRawVector(model->spec, state, now_ms, raw.data());
    const std::vector<std::string> names = model->spec.Names();
    w.Key("model_inputs").BeginObject();
    for (size_t i = 0; i < names.size(); ++i) w.Key(names[i]).Double(raw[i]);
    w.EndObject();
  }
  w.EndObject();
  // The most bought items, at most 10.
  std::vector<const v1::ItemCount*> items;
  for (const v1::ItemCount& item : state.items()) items.push_back(&item);
  std::sort(items.begin(), items.end(), [](const v1::ItemCount* a, const v1::ItemCount* b) {
    return a->count() != b->count() ? a->count() > b->count() : a->item_id() < b->item_id();
  });
  if (items.size() > 10) items.resize(10);
  w.Key("top_items").BeginArray();
  for (const v1::ItemCount* item : items) {
    w.BeginObject().Key("item_id").String(item->item_id()).Key("count").Uint(item->count())
        .Key("spend").Double(item->spend()).Key("last_purchase")
        .String(FormatIso8601(item->last_time_ms())).EndObject();
  }
  w.EndArray();
  w.Key("list");
  if (has_list) {
    w.BeginObject();
    w.Key("version").Uint(list.version());
    w.Key("as_of").String(FormatIso8601(list.as_of_ms()));
    w.Key("items").BeginArray();
    for (const v1::RecommendedItem& item : list.items()) {
      w.BeginObject().Key("item_id").String(item.item_id()).Key("score").Double(item.score())
          .Key("strategy").String(item.strategy()).Key("reason").String(item.reason()).EndObject();
    }
    w.EndArray();
    w.EndObject();
  } else {
    w.Null();
  }
  w.EndObject();
  return {200, w.Release()};
}

HttpReply ServiceImpl::Segments() {
  std::vector<SegmentProfile> profiles;
  int64_t scanned_ms = 0;
  {
    std::lock_guard<std::mutex> lock(api_mu_);
    profiles = profiles_;
    scanned_ms = profiles_unix_ms_;
  }
  std::shared_ptr<const SegmentModelVersion> model = kmeans_ != nullptr ? kmeans_->model() : nullptr;
  std::map<int32_t, const SegmentProfile*> by_cluster;
  uint64_t customers = 0;
  double revenue = 0;
  for (const SegmentProfile& p : profiles) {
    by_cluster[p.cluster] = &p;
    customers += p.customers;
    revenue += p.revenue;
  }
  JsonWriter w;
  w.BeginObject();
  w.Key("scanned_at").String(scanned_ms > 0 ? FormatIso8601(scanned_ms) : "");
  w.Key("customers").Uint(customers);
  w.Key("revenue").Double(revenue);
  w.Key("segments").BeginArray();
  for (const SegmentInfo& info : segmenter_->Segments()) {
    w.BeginObject();
    w.Key("cluster").Int(info.cluster);
    w.Key("name").String(info.name);
    w.Key("action").String(info.description);
    auto it = by_cluster.find(info.cluster);
    const SegmentProfile* p = it != by_cluster.end() ? it->second : nullptr;
    w.Key("customers").Uint(p ? p->customers : 0);
    w.Key("share").Double(p && customers > 0 ? static_cast<double>(p->customers) / customers : 0);
    w.Key("revenue").Double(p ? p->revenue : 0);
    w.Key("revenue_share").Double(p && revenue > 0 ? p->revenue / revenue : 0);
    w.Key("revenue_per_customer").Double(p && p->customers > 0 ? p->revenue / p->customers : 0);
    w.Key("mean_recency_days").Double(p ? p->mean_recency_days : 0);
    w.Key("mean_frequency").Double(p ? p->mean_frequency : 0);
    w.Key("mean_monetary").Double(p ? p->mean_monetary : 0);
    if (model) {
      const int row = model->RowOf(info.cluster);
      if (row >= 0) {
        const v1::SegmentCluster& c = model->proto.clusters(row);
        w.Key("rfm").BeginObject().Key("r").Uint(c.r_score()).Key("f").Uint(c.f_score())
            .Key("m").Uint(c.m_score()).EndObject();
      }
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {200, w.Release()};
}

HttpReply ServiceImpl::Model() {
  SegmenterStats stats;
  uint64_t als_version = 0;
  {
    std::lock_guard<std::mutex> lock(api_mu_);
    stats = segmenter_stats_;
    als_version = als_version_;
  }
  std::shared_ptr<const SegmentModelVersion> model = kmeans_ != nullptr ? kmeans_->model() : nullptr;
  JsonWriter w;
  w.BeginObject();
  w.Key("method").String(options_.config.segments.method);
  w.Key("version").Uint(stats.model_version);
  w.Key("als_version").Uint(als_version);
  w.Key("refits").Uint(stats.refits);
  w.Key("refit_failures").Uint(stats.refit_failures);
  w.Key("refit_running").Bool(stats.refit_running);
  w.Key("refit_requested").Bool(stats.refit_requested);
  w.Key("online_objective").Double(stats.online_objective);
  w.Key("last_refit");
  if (stats.last_refit_unix_ms > 0) {
    w.BeginObject().Key("at").String(FormatIso8601(stats.last_refit_unix_ms))
        .Key("seconds").Double(stats.last_refit_seconds).EndObject();
  } else {
    w.Null();
  }
  if (model) {
    const v1::SegmentModel& p = model->proto;
    w.Key("k").Int(model->k);
    w.Key("fitted_at_event_time").String(FormatIso8601(p.created_event_time_ms()));
    w.Key("fit_customers").Uint(p.fit_points());
    w.Key("objective").Double(p.objective());
    w.Key("objective_per_customer").Double(stats.refit_objective);
    w.Key("silhouette").Double(p.silhouette());
    const std::vector<std::string> names = model->spec.Names();
    w.Key("features").BeginArray();
    for (const std::string& name : names) w.String(name);
    w.EndArray();
    w.Key("centres").BeginArray();  // in the model's transformed (standardised) space
    const int d = model->spec.dim();
    for (int j = 0; j < model->k; ++j) {
      w.BeginObject().Key("cluster").Int(model->ids[j]).Key("name").String(model->names[j]);
      w.Key("centre").BeginArray();
      for (int i = 0; i < d; ++i) w.Double(model->centres[static_cast<size_t>(j) * d + i]);
      w.EndArray().EndObject();
    }
    w.EndArray();
  } else {
    w.Key("k").Int(0);
  }
  w.EndObject();
  return {200, w.Release()};
}

HttpReply ServiceImpl::Refit() {
  if (model_feed_ != nullptr && !kmeans_->refitter()) {
    return {409, JsonError("this instance adopts the segment model published to '" +
                           kafka().model_topic + "': ask the instance that owns input partition 0")};
  }
  if (!segmenter_->RequestRefit()) {
    return {409, JsonError("no segment model to re-fit yet (segments.method '" +
                           options_.config.segments.method +
                           "', or too few customers for the first fit)")};
  }
  log_->Info("re-fit requested over HTTP");
  JsonWriter w;
  w.BeginObject().Key("status").String("re-fit requested").Key("current_version")
      .Uint(segmenter_->model_version()).EndObject();
  return {202, w.Release()};
}

bool ServiceImpl::Healthy(std::string* why) {
  const int64_t alive = loop_alive_ms_.load();
  if (failed_.load()) {
    *why = "stopped on an error";
    return false;
  }
  if (alive > 0 && WallClockMillis() - alive > kUnhealthyAfterMs) {
    *why = "the poll loop has not turned for " + std::to_string((WallClockMillis() - alive) / 1000) + " s";
    return false;
  }
  return true;
}

StatusOr<bool> ServiceImpl::MaybeRestore(uint32_t partition) {
  const std::string name = "partition " + std::to_string(partition);
  const std::string& source = pipeline_->options().source_name;
  auto incomplete = RestoreIncomplete(store_.get(), source, partition);
  if (!incomplete.ok()) return incomplete.status();
  auto local = LoadPosition(store_.get(), source, partition);  // the store's, not a cached one
  if (!local.ok()) return local.status();
  auto latest = LatestChangelogPosition(kafka(), partition, kRestoreTimeoutMs);
  if (!latest.ok()) {
    if (*incomplete) {
      return Status::IOError(name + ": an earlier restore from the changelog did not finish and "
                             "the changelog cannot be read: " + latest.status().message());
    }
    log_->Warn("changelog: " + name + ": cannot read its latest position (" +
               latest.status().message() + "); resuming from the local state");
    return false;
  }
  // Restore when the changelog is further than the local state, or when its latest state was
  // written by another instance (it may have read again input whose output this store still
  // holds unpublished: both must not be published).
  const uint64_t remote = latest->has_value() ? (*latest)->next_offset() : 0;
  const uint64_t writer = latest->has_value() ? (*latest)->writer_id() : 0;
  const bool foreign = writer != 0 && writer != store_id_;
  if (!*incomplete && !foreign && remote <= local->next_offset()) return false;
  log_->Info("changelog: " + name + ": local state at input offset " +
             std::to_string(local->next_offset()) + ", changelog at " + std::to_string(remote) +
             (foreign ? " written by another instance" : "") +
             (*incomplete ? " (an earlier restore did not finish)" : "") + ": restoring");
  {
    std::lock_guard<std::mutex> lock(storage_mu_);
    restore_why_ = "restoring " + name + " from the changelog";
  }
  restoring_.store(true);
  ChangelogRestoreOptions options;
  options.source_name = source;
  options.partition = partition;
  options.timeout_ms = kRestoreTimeoutMs;
  options.use_standby_copy = standby_ != nullptr;
  options.progress = [&](uint64_t read, uint64_t total) {
    loop_alive_ms_.store(WallClockMillis());  // busy, not stalled (/healthz)
    metrics_->SetRestoreProgress(static_cast<int32_t>(partition), read, total, false);
    std::lock_guard<std::mutex> lock(storage_mu_);
    restore_why_ = "restoring " + name + " from the changelog: " + std::to_string(read) +
                   " of " + std::to_string(total) + " records";
  };
  auto stats = RestoreFromChangelog(kafka(), options, store_.get());
  restoring_.store(false);
  if (!stats.ok()) {
    metrics_->SetRestoreProgress(static_cast<int32_t>(partition), 0, 0, true);
    return stats.status();
  }
  metrics_->SetRestoreProgress(static_cast<int32_t>(partition), stats->records, stats->records,
                               true);
  ++restored_partitions_;
  restored_records_ += stats->records;
  unpublished_lists_[partition] = std::move(stats->unpublished_lists);
  restored_from_standby_ += stats->standby_records;
  log_->Info("changelog: " + name + " restored: " + std::to_string(stats->states) +
             " customer states, " + std::to_string(stats->lists) +
             " lists, " + std::to_string(stats->standby_records) + " records from the standby copy and " +
             std::to_string(stats->records) + " records in " +
             std::to_string(stats->seconds) + " s; resuming at input offset " +
             std::to_string(stats->position.next_offset()));
  return true;
}

Status ServiceImpl::RepublishRestored(uint32_t partition) {
  std::vector<std::string> lists;
  auto it = unpublished_lists_.find(partition);
  if (it != unpublished_lists_.end()) {
    lists = std::move(it->second);
    unpublished_lists_.erase(it);
  }
  // The item statistics go again whole. Each record carries the partition's cumulative
  // statistics of one item and the topic keeps the latest, so a batch whose changelog records
  // reached the changelog and whose item-stats records did not (its writer was killed between
  // them, or ran without kafka.item_stats_topic) would leave the topic behind for every item no
  // later batch touches: every other instance would count those purchases never. There is no
  // progress mark for them to go by (they wait for nothing), and a partition's items are few
  // next to its customers.
  std::vector<std::pair<std::string, std::string>> items;  // (item id, encoded ItemStats)
  if (!kafka().item_stats_topic.empty()) {
    const std::string prefix = PartitionPrefix(partition);
    STREAMREC_RETURN_IF_ERROR(
        store_->Scan(Column::kItems, prefix, [&](std::string_view key, std::string_view value) {
          items.emplace_back(std::string(key.substr(prefix.size())), std::string(value));
          return true;
        }));
  }
  if (lists.empty() && items.empty()) return Status::OK();
  const std::string& source = pipeline_->options().source_name;
  auto position = LoadPosition(store_.get(), source, partition);
  if (!position.ok()) return position.status();
  uint64_t sequence = position->outbox_seq();
  WriteSet writes;
  for (const std::string& encoded : lists) {
    v1::OutboxRecord record;
    record.set_topic_kind("recommendations");
    Status s = DecodeState(encoded, record.mutable_list());
    if (!s.ok()) {
      return Status::Corruption("changelog partition " + std::to_string(partition) +
                                ": a list after the progress mark does not decode: " +
                                s.message());
    }
    record.set_key(record.list().customer_id());
    writes.Put(Column::kOutbox, OutboxKey(partition, sequence++), EncodeState(record));
  }
  for (auto& [item_id, encoded] : items) {
    writes.Put(Column::kOutbox, OutboxKey(partition, sequence++),
               EncodeState(SharedItemStatsRecord(std::move(item_id), std::move(encoded))));
  }
  position->set_outbox_seq(sequence);
  writes.Put(Column::kPositions, PositionKey(source, partition), EncodeState(*position));
  STREAMREC_RETURN_IF_ERROR(store_->Write(writes));
  republished_lists_ += lists.size();
  republished_item_stats_ += items.size();
  outbox_written_ += lists.size() + items.size();
  if (!lists.empty()) {
    log_->Info("changelog: partition " + std::to_string(partition) + ": " +
               std::to_string(lists.size()) + " restored lists after the progress mark (their "
               "writer may have died before publishing them) go to the output topic again");
  }
  if (!items.empty()) {
    log_->Info("changelog: partition " + std::to_string(partition) + ": the restored statistics "
               "of " + std::to_string(items.size()) + " items go to '" +
               kafka().item_stats_topic + "' again");
  }
  return Status::OK();
}

bool ServiceImpl::Ready(std::string* why) {
  if (!assignment_received_.load()) {
    *why = "waiting for the consumer group assignment";
    return false;
  }
  if (restoring_.load()) {
    std::lock_guard<std::mutex> lock(storage_mu_);
    *why = restore_why_;
    return false;
  }
  std::string h;
  if (!Healthy(&h)) {
    *why = h;
    return false;
  }
  if (!storage_writable_.load()) {
    std::lock_guard<std::mutex> lock(storage_mu_);
    *why = storage_why_;
    return false;
  }
  if (segmenter_->model_version() == 0 && kmeans_ != nullptr) {
    *why = "no segment model fitted yet: customers are 'Unscored' until enough are seen";
  }
  return true;
}

}  // namespace

StatusOr<std::unique_ptr<Service>> Service::Create(ServiceOptions options) {
  auto service = std::make_unique<ServiceImpl>(std::move(options));
  STREAMREC_RETURN_IF_ERROR(service->Init());
  return std::unique_ptr<Service>(std::move(service));
}

}  // namespace streamrec
