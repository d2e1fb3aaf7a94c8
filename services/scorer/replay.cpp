#include "replay.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "config_loader.h"
#include "line_io.h"
#include "processor.h"

namespace pqa::scorer {
namespace {

namespace fs = std::filesystem;

/// A directory under $TMPDIR removed (recursively) when it goes out of scope.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "pqa-replay-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("cannot create a temporary state directory");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class FileSignalSink final : public SignalSink {
 public:
  FileSignalSink(LineWriter& writer, const std::string& model_version)
      : writer_(writer), model_version_(model_version) {}
  void emit(const OutputSignal& signal) override {
    line_.clear();
    write_signal(line_, signal, model_version_);
    writer_.write_line(line_);
  }

 private:
  LineWriter& writer_;
  const std::string& model_version_;
  std::string line_;
};

void print_summary(const ProcessorStats& s, std::uint64_t lines, std::uint64_t accounts,
                   double seconds) {
  std::fprintf(
      stderr,
      "replay: %llu lines, %llu processed (%llu ignored), %llu rejected, %llu signals, "
      "%llu timers fired, %llu accounts, %.2f s (%.0f lines/s)\n",
      static_cast<unsigned long long>(lines), static_cast<unsigned long long>(s.processed),
      static_cast<unsigned long long>(s.ignored), static_cast<unsigned long long>(s.rejected),
      static_cast<unsigned long long>(s.signals), static_cast<unsigned long long>(s.timers_fired),
      static_cast<unsigned long long>(accounts), seconds,
      seconds > 0 ? static_cast<double>(lines) / seconds : 0.0);
  for (std::size_t i = 0; i < s.rejected_by_reason.size(); ++i)
    if (s.rejected_by_reason[i] > 0)
      std::fprintf(stderr, "replay: rejected %s: %llu\n",
                   std::string(rollup::to_string(static_cast<rollup::DecodeError>(i))).c_str(),
                   static_cast<unsigned long long>(s.rejected_by_reason[i]));
}

int replay_with(const ReplayOptions& o, const ServiceConfig& config,
                std::optional<rollup::TimeMs> as_of, const std::string& state_path) {
  const auto started = std::chrono::steady_clock::now();
  const rollup::Model model(config.model);
  RocksDbOptions db_options = config.rocksdb;
  db_options.path = state_path;
  auto store = open_rocksdb_store(db_options);
  LineWriter signals(o.signals_path);
  FileSignalSink sink(signals, model.version());
  Processor processor(model, *store, sink, config.processor);

  LineReader reader(o.input, config.model.decoder.max_event_bytes);
  std::string_view line;
  bool overlong = false;
  std::uint64_t lines = 0;
  while (reader.next(line, overlong)) {
    ++lines;
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line
    if (overlong) line = std::string_view(line.data(), config.model.decoder.max_event_bytes + 1);
    if (auto failure = processor.process(line))
      std::fprintf(stderr, "line %llu: %s\n", static_cast<unsigned long long>(reader.line_number()),
                   failure->message().c_str());
  }
  if (as_of) {
    if (processor.watermark() != rollup::kNoTime && *as_of < processor.watermark())
      std::fprintf(stderr,
                   "replay: --as-of %s is before the last event time %s; using the latter\n",
                   rollup::format_timestamp(*as_of).c_str(),
                   rollup::format_timestamp(processor.watermark()).c_str());
    processor.advance_to(*as_of);
  }
  const rollup::TimeMs clock = processor.watermark();
  LineWriter scores(o.scores_path);
  std::uint64_t accounts = 0;
  processor.for_each_account([&](const rollup::AccountId& id, const rollup::AccountState& state) {
    scores.write_line(
        score_to_json(id, rollup::evaluate(model, state, clock), clock, model.version()));
    ++accounts;
  });
  signals.flush();
  scores.flush();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  print_summary(processor.stats(), lines, accounts, seconds);
  return o.strict && processor.stats().rejected > 0 ? 1 : 0;
}

}  // namespace

int run_replay(const ReplayOptions& o) {
  ServiceConfig config;
  try {
    config = load_config(o.config_path);
  } catch (const ConfigException& e) {
    std::fprintf(stderr, "pqa-scorer: config error: %s\n", e.what());
    return 2;
  }
  std::optional<rollup::TimeMs> as_of;
  if (o.as_of) {
    as_of = rollup::parse_timestamp(*o.as_of);
    if (!as_of) {
      std::fprintf(stderr, "pqa-scorer: --as-of: '%s' is not an ISO-8601 time in 2000..2099\n",
                   o.as_of->c_str());
      return 2;
    }
  }
  try {
    if (o.state_dir) return replay_with(o, config, as_of, *o.state_dir);
    TempDir dir;
    return replay_with(o, config, as_of, dir.path());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pqa-scorer: replay failed: %s\n", e.what());
    return 3;
  }
}

}  // namespace pqa::scorer
