// `pqa-scorer run`: the streaming service. Consumes the input topic in a consumer group, keeps
// each assigned partition's state in its own RocksDB, and writes signals, scores, changelog
// and dead letters; in exactly-once mode all of that and the input offsets commit in one
// Kafka transaction.
#pragma once

#include <atomic>
#include <memory>

#include "admin_routes.h"
#include "config_loader.h"
#include "metrics.h"

namespace pqa::scorer {

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
