// `pqa-scorer run`: the streaming service until SIGTERM/SIGINT.
#pragma once

#include <optional>
#include <string>

namespace pqa::scorer {

struct RunOptions {
  std::string config_path;
  std::optional<std::string> state_dir;  ///< overrides service.state_dir
};

/// Returns the process exit code: 0 after a clean shutdown, 2 for a configuration error,
/// 3 for an unrecoverable Kafka or storage error.
int run_service(const RunOptions& options);

}  // namespace pqa::scorer
