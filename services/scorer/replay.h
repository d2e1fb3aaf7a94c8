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
};

/// Runs a replay; returns the process exit code (0 ok, 1 rejected lines with --strict,
/// 2 usage or configuration error, 3 I/O or storage failure).
int run_replay(const ReplayOptions& options);

}  // namespace pqa::scorer
