// `pqa-scorer run`: the streaming service. Consumes the input topic in a consumer group, keeps
// each assigned partition's state in its own RocksDB, and writes signals, scores, changelog
// and dead letters; in exactly-once mode all of that and the input offsets commit in one
// Kafka transaction.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "admin_routes.h"
#include "config_loader.h"
#include "metrics.h"

namespace pqa::scorer {

/// The input consumer's librdkafka properties: the service's defaults, then
/// `kafka.properties` and `kafka.consumer_properties` over them, then what the commit
/// protocol fixes (no auto commit or offset store, read_committed) over those. (A
/// kafka::Properties; spelled out so that this header does not pull in librdkafka's.)
std::map<std::string, std::string> input_consumer_properties(const KafkaConfig& c);

class StreamService {
 public:
  /// Validates the Kafka settings, checks (or creates) the topics and connects. Throws
  /// ConfigException or kafka::KafkaError with a message naming the problem.
  /// `metrics` and `queries` (may be null: no admin server) must outlive the service; the
  /// loop answers queued account queries between batches.
  StreamService(const ServiceConfig& config, const std::atomic<bool>& stop, ServiceMetrics& metrics,
                AccountQueries* queries = nullptr);
  ~StreamService();
  StreamService(const StreamService&) = delete;
  StreamService& operator=(const StreamService&) = delete;

  /// Processes until `stop` is set, then commits, leaves the group and returns. Throws
  /// kafka::KafkaError on an unrecoverable error (e.g. fenced by a newer instance).
  void run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pqa::scorer
