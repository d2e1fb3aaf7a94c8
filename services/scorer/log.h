// Structured logs: one JSON object per line on stderr, with time, level, component and
// message, plus fields (account, partition, ...). Never log secrets: callers pass names of
// properties, not their values (kafka::is_secret_property).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace pqa::scorer::log {

enum class Level { kDebug, kInfo, kWarn, kError };

using Field = std::pair<std::string_view, std::string>;

/// Lines below this level are dropped (default kInfo).
void set_min_level(Level level);
/// Writes one line (thread-safe: librdkafka may log from its own threads).
void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields = {});

inline void info(std::string_view component, std::string_view message,
                 std::initializer_list<Field> fields = {}) {
  write(Level::kInfo, component, message, fields);
}
inline void warn(std::string_view component, std::string_view message,
                 std::initializer_list<Field> fields = {}) {
  write(Level::kWarn, component, message, fields);
}
inline void error(std::string_view component, std::string_view message,
                  std::initializer_list<Field> fields = {}) {
  write(Level::kError, component, message, fields);
}

}  // namespace pqa::scorer::log
