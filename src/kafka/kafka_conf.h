// Building librdkafka configurations from streamrec's configuration.
#ifndef STREAMREC_SRC_KAFKA_KAFKA_CONF_H_
#define STREAMREC_SRC_KAFKA_KAFKA_CONF_H_

#include <librdkafka/rdkafkacpp.h>

#include <map>
#include <memory>
#include <string>

#include "streamrec/status.h"

namespace streamrec {

// A global conf with `properties` set in order (later entries win). Errors name the property;
// a secret's value is never part of a message.
StatusOr<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(
    const std::map<std::string, std::string>& properties, const std::string& what);

// "key=value, ..." with secret values replaced by "***", for logs.
std::string RedactedProperties(const std::map<std::string, std::string>& properties);

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_KAFKA_CONF_H_
