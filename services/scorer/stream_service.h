// `pqa-scorer run`: the streaming service. Consumes the input topic in a consumer group, keeps
// each assigned partition's state in its own RocksDB, and writes signals, scores, changelog
// and dead letters; in exactly-once mode all of that and the input offsets commit in one
// Kafka transaction.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "config_loader.h"

namespace pqa::scorer {

/// Counters a running service exposes (read from other threads, e.g. an admin endpoint).
struct ServiceCounters {
  std::atomic<std::uint64_t> events_processed{0};
  std::atomic<std::uint64_t> events_rejected{0};
  std::atomic<std::uint64_t> signals_emitted{0};
  std::atomic<std::uint64_t> transactions_committed{0};
  std::atomic<std::uint64_t> transactions_aborted{0};
  std::atomic<std::uint64_t> rebalances{0};
  std::atomic<std::uint64_t> restored_records{0};
  std::atomic<int> assigned_partitions{0};
  std::atomic<int> restoring_partitions{0};
  /// Assigned partitions restored and the consumer running.
  std::atomic<bool> ready{false};
};

class StreamService {
 public:
  /// Validates the Kafka settings, checks (or creates) the topics and connects. Throws
  /// ConfigException or kafka::KafkaError with a message naming the problem.
  StreamService(const ServiceConfig& config, const std::atomic<bool>& stop);
  ~StreamService();
  StreamService(const StreamService&) = delete;
  StreamService& operator=(const StreamService&) = delete;

  /// Processes until `stop` is set, then commits, leaves the group and returns. Throws
  /// kafka::KafkaError on an unrecoverable error (e.g. fenced by a newer instance).
  void run();

  const ServiceCounters& counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pqa::scorer
