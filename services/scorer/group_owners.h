// Which member of the consumer group owns each input partition, so that an account query sent
// to the wrong instance can say where to ask (as Kafka Streams' KeyQueryMetadata does). A
// background thread describes the group every few seconds (one ListGroups/DescribeGroups call,
// never on the processing loop) and decodes the members' assignments.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace pqa::scorer {

struct PartitionOwner {
  std::string member_id;  ///< starts with group.instance.id for static members
  std::string client_id;
  std::string client_host;  ///< as the broker saw it, e.g. "/10.1.2.3"
};

/// Partitions of `topic` in a consumer-protocol assignment (Kafka's ConsumerProtocol
/// Assignment, versions 0-3: they share the layout read here). nullopt if malformed.
std::optional<std::vector<int>> assigned_partitions(std::string_view assignment,
                                                    std::string_view topic);

class GroupOwners {
 public:
  /// `rk` (any client handle; librdkafka's calls are thread-safe) must outlive this object.
  GroupOwners(rd_kafka_t* rk, std::string group, std::string topic,
              std::chrono::milliseconds refresh = std::chrono::seconds(5));
  ~GroupOwners();
  GroupOwners(const GroupOwners&) = delete;
  GroupOwners& operator=(const GroupOwners&) = delete;

  /// The owner as of the last refresh; nullopt when unknown (mid-rebalance, not described yet).
  std::optional<PartitionOwner> owner_of(int partition) const;

 private:
  void refresh();
  void loop();

  rd_kafka_t* rk_;
  std::string group_, topic_;
  std::chrono::milliseconds every_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::map<int, PartitionOwner> owners_;
  std::thread thread_;
};

}  // namespace pqa::scorer
