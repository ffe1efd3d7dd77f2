// One segment model for several instances (kafka.model_topic, docs/scale-out.md).
//
// The owner of input partition 0 — chosen by the consumer group's assignment, no election of our
// own — fits the K-Means model and publishes every version it fits to the model topic (one
// partition, compacted, key "segments", value the fitted SegmentModel in the store's encoding).
// Every instance reads the topic with a ModelFeed and offers each version to its segmenter,
// which adopts it when newer than its own (KMeansSegmenter::OfferModel / AdoptOffered).
// The same instance fits the recommender's ALS model and publishes it to the same topic (key
// "als", value the model as the store holds it, header "model-version"); the feed offers those
// to the recommender (Recommender::OfferModel / AdoptOffered).
#ifndef STREAMREC_SRC_KAFKA_MODEL_FEED_H_
#define STREAMREC_SRC_KAFKA_MODEL_FEED_H_

#include <cstdint>
#include <memory>
#include <string>

#include "streamrec/config.h"
#include "streamrec/kmeans_segmenter.h"
#include "streamrec/logger.h"
#include "streamrec/recommender.h"
#include "streamrec/status.h"

namespace streamrec {

// The model topic's key of the segment model, and of the recommender's ALS model.
inline constexpr char kSegmentModelKey[] = "segments";
inline constexpr char kAlsModelTopicKey[] = "als";
// The header carrying an ALS model's version.
inline constexpr char kModelVersionHeader[] = "model-version";

class ModelFeed {
 public:
  // Starts reading kafka.model_topic from its beginning on a thread of its own, offering every
  // segment model to `segmenter` and every ALS model to `recommender` (may be null: ALS models
  // are skipped); both must outlive the feed.
  static StatusOr<std::unique_ptr<ModelFeed>> Start(const KafkaConfig& kafka,
                                                    KMeansSegmenter* segmenter,
                                                    Recommender* recommender,
                                                    std::shared_ptr<Logger> log);
  virtual ~ModelFeed() = default;
  // The newest segment model version read from the topic (0: none yet), and the newest ALS
  // model version.
  virtual uint64_t latest_version() const = 0;
  virtual uint64_t latest_als_version() const = 0;
  // Records read, and records refused (undecodable, or a model this instance cannot use).
  virtual uint64_t records() const = 0;
  virtual uint64_t refused() const = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_MODEL_FEED_H_
