// `pqa-scorer replay`: the offline mode (backtests, debugging, the test oracle).
#pragma once

#include <optional>
#include <string>

namespace pqa::scorer {

struct ReplayOptions {
  std::string config_path;
  std::string input = "-";
  std::string signals_path;
  std::string scores_path;
  std::optional<std::string> as_of;      ///< advance the clock to this time after the input
  std::optional<std::string> state_dir;  ///< RocksDB directory; a temp dir when absent
  bool strict = false;                   ///< exit 1 if any line was rejected
  /// 0: one stream with one clock. N > 0: the events are split into N partitions by account
  /// as Kafka's default partitioner splits the service's input (partitioning.h), each with
  /// its own clock and store (<state-dir>/partition-P), exactly as `run` processes them:
  /// the oracle for the service's output.
  int partitions = 0;
  /// Time each --scores line is evaluated at: the end of the input (or --as-of; with
  /// --partitions, of the account's partition, as the service's account queries answer; an
  /// account's own clock if later, with allowed lateness), or, with kAccount, the account's
  /// own last change, as the service's scores topic publishes it.
  enum class ScoresAt { kEnd, kAccount } scores_at = ScoresAt::kEnd;
};

/// Runs a replay; returns the process exit code (0 ok, 1 rejected lines with --strict,
/// 2 usage or configuration error, 3 I/O or storage failure).
int run_replay(const ReplayOptions& options);

}  // namespace pqa::scorer
