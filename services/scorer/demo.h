// `pqa-scorer demo`: the whole streaming pipeline with no external service. librdkafka's
// in-process mock cluster stands in for Kafka, the built-in generator (libs/synth) sends
// realistic traffic, `run`'s service scores it with RocksDB in a temporary directory, and the
// signals are printed as they reach the signals topic.
#pragma once

#include <cstdint>
#include <string>

namespace pqa::scorer {

struct DemoOptions {
  std::string config_path;  ///< empty: the built-in defaults (= config/scorer.yaml)
  std::uint64_t events = 100'000;
  std::uint64_t accounts = 500;
  double rate = 20'000;  ///< events per second; 0: as fast as possible
  int partitions = 4;
  std::uint64_t seed = 42;
};

/// Returns the process exit code (0 ok, 2 configuration error, 3 pipeline failure).
int run_demo(const DemoOptions& options);

}  // namespace pqa::scorer
