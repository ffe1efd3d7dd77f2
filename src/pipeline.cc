#include "streamrec/pipeline.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>
#include <unordered_set>

#include "json_writer.h"
#include "streamrec/kmeans_segmenter.h"
#include "streamrec/recommend_index.h"
#include "streamrec/time_util.h"

namespace streamrec {

namespace {

// Wall-clock laps between the stages of a batch.
class StageTimer {
 public:
  StageTimer() : last_(std::chrono::steady_clock::now()) {}
  void Lap(double* into) {
    const auto now = std::chrono::steady_clock::now();
    *into += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  std::chrono::steady_clock::time_point last_;
};

// The "from" of a segment transition: "none" for a customer scored for the first time.
const std::string& TransitionFrom(const std::string& segment) {
  static const std::string kNone = "none";
  return segment.empty() ? kNone : segment;
}

}  // namespace

Pipeline::Pipeline(PipelineOptions options, StateStore* store, const Catalog* catalog,
                   Segmenter* segmenter, Recommender* recommender)
    : options_(std::move(options)),
      store_(store),
      catalog_(catalog),
      segmenter_(segmenter),
      recommender_(recommender) {}

Status Pipeline::Open() {
  segment_version_seen_ = segmenter_->model_version();
  STREAMREC_RETURN_IF_ERROR(LoadItems());
  STREAMREC_RETURN_IF_ERROR(recommender_->LoadModel(store_));
  return RebuildRecommenderIndex();
}

Status Pipeline::RebuildRecommenderIndex() {
  if (!recommender_->ObservesCustomers()) return Status::OK();
  ++index_rebuilds_;
  recommender_->ResetObserved();
  if (!options_.share_cooccurrence) {
    return ScanCustomers(store_, options_.log_ids, [&](std::string_view, CustomerState& state) {
      recommender_->ObserveChange(nullptr, state);
      return true;
    });
  }
  // Shared co-occurrence: the owned partitions' customers, each partition's in a shard too
  // (every row of a rebuilt shard is compared with the topic's again), and the other
  // partitions' rows.
  cooccurrence_shards_.clear();
  handed_out_.clear();
  STREAMREC_RETURN_IF_ERROR(
      ScanCustomers(store_, options_.log_ids, [&](std::string_view key, CustomerState& state) {
        const uint32_t p = PartitionOfKey(key);
        if (!UsesLocalItems(p)) return true;
        recommender_->ObserveChange(nullptr, state);
        CooccurrenceShard(p).ObserveChange(nullptr, state);
        return true;
      }));
  cooccurrence_remote_rows_ = 0;
  for (const auto& [p, rows] : cooccurrence_rows_) {
    if (UsesLocalItems(p)) {
      // A row the topic has that the rebuilt shard may not: compared (a tombstone) next time.
      for (const auto& [item, encoded] : rows) cooccurrence_retry_.emplace(p, item);
      continue;
    }
    for (const auto& [item, encoded] : rows) {
      CooccurrenceRow row;
      STREAMREC_RETURN_IF_ERROR(DecodeCooccurrenceRow(item, encoded, &row));  // checked before
      recommender_->SetRemoteCooccurrence(p, row);
      ++cooccurrence_remote_rows_;
    }
  }
  return Status::OK();
}

RecommendIndex& Pipeline::CooccurrenceShard(uint32_t partition) {
  auto it = cooccurrence_shards_.find(partition);
  if (it == cooccurrence_shards_.end()) {
    RecommendIndexOptions options;
    options.exemplar_share = 0;  // co-occurrence only
    options.track_changes = true;
    it = cooccurrence_shards_.emplace(partition, RecommendIndex(options)).first;
  }
  return it->second;
}

Status Pipeline::ApplyRemoteCooccurrence(uint32_t partition, std::string_view item_id,
                                         const std::string_view* encoded,
                                         const CooccurrenceRow* decoded) {
  CooccurrenceRow own;
  if (decoded == nullptr || encoded == nullptr) {
    own.item_id = std::string(item_id);
    if (encoded != nullptr) {
      Status s = DecodeCooccurrenceRow(item_id, *encoded, &own);
      if (!s.ok()) {
        return Status::Corruption("co-occurrence row of partition " + std::to_string(partition) +
                                  " item '" + std::string(item_id) + "': " + s.message());
      }
    }
    decoded = &own;
  }
  const CooccurrenceRow& row = *decoded;
  // An owned partition's row handed out here is newer than anything the topic sends back (the
  // feed may still be reading an older one of ours).
  if (UsesLocalItems(partition) && handed_out_.count({partition, row.item_id}) > 0) {
    return Status::OK();
  }
  auto& rows = cooccurrence_rows_[partition];
  auto it = rows.find(row.item_id);
  const bool had = it != rows.end();
  if (encoded != nullptr) {
    if (had) {
      it->second = std::string(*encoded);
    } else {
      rows.emplace(row.item_id, std::string(*encoded));
    }
  } else if (had) {
    rows.erase(it);
  }
  if (UsesLocalItems(partition) || !recommender_->ObservesCustomers()) return Status::OK();
  recommender_->SetRemoteCooccurrence(partition, row);  // (no buyers: removes it)
  if (had && encoded == nullptr) --cooccurrence_remote_rows_;
  if (!had && encoded != nullptr) ++cooccurrence_remote_rows_;
  return Status::OK();
}

std::vector<Pipeline::CooccurrenceUpdate> Pipeline::TakeCooccurrenceRows() {
  std::vector<CooccurrenceUpdate> updates;
  // A stale index has stale shards. A rebuild that fails now fails the next batch too; its
  // rows go out with the first call after a rebuild that succeeds.
  if (!EnsureRecommenderIndex().ok()) return updates;
  // A row that failed goes again whatever the topic seemed to have (a failed tombstone too).
  auto compare = [&](uint32_t p, const std::string& item_id,
                     std::optional<std::string> encoded) {
    auto& rows = cooccurrence_rows_[p];
    auto it = rows.find(item_id);
    const bool failed = cooccurrence_failed_.erase({p, item_id}) > 0;
    if (encoded.has_value()) {
      if (!failed && it != rows.end() && it->second == *encoded) return;
      rows[item_id] = *encoded;
    } else {
      if (!failed && it == rows.end()) return;
      if (it != rows.end()) rows.erase(it);
    }
    handed_out_.emplace(p, item_id);
    updates.push_back(CooccurrenceUpdate{p, item_id, std::move(encoded)});
  };
  std::set<std::pair<uint32_t, std::string>> seen;
  for (auto& [p, shard] : cooccurrence_shards_) {
    if (!UsesLocalItems(p)) continue;  // (rebuilt away at the next rebuild)
    for (uint32_t item : shard.TakeChangedItems()) {
      CooccurrenceRow row = shard.Row(item, options_.cooccurrence_neighbours);
      seen.emplace(p, row.item_id);
      compare(p, row.item_id,
              row.buyers > 0 ? std::optional<std::string>(EncodeCooccurrenceRow(row))
                             : std::nullopt);
    }
  }
  for (const auto& [p, item_id] : cooccurrence_retry_) {
    if (seen.count({p, item_id}) > 0 || !UsesLocalItems(p)) continue;
    auto shard = cooccurrence_shards_.find(p);
    const uint32_t item = shard != cooccurrence_shards_.end() ? shard->second.Find(item_id) : kNoItem;
    if (item == kNoItem) {
      compare(p, item_id, std::nullopt);
    } else {
      compare(p, item_id,
              EncodeCooccurrenceRow(shard->second.Row(item, options_.cooccurrence_neighbours)));
    }
  }
  cooccurrence_retry_.clear();
  cooccurrence_failed_.clear();  // (those of partitions gone: their next owner's to publish)
  return updates;
}

void Pipeline::CooccurrenceRowNotPublished(uint32_t partition, const std::string& item_id) {
  cooccurrence_failed_.emplace(partition, item_id);
  cooccurrence_retry_.emplace(partition, item_id);
}

Status Pipeline::LoadItems() {
  local_items_.clear();
  Status decode_status;
  STREAMREC_RETURN_IF_ERROR(
      store_->Scan(Column::kItems, "", [&](std::string_view key, std::string_view value) {
        ItemStats stats;
        decode_status = DecodeState(value, &stats);
        if (!decode_status.ok()) {
          decode_status = Status::Corruption(
              "item statistics of partition " + std::to_string(PartitionOfKey(key)) + " item '" +
              std::string(key.substr(std::min<size_t>(4, key.size()))) +
              "': " + decode_status.message());
          return false;
        }
        local_items_[PartitionOfKey(key)].emplace(stats.item_id(), std::move(stats));
        return true;
      }));
  if (!decode_status.ok()) return decode_status;
  MergeAllItems();
  return Status::OK();
}

void Pipeline::MergeItem(const std::string& item_id) {
  // The contributions in partition order, so that every instance sums them alike.
  std::vector<std::pair<uint32_t, const ItemStats*>> parts;
  for (const PartitionItems* source : {&local_items_, &remote_items_}) {
    const bool local = source == &local_items_;
    for (const auto& [p, items] : *source) {
      if (UsesLocalItems(p) != local) continue;
      auto it = items.find(item_id);
      if (it != items.end()) parts.emplace_back(p, &it->second);
    }
  }
  std::sort(parts.begin(), parts.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  ItemStats total;
  for (const auto& part : parts) MergeItemStats(options_.features, *part.second, &total);
  auto it = items_.find(item_id);
  if (it != items_.end()) {
    item_purchases_ -= it->second.count();
    item_buyers_ -= it->second.customers();
  }
  if (total.count() == 0) {
    if (it != items_.end()) items_.erase(it);
    return;
  }
  item_purchases_ += total.count();
  item_buyers_ += total.customers();
  total.set_item_id(item_id);
  if (it != items_.end()) {
    it->second = std::move(total);
  } else {
    items_.emplace(item_id, std::move(total));
  }
}

void Pipeline::MergeAllItems() {
  items_.clear();
  item_purchases_ = item_buyers_ = 0;
  std::unordered_set<std::string> ids;
  for (const PartitionItems* source : {&local_items_, &remote_items_}) {
    for (const auto& [p, items] : *source) {
      for (const auto& [id, stats] : items) ids.insert(id);
    }
  }
  for (const std::string& id : ids) MergeItem(id);
}

const ItemStats* Pipeline::PartitionItemStats(uint32_t partition, std::string_view item_id) const {
  auto p = local_items_.find(partition);
  if (p == local_items_.end()) return nullptr;
  auto it = p->second.find(std::string(item_id));
  return it == p->second.end() ? nullptr : &it->second;
}

Status Pipeline::SetOwnedPartitions(const std::set<uint32_t>& partitions) {
  if (!owned_.has_value() || *owned_ != partitions) {
    owned_ = partitions;
    MergeAllItems();
    if (options_.share_cooccurrence) index_stale_ = true;
  }
  return EnsureRecommenderIndex();
}

Status Pipeline::EnsureRecommenderIndex() {
  if (!index_stale_) return Status::OK();
  STREAMREC_RETURN_IF_ERROR(RebuildRecommenderIndex());
  index_stale_ = false;
  return Status::OK();
}

void Pipeline::ApplyRemoteItemStats(uint32_t partition, const ItemStats& stats) {
  remote_items_[partition][stats.item_id()] = stats;
  if (!UsesLocalItems(partition)) MergeItem(stats.item_id());
}

StatusOr<v1::SourcePosition> Pipeline::Position(uint32_t partition) {
  auto it = positions_.find(partition);
  if (it != positions_.end()) return it->second;
  auto position = LoadPosition(store_, options_.source_name, partition);
  if (!position.ok()) return position.status();
  positions_[partition] = *position;
  return position;
}

Status Pipeline::ProcessBatch(uint32_t partition, const std::vector<SourceRecord>& records,
                              Decoder* decoder, BatchResult* result) {
  *result = BatchResult();
  outbox_.clear();
  STREAMREC_RETURN_IF_ERROR(EnsureRecommenderIndex());
  StageTimer timer;
  auto position_or = Position(partition);
  if (!position_or.ok()) return position_or.status();
  v1::SourcePosition position = std::move(position_or).value();

  // 1. Decode; skip what an earlier run already applied.
  std::vector<PurchaseEvent> events;
  std::vector<int64_t> source_ms;  // per event: when its record reached the source
  std::vector<uint64_t> event_offsets;  // per event: its record's offset
  events.reserve(records.size());
  source_ms.reserve(records.size());
  uint64_t next_offset = position.next_offset();
  PurchaseEvent event;
  std::vector<const SourceRecord*> dead;
  for (const SourceRecord& record : records) {
    if (record.offset < position.next_offset()) continue;
    ++result->records;
    next_offset = record.offset + 1;
    Status s = decoder->Decode(record.payload, &event);
    if (!s.ok()) {
      if (options_.dead_letters) dead.push_back(&record);
      result->invalid.push_back(InvalidRecord{record.offset, std::move(s)});
      continue;
    }
    events.push_back(std::move(event));
    source_ms.push_back(record.timestamp_ms);
    event_offsets.push_back(record.offset);
  }
  if (result->records == 0) {
    result->watermark_ms = position.watermark_ms();
    return Status::OK();
  }
  WriteSet writes;
  uint64_t outbox_seq = position.outbox_seq();
  for (size_t i = 0; i < dead.size(); ++i) {
    const SourceRecord& record = *dead[i];
    const Status& error = result->invalid[i].status;
    v1::OutboxRecord out;
    out.set_topic_kind("dead-letters");
    out.set_key(std::string(record.key));
    v1::DeadLetter* letter = out.mutable_dead_letter();
    letter->set_key(std::string(record.key));
    letter->set_payload(std::string(record.payload));
    letter->set_error(error.message());
    letter->set_reason(InvalidReason(error));
    letter->set_source(options_.source_name);
    letter->set_partition(partition);
    letter->set_offset(record.offset);
    PutOutbox(partition, outbox_seq++, std::move(out), &writes);
  }
  timer.Lap(&result->stages.decode);

  // 2. Group by customer, in order of first appearance (deterministic).
  std::unordered_map<std::string_view, size_t> index;
  std::vector<std::string> keys;
  std::vector<size_t> owner(events.size());
  std::vector<int64_t> customer_source_ms;  // newest source timestamp of each customer's records
  for (size_t i = 0; i < events.size(); ++i) {
    auto [it, inserted] = index.emplace(events[i].customer_id, keys.size());
    if (inserted) {
      keys.push_back(PartitionKey(partition, events[i].customer_id));
      customer_source_ms.push_back(0);
    }
    owner[i] = it->second;
    customer_source_ms[it->second] = std::max(customer_source_ms[it->second], source_ms[i]);
  }

  // 3. Load the batch's customers: from the state cache (taken out: put back once the batch is
  // written, so a failed batch leaves no trace there), the others in one MultiGet.
  std::vector<CustomerState> states(keys.size());
  std::vector<bool> found(keys.size(), false);
  std::vector<std::string> miss_keys;
  std::vector<size_t> miss_index;
  for (size_t c = 0; c < keys.size(); ++c) {
    auto it = cache_.find(keys[c]);
    if (it == cache_.end()) {
      miss_keys.push_back(keys[c]);
      miss_index.push_back(c);
      continue;
    }
    states[c] = std::move(it->second.state);
    found[c] = true;
    lru_.erase(it->second.lru);
    cache_.erase(it);
  }
  result->cache_hits = keys.size() - miss_keys.size();
  result->cache_misses = miss_keys.size();
  if (!miss_keys.empty()) {
    std::vector<std::string> values;
    std::vector<bool> miss_found;
    STREAMREC_RETURN_IF_ERROR(
        store_->MultiGet(Column::kCustomers, miss_keys, &values, &miss_found));
    for (size_t m = 0; m < miss_keys.size(); ++m) {
      const size_t c = miss_index[m];
      if (!miss_found[m]) {
        ++result->new_customers;
        continue;
      }
      found[c] = true;
      Status s = DecodeState(values[m], &states[c]);
      if (!s.ok()) {
        return Status::Corruption("customer " + options_.log_ids.Name(CustomerIdOfKey(keys[c])) + ": " +
                                  s.message());
      }
    }
  }
  for (size_t i = 0; i < events.size(); ++i) {
    CustomerState& state = states[owner[i]];
    if (state.customer_id().empty()) state = NewCustomerState(events[i].customer_id);
  }

  // From here on the batch changes memory (item statistics, the segment and recommender models,
  // the recommender's index). When it fails before its write is stored, all of that is reloaded
  // from the store: nothing of a failed batch stays, in the store or in memory, and the same
  // records can be applied again.
  auto forget = [&](const Status& error) -> Status {
    positions_.erase(partition);
    Status reload = LoadItems();
    if (reload.ok()) reload = segmenter_->Reload();
    if (reload.ok()) reload = recommender_->LoadModel(store_);
    if (reload.ok()) reload = RebuildRecommenderIndex();
    if (!reload.ok()) {
      return Status::IOError(error.message() + "; reloading the stored state: " + reload.message());
    }
    return error;
  };

  // 4. Features and item statistics, event by event in arrival order.
  const bool observe = recommender_->ObservesCustomers();
  std::vector<CustomerState> before;
  if (observe) before = states;
  std::vector<int32_t> old_cluster(states.size());
  std::vector<std::string> old_segment(states.size());
  for (size_t c = 0; c < states.size(); ++c) {
    old_cluster[c] = states[c].cluster();
    old_segment[c] = states[c].segment();
  }
  // The partition's own item statistics (item_stats() sums them with the other partitions').
  std::unordered_map<std::string, ItemStats>& partition_items = local_items_[partition];
  std::vector<ItemStats*> dirty_items;
  std::unordered_set<const ItemStats*> dirty_seen;
  int64_t watermark = position.watermark_ms();
  const int64_t window_ms =
      static_cast<int64_t>(options_.attribution_window_days * 86400000.0);
  std::vector<Attribution> attribution(states.size());  // per customer, summed by key below
  for (size_t i = 0; i < events.size(); ++i) {
    const PurchaseEvent& e = events[i];
    CustomerState& state = states[owner[i]];
    // After a restore from the changelog a customer's state may already reflect records past
    // the partition's restored position: those are not applied twice.
    if (event_offsets[i] < position.restored_through() &&
        event_offsets[i] < state.source_next_offset()) {
      ++result->skipped_restored;
      continue;
    }
    state.set_source_next_offset(next_offset);
    if (state.list_version() > 0) {
      // Attribution against the list the customer had before this batch.
      Attribution& a = attribution[owner[i]];
      ++a.purchases;
      if (e.event_time_ms - state.list_as_of_ms() <= window_ms &&
          std::find(state.list_item_ids().begin(), state.list_item_ids().end(), e.item_id) !=
              state.list_item_ids().end()) {
        ++a.conversions;
      }
    }
    const CatalogItem* item = catalog_ != nullptr ? catalog_->Find(e.item_id) : nullptr;
    bool new_buyer = FindItem(state, e.item_id) == nullptr;
    ApplyEvent(options_.features, e, item, &state);
    auto [it, inserted] = partition_items.try_emplace(e.item_id);
    if (inserted) it->second.set_item_id(e.item_id);
    if (dirty_seen.insert(&it->second).second) dirty_items.push_back(&it->second);
    ApplyItemEvent(options_.features, e, new_buyer, &it->second);
    watermark = std::max(watermark, e.event_time_ms);
  }
  for (const ItemStats* stats : dirty_items) MergeItem(stats->item_id());
  // By the group and the segment the customer was in at the purchase (segments are assigned
  // below).
  for (size_t c = 0; c < states.size(); ++c) {
    if (attribution[c].purchases == 0) continue;
    const char* group = InControlGroup(states[c].customer_id(), options_.recommend.control_share)
                            ? "control"
                            : "treatment";
    Attribution& a = result->attribution[{group, states[c].segment()}];
    a.purchases += attribution[c].purchases;
    a.conversions += attribution[c].conversions;
  }
  timer.Lap(&result->stages.state);

  // 5. Segments.
  std::vector<CustomerState*> changed;
  changed.reserve(states.size());
  for (auto& state : states) changed.push_back(&state);
  segmenter_->AssignBatch(changed, watermark);
  // The segmenter's own writes: its model, and stored customers a re-fit relabelled.
  WriteSet all;
  segmenter_->AppendWrites(&all);
  std::vector<SegmentRelabel> relabels;
  segmenter_->TakeRelabels(&relabels);

  // 6. The recommender's index follows every changed customer, then the lists.
  std::unordered_set<std::string_view> in_batch(keys.begin(), keys.end());
  if (observe) {
    for (const WriteSet::Op& op : all.ops()) {
      if (op.column != Column::kCustomers || op.is_delete || in_batch.count(op.key) > 0) continue;
      CustomerState relabelled;
      Status decoded = DecodeState(op.value, &relabelled);
      if (!decoded.ok()) return forget(decoded);
      recommender_->ObserveRelabel(relabelled);
    }
    for (size_t c = 0; c < states.size(); ++c) {
      recommender_->ObserveChange(found[c] ? &before[c] : nullptr, states[c]);
      // (A partition not owned here has no shard: its rows are its owner's to publish.)
      if (options_.share_cooccurrence && UsesLocalItems(PartitionOfKey(keys[c]))) {
        CooccurrenceShard(PartitionOfKey(keys[c])).ObserveChange(found[c] ? &before[c] : nullptr,
                                                                 states[c]);
      }
    }
  }

  // 6b. Models fitted on every customer (ALS) follow segmenter re-fits and, optionally, every N
  // events: fitted here, or on a background thread and installed by a later batch. Either way
  // the model commits with the batch that installs it, so a restart resumes with the same model.
  const uint64_t every = static_cast<uint64_t>(options_.recommend.als_refit_every_events);
  const uint64_t events_before = position.events();
  // The segment model may also have changed between batches (a background re-fit installed, or
  // a version adopted, while the stream was quiet): compared with the last batch's, not with the
  // version before AssignBatch.
  const bool refit_due =
      segmenter_->model_version() != segment_version_seen_ ||
      (every > 0 && (events_before + events.size()) / every != events_before / every);
  segment_version_seen_ = segmenter_->model_version();
  Status updated = recommender_->UpdateModel(store_, states, refit_due, &writes);
  if (!updated.ok()) return forget(updated);
  timer.Lap(&result->stages.model);

  // 7. Lists, and one atomic write.
  recommender_->BeginBatch(items_, watermark);
  std::vector<const CustomerState*> listed(states.size());
  for (size_t c = 0; c < states.size(); ++c) listed[c] = &states[c];
  recommender_->RecommendMany(listed, &lists_);
  for (size_t c = 0; c < states.size(); ++c) {
    CustomerState& state = states[c];
    if (state.cluster() != old_cluster[c] || state.segment() != old_segment[c]) {
      ++result->segment_changes;
      ++result->transitions[{TransitionFrom(old_segment[c]), state.segment()}];
      v1::OutboxRecord record;
      record.set_topic_kind("segment-changes");
      record.set_key(state.customer_id());
      v1::SegmentChange* change = record.mutable_segment_change();
      change->set_customer_id(state.customer_id());
      change->set_from_cluster(old_cluster[c]);
      change->set_from_segment(old_segment[c]);
      change->set_to_cluster(state.cluster());
      change->set_to_segment(state.segment());
      change->set_model_version(state.model_version());
      change->set_event_time_ms(state.last_time_ms());
      PutOutbox(partition, outbox_seq++, std::move(record), &writes);
    }
    if (PublishList(partition, watermark, customer_source_ms[c], lists_[c], &state, &writes,
                    &outbox_seq)) {
      ++result->lists_published;
    } else {
      ++result->lists_unchanged;
    }
    std::string encoded = EncodeState(state);
    if (options_.sample_share > 0 &&
        UniformHash(state.customer_id(), kSegmentFitSampleSalt) < options_.sample_share) {
      v1::OutboxRecord record;
      record.set_topic_kind("fit-sample");
      record.set_key(state.customer_id());
      record.set_fit_sample(encoded);
      PutOutbox(partition, outbox_seq++, std::move(record), &writes);
    }
    writes.Put(Column::kCustomers, keys[c], std::move(encoded));
  }
  // Quiet customers' stale lists (skip the batch's own and those the segmenter rewrites).
  std::unordered_set<std::string_view>& skip = in_batch;
  for (const WriteSet::Op& op : all.ops()) {
    if (op.column == Column::kCustomers) skip.insert(op.key);
  }
  Status refreshed =
      RefreshStaleLists(partition, watermark, skip, &position, &writes, &outbox_seq, result);
  if (!refreshed.ok()) return forget(refreshed);
  // Encoded once: stored, and (below) in the changelog and the item-stats records.
  std::vector<std::string> encoded_items;
  encoded_items.reserve(dirty_items.size());
  for (const ItemStats* stats : dirty_items) {
    encoded_items.push_back(EncodeState(*stats));
    writes.Put(Column::kItems, PartitionKey(partition, stats->item_id()), encoded_items.back());
  }

  // A SegmentChange for each stored customer the segmenter relabelled (a re-fit's reassignment,
  // the rescore sweep), in the outbox of the customer's own partition so that one customer's
  // changes are published in order.
  std::map<uint32_t, v1::SourcePosition> other_positions;
  // The next outbox sequence of partition p.
  auto next_sequence = [&](uint32_t p) -> StatusOr<uint64_t> {
    if (p == partition) return outbox_seq++;
    auto it = other_positions.find(p);
    if (it == other_positions.end()) {
      auto other = Position(p);
      if (!other.ok()) return other.status();
      it = other_positions.emplace(p, std::move(other).value()).first;
    }
    const uint64_t seq = it->second.outbox_seq();
    it->second.set_outbox_seq(seq + 1);
    return seq;
  };
  for (const SegmentRelabel& relabel : relabels) {
    const uint32_t p = PartitionOfKey(relabel.key);
    auto seq = next_sequence(p);
    if (!seq.ok()) return forget(seq.status());
    v1::OutboxRecord record;
    record.set_topic_kind("segment-changes");
    record.set_key(relabel.change.customer_id());
    *record.mutable_segment_change() = relabel.change;
    PutOutbox(p, *seq, std::move(record), &writes);
    ++result->segment_changes;
    ++result->transitions[{TransitionFrom(relabel.change.from_segment()),
                           relabel.change.to_segment()}];
  }
  // The changelog: every customer state and list written (the segmenter's, then the batch's own:
  // the later put of a key wins), each in its own partition's outbox.
  if (options_.changelog) {
    // The records are made before any is queued: queueing adds to `writes`, which would move
    // the values they are copied from.
    std::unordered_map<std::string_view, size_t> index[2];  // states, lists
    std::vector<v1::OutboxRecord> changelog;
    std::vector<uint32_t> partitions;  // each record's partition
    for (const WriteSet* set : {&all, &writes}) {
      for (const WriteSet::Op& op : set->ops()) {
        const bool list = op.column == Column::kLists;
        if ((op.column != Column::kCustomers && !list) || op.is_delete) continue;
        // A customer's state and list share the store key: lists are indexed apart.
        auto [it, inserted] = index[list].try_emplace(op.key, changelog.size());
        if (inserted) {
          changelog.emplace_back();
          changelog.back().set_topic_kind("changelog");
          const std::string_view id = std::string_view(op.key).substr(std::min<size_t>(4, op.key.size()));
          changelog.back().set_key(list ? kChangelogListPrefix + std::string(id) : std::string(id));
          partitions.push_back(PartitionOfKey(op.key));
        }
        if (list) {
          changelog[it->second].set_changelog_list(op.value);
        } else {
          changelog[it->second].set_changelog_state(op.value);
        }
      }
    }
    index[0].clear();
    index[1].clear();
    for (size_t c = 0; c < changelog.size(); ++c) {
      auto seq = next_sequence(partitions[c]);
      if (!seq.ok()) return forget(seq.status());
      PutOutbox(partitions[c], *seq, std::move(changelog[c]), &writes);
    }
  }
  // The partition's item statistics the batch changed: to the changelog (restored with the
  // partition) and to the other instances.
  for (size_t i = 0; i < dirty_items.size(); ++i) {
    if (!options_.changelog && !options_.share_item_stats) break;
    const ItemStats* stats = dirty_items[i];
    const std::string& encoded = encoded_items[i];
    if (options_.changelog) {
      v1::OutboxRecord record;
      record.set_topic_kind("changelog");
      record.set_key(kChangelogItemPrefix + stats->item_id());
      record.set_changelog_item(encoded);
      PutOutbox(partition, outbox_seq++, std::move(record), &writes);
    }
    if (options_.share_item_stats) {
      PutOutbox(partition, outbox_seq++, SharedItemStatsRecord(stats->item_id(), encoded), &writes);
    }
  }
  for (const auto& [p, other] : other_positions) {
    writes.Put(Column::kPositions, PositionKey(options_.source_name, p), EncodeState(other));
  }

  position.set_next_offset(next_offset);
  position.set_events(position.events() + events.size());
  position.set_invalid(position.invalid() + result->invalid.size());
  position.set_lists_published(position.lists_published() + result->lists_published);
  position.set_outbox_seq(outbox_seq);
  position.set_watermark_ms(watermark);
  position.set_customers(position.customers() + result->new_customers);
  position.set_writer_id(options_.writer_id);
  if (options_.changelog) {
    // After the batch's states: a restore that reads this position has every state before it.
    const uint64_t seq = outbox_seq++;
    position.set_outbox_seq(outbox_seq);
    v1::OutboxRecord record;
    record.set_topic_kind("changelog");
    record.set_key(kChangelogPositionKey);
    *record.mutable_changelog_position() = position;
    PutOutbox(partition, seq, std::move(record), &writes);
  }
  writes.Put(Column::kPositions, PositionKey(options_.source_name, partition),
             EncodeState(position));
  WriteOutbox(&writes);
  // The segmenter's own writes (model versions, stored customers it re-scored) go first: a
  // customer of this batch is written again by the batch with its fresh state, and in a write
  // set the later put of a key wins.
  all.Append(std::move(writes));
  timer.Lap(&result->stages.recommend);

  Status s = store_->Write(all);
  timer.Lap(&result->stages.commit);
  if (!s.ok()) {
    for (const auto& [p, other] : other_positions) positions_.erase(p);
    return forget(s);
  }
  positions_[partition] = position;
  // The cache follows the write: the batch's customers go in; a cached customer someone else
  // wrote (relabelled by the segmenter, refreshed by the sweep) takes the written state, or
  // goes when it does not decode. (The batch's own customers were taken out when loaded, so
  // none of them is found here.)
  if (options_.state_cache_customers > 0) {
    for (const WriteSet::Op& op : all.ops()) {
      if (op.column != Column::kCustomers) continue;
      auto it = cache_.find(op.key);
      if (it == cache_.end()) continue;
      if (op.is_delete || !DecodeState(op.value, &it->second.state).ok()) {
        lru_.erase(it->second.lru);
        cache_.erase(it);
      }
    }
    for (size_t c = 0; c < states.size(); ++c) CachePut(keys[c], std::move(states[c]));
  }
  for (auto& [p, other] : other_positions) {
    positions_[p] = std::move(other);
    result->other_outbox_partitions.push_back(p);
  }
  result->outbox = std::move(outbox_);
  result->events = events.size() - result->skipped_restored;
  result->customers_changed = states.size();
  result->watermark_ms = watermark;
  return Status::OK();
}

Status Pipeline::PartitionsReplaced(const std::vector<uint32_t>& partitions) {
  if (partitions.empty()) return Status::OK();
  for (uint32_t p : partitions) ForgetPosition(p);
  STREAMREC_RETURN_IF_ERROR(LoadItems());
  index_stale_ = true;
  return Status::OK();
}

void Pipeline::ForgetPosition(uint32_t partition) {
  positions_.erase(partition);
  const std::string prefix = PartitionPrefix(partition);
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->compare(0, prefix.size(), prefix) == 0) {
      cache_.erase(*it);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

void Pipeline::CachePut(const std::string& key, CustomerState state) {
  lru_.push_front(key);
  cache_[key] = CachedState{std::move(state), lru_.begin()};
  while (cache_.size() > options_.state_cache_customers) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
}

void Pipeline::PutOutbox(uint32_t partition, uint64_t sequence, v1::OutboxRecord record,
                         WriteSet* writes) {
  (void)writes;  // WriteOutbox, once the batch's records are all queued
  outbox_.push_back(OutboxEntry{partition, sequence, std::move(record)});
}

void Pipeline::WriteOutbox(WriteSet* writes) {
  // Each partition's records, changelog first (a stable sort keeps the order within each
  // kind), take that partition's sequences in ascending order.
  std::map<uint32_t, std::vector<uint64_t>> sequences;
  for (const OutboxEntry& e : outbox_) sequences[e.partition].push_back(e.sequence);
  for (auto& [p, seqs] : sequences) std::sort(seqs.begin(), seqs.end());
  std::stable_sort(outbox_.begin(), outbox_.end(), [](const OutboxEntry& a, const OutboxEntry& b) {
    if (a.partition != b.partition) return a.partition < b.partition;
    return IsChangelogRecord(a.record) && !IsChangelogRecord(b.record);
  });
  std::map<uint32_t, size_t> next;
  for (OutboxEntry& e : outbox_) {
    e.sequence = sequences[e.partition][next[e.partition]++];
    writes->Put(Column::kOutbox, OutboxKey(e.partition, e.sequence), EncodeState(e.record));
  }
}

bool Pipeline::PublishList(uint32_t partition, int64_t watermark, int64_t source_time_ms,
                           const std::vector<Recommendation>& list, CustomerState* state,
                           WriteSet* writes, uint64_t* outbox_seq) {
  state->set_list_model_version(segmenter_->model_version());
  state->set_list_recommender_version(recommender_->model_version());
  state->set_list_checked_ms(watermark);
  const uint64_t hash = ListContentHash(list);
  if (state->list_version() != 0 && hash == state->list_hash()) return false;
  state->set_list_version(state->list_version() + 1);
  state->set_list_hash(hash);
  state->set_list_as_of_ms(watermark);
  v1::OutboxRecord record;
  record.set_topic_kind("recommendations");
  record.set_key(state->customer_id());
  record.set_source_time_ms(source_time_ms);
  v1::RecommendationList* out = record.mutable_list();
  out->set_customer_id(state->customer_id());
  out->set_version(state->list_version());
  out->set_as_of_ms(watermark);
  out->set_segment(state->segment());
  out->set_cluster(state->cluster());
  out->set_group(InControlGroup(state->customer_id(), options_.recommend.control_share)
                     ? v1::RecommendationList::CONTROL
                     : v1::RecommendationList::TREATMENT);
  out->set_model_version(state->model_version());
  for (const Recommendation& r : list) {
    v1::RecommendedItem* item = out->add_items();
    item->set_item_id(r.item_id);
    item->set_score(r.score);
    item->set_strategy(r.strategy);
    item->set_reason(r.reason);
  }
  state->clear_list_item_ids();
  for (const Recommendation& r : list) state->add_list_item_ids(r.item_id);
  writes->Put(Column::kLists, ListKey(partition, state->customer_id()), EncodeState(*out));
  PutOutbox(partition, (*outbox_seq)++, std::move(record), writes);
  return true;
}

Status Pipeline::RefreshStaleLists(uint32_t partition, int64_t watermark,
                                   const std::unordered_set<std::string_view>& skip,
                                   v1::SourcePosition* position, WriteSet* writes,
                                   uint64_t* outbox_seq, BatchResult* result) {
  const RecommenderOptions& o = options_.recommend;
  if (o.refresh_per_batch <= 0) return Status::OK();
  const int64_t max_age_ms =
      o.refresh_after_days > 0 ? static_cast<int64_t>(o.refresh_after_days * 86400000.0) : 0;
  const uint64_t model_version = segmenter_->model_version();
  const uint64_t recommender_version = recommender_->model_version();
  // Visit at most a few times the refresh budget, so a sweep over fresh lists stays cheap.
  const size_t max_visits = 4 * static_cast<size_t>(o.refresh_per_batch);
  const size_t max_refreshes = static_cast<size_t>(o.refresh_per_batch);
  const std::string prefix = PartitionPrefix(partition);
  const std::string start =
      position->refresh_cursor().empty() ? prefix : position->refresh_cursor();
  size_t visits = 0, refreshes = 0;
  std::string next;
  Status decode_error;
  CustomerState state;
  std::vector<std::string> stale_keys;
  std::vector<CustomerState> stale;
  Status s = store_->ScanFrom(
      Column::kCustomers, prefix, start, [&](std::string_view key, std::string_view value) {
        if (visits >= max_visits || refreshes >= max_refreshes) {
          next.assign(key);
          return false;
        }
        ++visits;
        if (skip.count(key) > 0) return true;
        Status d = DecodeState(value, &state);
        if (!d.ok()) {
          decode_error = Status::Corruption("customer " + options_.log_ids.Name(CustomerIdOfKey(key)) +
                                            ": " + d.message());
          return false;
        }
        if (state.list_version() == 0) return true;  // never listed: its first event lists it
        const int64_t checked = std::max(state.list_as_of_ms(), state.list_checked_ms());
        const bool old = max_age_ms > 0 && watermark - checked >= max_age_ms;
        const bool refit = state.list_model_version() < model_version ||
                           state.list_recommender_version() < recommender_version;
        if (!old && !refit) return true;
        ++refreshes;
        stale_keys.emplace_back(key);
        stale.push_back(std::move(state));
        state.Clear();
        return true;
      });
  STREAMREC_RETURN_IF_ERROR(s);
  STREAMREC_RETURN_IF_ERROR(decode_error);
  std::vector<const CustomerState*> listed(stale.size());
  for (size_t i = 0; i < stale.size(); ++i) listed[i] = &stale[i];
  recommender_->RecommendMany(listed, &lists_);
  for (size_t i = 0; i < stale.size(); ++i) {
    if (PublishList(partition, watermark, /*source_time_ms=*/0, lists_[i], &stale[i], writes,
                    outbox_seq)) {
      ++result->lists_published;
    } else {
      ++result->lists_unchanged;
    }
    writes->Put(Column::kCustomers, std::move(stale_keys[i]), EncodeState(stale[i]));
  }
  result->lists_refreshed += refreshes;
  position->set_refresh_cursor(next);  // "" when the sweep reached the end: start over
  return Status::OK();
}

std::string InvalidReason(const Status& status) {
  const std::string& m = status.message();
  // "bad quantity -2 (field 'qty'): ..." and "bad customer_id {\"n\":628...}": the field, never
  // the value, which a decoder does not always quote (numbers, JSON values). The reason is a
  // metric label and a dead-letter header: bounded, and never a customer id.
  static constexpr const char* kFields[] = {"event_id",   "customer_id", "item_id",  "event_time",
                                            "quantity",   "unit_price",  "amount",   "discount",
                                            "channel",    "currency"};
  for (std::string_view prefix : {std::string_view("bad "), std::string_view("missing ")}) {
    if (m.rfind(prefix, 0) != 0) continue;
    const size_t end = m.find_first_of(" '(:", prefix.size());
    const std::string_view field = std::string_view(m).substr(prefix.size(), end - prefix.size());
    for (const char* f : kFields) {
      if (field == f) return std::string(prefix) + std::string(field);
    }
  }
  // "event_time 2300-01-01T00:00:00Z out of range [...]".
  if (m.rfind("event_time ", 0) == 0 && m.find(" out of range") != std::string::npos) {
    return "event_time out of range";
  }
  size_t cut = m.find_first_of("'(:");
  std::string reason = m.substr(0, cut);
  while (!reason.empty() && reason.back() == ' ') reason.pop_back();
  return reason.empty() ? "invalid" : reason;
}

std::string InvalidRecordForLog(const Status& status, const CustomerIdsInLogs& log_ids) {
  if (!log_ids.pseudonymized()) return status.message();
  return InvalidReason(status) + " (values withheld from the log)";
}

std::string SegmentChangeToJson(const v1::SegmentChange& change) {
  JsonWriter w;
  w.BeginObject();
  w.Key("customer_id").String(change.customer_id());
  w.Key("from_cluster").Int(change.from_cluster());
  w.Key("from_segment").String(change.from_segment());
  w.Key("to_cluster").Int(change.to_cluster());
  w.Key("to_segment").String(change.to_segment());
  w.Key("model_version").Uint(change.model_version());
  w.Key("event_time").String(FormatIso8601(change.event_time_ms()));
  w.EndObject();
  return w.Release();
}

std::string RecommendationListToJson(const v1::RecommendationList& list) {
  JsonWriter w;
  w.BeginObject();
  w.Key("customer_id").String(list.customer_id());
  w.Key("version").Uint(list.version());
  w.Key("as_of").String(FormatIso8601(list.as_of_ms()));
  w.Key("segment").String(list.segment());
  w.Key("cluster").Int(list.cluster());
  w.Key("group").String(list.group() == v1::RecommendationList::CONTROL ? "control" : "treatment");
  w.Key("model_version").Uint(list.model_version());
  w.Key("items").BeginArray();
  for (const auto& item : list.items()) {
    w.BeginObject();
    w.Key("item_id").String(item.item_id());
    w.Key("score").Double(item.score());
    w.Key("strategy").String(item.strategy());
    w.Key("reason").String(item.reason());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return w.Release();
}

uint64_t OutboxSequence(std::string_view key) {
  uint64_t seq = 0;
  for (size_t i = key.size() >= 8 ? key.size() - 8 : 0; i < key.size(); ++i) {
    seq = (seq << 8) | static_cast<unsigned char>(key[i]);
  }
  return seq;
}

StatusOr<uint64_t> DrainOutbox(StateStore* store, uint32_t partition,
                               const std::function<Status(const v1::OutboxRecord&)>& publish,
                               const std::function<Status()>& sync, uint64_t* cursor) {
  constexpr size_t kChunk = 4096;
  const std::string prefix = PartitionPrefix(partition);
  uint64_t published = 0;
  uint64_t next = cursor != nullptr ? *cursor : 0;
  while (true) {
    std::vector<std::pair<std::string, v1::OutboxRecord>> chunk;
    Status decode_status;
    STREAMREC_RETURN_IF_ERROR(store->ScanFrom(
        Column::kOutbox, prefix, OutboxKey(partition, next),
        [&](std::string_view key, std::string_view value) {
          v1::OutboxRecord record;
          decode_status = DecodeState(value, &record);
          if (!decode_status.ok()) return false;
          chunk.emplace_back(std::string(key), std::move(record));
          return chunk.size() < kChunk;
        }));
    STREAMREC_RETURN_IF_ERROR(decode_status);
    if (chunk.empty()) return published;
    WriteSet deletes;
    for (auto& [key, record] : chunk) {
      STREAMREC_RETURN_IF_ERROR(publish(record));
      deletes.Delete(Column::kOutbox, std::move(key));
    }
    if (sync) STREAMREC_RETURN_IF_ERROR(sync());
    next = OutboxSequence(deletes.ops().back().key) + 1;
    STREAMREC_RETURN_IF_ERROR(store->Write(deletes));
    if (cursor != nullptr) *cursor = next;
    published += chunk.size();
  }
}

}  // namespace streamrec
