// Which partition an account's events live in. One definition for the service, the load tool
// and `replay --partitions`, equal to Kafka's default partitioner.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "pqa/rollup/event.h"

namespace pqa::scorer {

/// Kafka's murmur2 (the Java client's Utils.murmur2; librdkafka's "murmur2").
std::int32_t kafka_murmur2(std::string_view key);

/// The partition of `key` among `partitions`, as Kafka's default partitioner (and
/// librdkafka's "murmur2_random" for non-empty keys) chooses it.
int partition_for_key(std::string_view key, int partitions);

/// The account an event belongs to, for keying it on its way into Kafka, resolved as the
/// processor does: context.groupId, a group call's groupId, else the account the user was last
/// tied to by a group call (latest timestamp wins). Used by the load tool and by
/// `replay --partitions`; nullopt when the event cannot be resolved (it is keyless then, and
/// the processor rejects it wherever it lands).
class AccountRouter {
 public:
  std::optional<std::string> route(const rollup::Event& e);

 private:
  std::unordered_map<std::string, std::pair<std::string, rollup::TimeMs>> identity_;
};

}  // namespace pqa::scorer
