#include "log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "json_output.h"
#include "pqa/rollup/event.h"

namespace pqa::scorer::log {
namespace {

std::atomic<Level> g_min_level{Level::kInfo};
std::mutex g_mutex;

std::string_view name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void set_min_level(Level level) {
  g_min_level = level;
}

void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields) {
  if (level < g_min_level.load(std::memory_order_relaxed)) return;
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::string line = "{\"time\":";
  append_json_string(line, rollup::format_timestamp(now));
  line += ",\"level\":";
  append_json_string(line, name(level));
  line += ",\"component\":";
  append_json_string(line, component);
  line += ",\"message\":";
  append_json_string(line, message);
  for (const auto& [key, value] : fields) {
    line.push_back(',');
    append_json_string(line, key);
    line.push_back(':');
    append_json_string(line, value);
  }
  line += "}\n";
  const std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace pqa::scorer::log
