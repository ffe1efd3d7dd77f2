// The Kafka service: consumer group -> Pipeline -> outbox -> idempotent producer.
#include "streamrec/service.h"

#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <map>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "kafka/kafka_conf.h"
#include "kafka/outbox_publisher.h"
#include "streamrec/blended_recommender.h"
#include "streamrec/catalog.h"
#include "streamrec/decoder.h"
#include "streamrec/pipeline.h"
#include "streamrec/state_store.h"

namespace streamrec {

namespace {

constexpr int kMaxPollWaitMs = 100;
constexpr int kCloseFlushTimeoutMs = 30000;

class ServiceImpl : public Service, public RdKafka::RebalanceCb, public RdKafka::EventCb {
 public:
  explicit ServiceImpl(ServiceOptions options) : options_(std::move(options)) {}

  ~ServiceImpl() override {
    // After SimulateCrash the consumer is destroyed without close() (librdkafka's C++
    // destructor does not close): no commit, no LeaveGroup, as if the process died.
    consumer_.reset();
    producer_.reset();
  }

  Status Init();
  Status Run(const std::atomic<bool>& stop) override;
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
  // RdKafka::EventCb — errors and logs from librdkafka.
  void event_cb(RdKafka::Event& event) override;

 private:
  struct PartitionBatch {
    std::vector<std::unique_ptr<RdKafka::Message>> messages;
  };

  Status ProcessPending(const std::vector<int32_t>* only = nullptr);
  Status ProcessPartition(int32_t partition, PartitionBatch* batch);
  void Commit(const std::vector<int32_t>& partitions, bool sync);
  void Backpressure();
  void UpdateStats();

  ServiceOptions options_;
  const KafkaConfig& kafka() const { return options_.config.kafka; }
  std::shared_ptr<Logger> log_;

  std::unique_ptr<StateStore> store_;
  Catalog catalog_;
  std::unique_ptr<Decoder> decoder_;
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
  bool paused_ = false;
  Status fatal_;
  std::atomic<bool> crash_{false};

  mutable std::mutex stats_mu_;
  std::condition_variable stats_cv_;
  ServiceStats stats_;
  uint64_t records_ = 0, events_ = 0, invalid_ = 0, batches_ = 0, lists_ = 0;
  uint64_t consumer_errors_ = 0, rebalances_ = 0, pauses_ = 0, outbox_written_ = 0;
  std::map<int32_t, uint64_t> applied_;  // partition -> records applied (stored position)
  std::map<std::string, uint64_t> invalid_by_reason_;
  int64_t watermark_ms_ = 0;
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
  // Re-fits in the background, like the segmenter's: the poll loop never waits for a fit.
  AlsRefitOptions refit;
  refit.background = true;
  refit.logger = log_;
  auto recommender = NewBlendedRecommender(config.recommend, &catalog_, std::move(refit));
  if (!recommender.ok()) return recommender.status();
  recommender_ = std::move(recommender).value();
  PipelineOptions pipeline_options;
  pipeline_options.source_name = "kafka:" + kafka().input_topic;
  pipeline_options.features = config.features;
  pipeline_options.recommend = config.recommend;
  pipeline_options.dead_letters = true;
  pipeline_ = std::make_unique<Pipeline>(pipeline_options, store_.get(), &catalog_,
                                         segmenter_.get(), recommender_.get());
  STREAMREC_RETURN_IF_ERROR(pipeline_->Open());

  publisher_ = std::make_unique<OutboxPublisher>(store_.get(), kafka(), log_);
  publisher_->set_on_delivered(options_.on_delivered);

  // Producer: idempotent; user properties win over ours.
  std::map<std::string, std::string> producer_props = {
      {"bootstrap.servers", kafka().brokers},
      {"client.id", "streamrec"},
      {"enable.idempotence", "true"},
      {"linger.ms", "5"},
      {"compression.type", "lz4"},
  };
  for (const auto& [k, v] : kafka().producer) producer_props[k] = v;
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
      {"queued.min.messages", "1000000"},
      {"enable.partition.eof", "false"},
  };
  for (const auto& [k, v] : kafka().consumer) consumer_props[k] = v;
  auto cconf = MakeKafkaConf(consumer_props, "consumer");
  if (!cconf.ok()) return cconf.status();
  (*cconf)->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), error);
  (*cconf)->set("event_cb", static_cast<RdKafka::EventCb*>(this), error);
  consumer_.reset(RdKafka::KafkaConsumer::create(cconf->get(), error));
  if (!consumer_) return Status::InvalidArgument("cannot create Kafka consumer: " + error);

  log_->Info("kafka consumer: " + RedactedProperties(consumer_props));
  log_->Info("kafka producer: " + RedactedProperties(producer_props));
  return publisher_->Recover();
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
    log_->Info(std::string(cooperative ? "cooperative" : "eager") + " assignment: +[" + list +
               "], resuming from stored positions");
  } else {
    // Revoked: finish the in-flight batch of these partitions, commit, then let them go.
    Status s = ProcessPending(&ids);
    if (!s.ok()) fatal_ = s;
    Commit(ids, /*sync=*/true);
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
    for (int32_t p : ids) committed_next_.erase(p);
    log_->Info(std::string(cooperative ? "cooperative" : "eager") + " revocation: -[" + list +
               "] after finishing their batch" + (err == RdKafka::ERR__REVOKE_PARTITIONS ? "" : " (" + RdKafka::err2str(err) + ")"));
  }
  UpdateStats();
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
    records.push_back(r);
  }
  ++batches_;
  if (options_.fault_hook) options_.fault_hook("batch", batches_);
  BatchResult result;
  STREAMREC_RETURN_IF_ERROR(
      pipeline_->ProcessBatch(static_cast<uint32_t>(partition), records, decoder_.get(), &result));
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
  publisher_->Notify(static_cast<uint32_t>(partition));
  for (uint32_t other : result.other_outbox_partitions) publisher_->Notify(other);
  batch->messages.clear();
  return Status::OK();
}

Status ServiceImpl::ProcessPending(const std::vector<int32_t>* only) {
  for (auto& [partition, batch] : pending_) {
    if (only != nullptr && std::find(only->begin(), only->end(), partition) == only->end()) continue;
    pending_count_ -= batch.messages.size();
    STREAMREC_RETURN_IF_ERROR(ProcessPartition(partition, &batch));
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
  if (!paused_ && in_flight >= limit) {
    std::vector<RdKafka::TopicPartition*> parts;
    consumer_->assignment(parts);
    consumer_->pause(parts);
    RdKafka::TopicPartition::destroy(parts);
    paused_ = true;
    ++pauses_;
    log_->Warn("backpressure: " + std::to_string(in_flight) +
               " output records unacknowledged; partitions paused");
  } else if (paused_ && in_flight <= limit / 2) {
    std::vector<RdKafka::TopicPartition*> parts;
    consumer_->assignment(parts);
    consumer_->resume(parts);
    RdKafka::TopicPartition::destroy(parts);
    paused_ = false;
    log_->Info("backpressure cleared; partitions resumed");
  }
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
  stats_.delivery_errors = publisher_->delivery_errors();
  stats_.in_flight = publisher_->in_flight();
  stats_.consumer_errors = consumer_errors_;
  stats_.rebalances = rebalances_;
  stats_.pauses = pauses_;
  stats_.assigned = assigned_;
  std::sort(stats_.assigned.begin(), stats_.assigned.end());
  stats_.watermark_ms = watermark_ms_;
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
  while (!stop.load() && !crash_.load()) {
    int64_t now = options_.clock->NowMicros();
    int wait_ms = kMaxPollWaitMs;
    if (pending_count_ > 0) {
      wait_ms = static_cast<int>(std::clamp<int64_t>((batch_deadline_us_ - now) / 1000, 0, kMaxPollWaitMs));
    }
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(wait_ms));
    if (!fatal_.ok()) {
      status = fatal_;
      break;
    }
    switch (msg->err()) {
      case RdKafka::ERR_NO_ERROR: {
        int32_t partition = msg->partition();
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
    if (pending_count_ >= batch_size ||
        (pending_count_ > 0 && options_.clock->NowMicros() >= batch_deadline_us_)) {
      std::vector<int32_t> done;
      for (const auto& [p, b] : pending_) {
        if (!b.messages.empty()) done.push_back(p);
      }
      status = ProcessPending();
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
      UpdateStats();
      last_stats_us = after;
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
    // Clean stop: finish the batch, publish and flush, commit, close.
    status = ProcessPending();
    Status flushed = publisher_->Flush(kCloseFlushTimeoutMs);
    if (!flushed.ok()) log_->Warn("at stop: " + flushed.message());
    producer_->flush(5000);
    std::vector<int32_t> all;
    for (const auto& [p, next] : committed_next_) all.push_back(p);
    Commit(all, /*sync=*/true);
  } else {
    log_->Error("stopping: " + status.ToString());
  }
  consumer_->close();
  Status flushed = store_->Flush();
  if (status.ok()) status = flushed;
  UpdateStats();
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.running = false;
    stats_cv_.notify_all();
  }
  log_->Info("stopped: " + std::to_string(events_) + " events, " + std::to_string(invalid_) +
             " dead letters, " + std::to_string(publisher_->delivered()) + " records delivered");
  return status;
}

}  // namespace

StatusOr<std::unique_ptr<Service>> Service::Create(ServiceOptions options) {
  auto service = std::make_unique<ServiceImpl>(std::move(options));
  STREAMREC_RETURN_IF_ERROR(service->Init());
  return std::unique_ptr<Service>(std::move(service));
}

}  // namespace streamrec
