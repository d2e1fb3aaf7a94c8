// Synthetic Segment-spec event streams with the seeds' account archetypes, Zipf activity and
// 1-10,000 users per account (see the model described at the top of src/generator.cpp).
// Pure: deterministic for given options, no I/O; lines go to a caller's sink.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace pqa::synth {

struct Options {
  std::uint64_t events = 1'000'000;
  std::uint64_t accounts = 10'000;
  std::uint64_t users_per_account = 0;  ///< 0: drawn per account
  std::uint64_t max_users = 10'000;
  double zipf = 1.1;
  std::uint64_t seed = 42;
  double days = 60;
  std::int64_t start_ms = 1'767'571'200'000;  ///< 2026-01-05T00:00:00Z
  double poison_rate = 0;
};

/// Applies one command-line flag (e.g. "--events", "1000"); false when the flag is unknown or
/// its value invalid.
bool set_option(Options& options, std::string_view name, std::string_view value);
/// The flags and their defaults, for usage messages.
std::string_view usage();

/// Generates options.events lines; `sink` receives chunks of whole lines (about 1 MiB each,
/// every line ending in '\n').
void generate(const Options& options, const std::function<void(std::string_view)>& sink);

}  // namespace pqa::synth
