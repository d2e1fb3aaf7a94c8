// Loads config/scorer.yaml into the one config schema. Every problem names its key.
#pragma once

#include <stdexcept>
#include <string>

#include "pqa/rollup/config.h"
#include "processor.h"
#include "state_store.h"

namespace pqa::scorer {

struct ServiceConfig {
  rollup::ModelConfig model;
  ProcessorOptions processor;
  RocksDbOptions rocksdb;  ///< path is set by the command (--state-dir or a temp dir)
};

/// A configuration error: start-up stops with this message.
class ConfigException : public std::runtime_error {
 public:
  ConfigException(std::string key, const std::string& problem)
      : std::runtime_error(key + ": " + problem), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

/// Parses YAML text. Unknown keys are errors (a typo must not silently fall back to a default).
ServiceConfig parse_config(const std::string& yaml_text);
/// Reads and parses a file; the exception message starts with the file name.
ServiceConfig load_config(const std::string& path);

}  // namespace pqa::scorer
