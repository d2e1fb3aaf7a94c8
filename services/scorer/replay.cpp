#include "replay.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <vector>

#include "background_write_store.h"
#include "config_loader.h"
#include "line_io.h"
#include "partitioning.h"
#include "processor.h"
#include "temp_dir.h"

namespace pqa::scorer {
namespace {

namespace fs = std::filesystem;

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

/// One stream of the replay: a partition's store and processor (the whole input when the
/// replay is not partitioned).
struct ReplayStream {
  std::unique_ptr<StateStore> store;
  std::unique_ptr<Processor> processor;
};

ProcessorStats total_stats(const std::vector<ReplayStream>& streams) {
  ProcessorStats total;
  for (const auto& s : streams) {
    const auto& st = s.processor->stats();
    total.processed += st.processed;
    total.ignored += st.ignored;
    total.rejected += st.rejected;
    for (std::size_t i = 0; i < st.rejected_by_reason.size(); ++i)
      total.rejected_by_reason[i] += st.rejected_by_reason[i];
    total.signals += st.signals;
    total.timers_fired += st.timers_fired;
  }
  return total;
}

/// Routes lines to partitions as pqa-load keys them into Kafka.
class LineRouter {
 public:
  LineRouter(const rollup::Model& model, int partitions)
      : decoder_(model), partitions_(partitions) {}
  std::size_t route(std::string_view line) {
    if (partitions_ <= 1) return 0;
    std::optional<std::string> key;
    if (!decoder_.decode_into(line, event_)) key = router_.route(event_);
    const std::uint64_t n = sent_++;
    return key ? static_cast<std::size_t>(partition_for_key(*key, partitions_))
               : static_cast<std::size_t>(n % static_cast<std::uint64_t>(partitions_));
  }

 private:
  rollup::EventDecoder decoder_;
  rollup::Event event_;
  AccountRouter router_;
  int partitions_;
  std::uint64_t sent_ = 0;
};

/// One line per account in ascending id order: streamed straight from a single store; with
/// partitions, gathered and merged.
void write_scores(const ReplayOptions& o, const rollup::Model& model,
                  std::vector<ReplayStream>& streams, std::uint64_t& accounts) {
  LineWriter scores(o.scores_path);
  std::vector<std::pair<std::string, std::string>> merged;  // (account id, line)
  for (auto& stream : streams) {
    const rollup::TimeMs end = stream.processor->watermark();
    stream.processor->for_each_account([&](const rollup::AccountId& id,
                                           const rollup::AccountState& state) {
      // An account's own clock can be past the stream's end when events are allowed to be
      // late (the end trails the newest event); it is evaluated at its clock then, and says so.
      const rollup::TimeMs at = o.scores_at == ReplayOptions::ScoresAt::kAccount
                                    ? state.clock
                                    : std::max(end, state.clock);
      std::string line = score_to_json(id, rollup::evaluate(model, state, at), at, model.version());
      if (streams.size() == 1)
        scores.write_line(line);
      else
        merged.emplace_back(id.str(), std::move(line));
      ++accounts;
    });
  }
  std::sort(merged.begin(), merged.end());
  for (const auto& [id, line] : merged) scores.write_line(line);
  scores.flush();
}

int replay_with(const ReplayOptions& o, const ServiceConfig& config,
                std::optional<rollup::TimeMs> as_of, const std::string& state_path) {
  const auto started = std::chrono::steady_clock::now();
  const rollup::Model model(config.model);
  // The input first: an input that cannot be opened must not cost the previous outputs.
  LineReader reader(o.input, config.model.decoder.max_event_bytes);
  LineWriter signals(o.signals_path);
  FileSignalSink sink(signals, model.version());
  std::vector<ReplayStream> streams(static_cast<std::size_t>(std::max(1, o.partitions)));
  for (std::size_t p = 0; p < streams.size(); ++p) {
    RocksDbOptions db_options = config.rocksdb;
    db_options.path = o.partitions > 0
                          ? (fs::path(state_path) / ("partition-" + std::to_string(p))).string()
                          : state_path;
    if (o.partitions > 0) fs::create_directories(db_options.path);
    streams[p].store = std::make_unique<BackgroundWriteStore>(open_rocksdb_store(db_options));
    streams[p].processor =
        std::make_unique<Processor>(model, *streams[p].store, sink, config.processor);
  }
  LineRouter router(model, o.partitions);

  std::string_view line;
  bool overlong = false;
  std::uint64_t lines = 0;
  while (reader.next(line, overlong)) {
    ++lines;
    if (!prepare_input_line(line, reader.line_number(), overlong)) continue;
    if (overlong) line = std::string_view(line.data(), config.model.decoder.max_event_bytes + 1);
    Processor& processor = *streams[router.route(line)].processor;
    auto failure = processor.process(line, {}, rollup::Padding::kReadable);
    if (!failure) continue;
    // An overlong line was read only up to one byte past the limit: its size is not known.
    const std::string why = overlong ? "oversized: the line is longer than the limit of " +
                                           std::to_string(config.model.decoder.max_event_bytes) +
                                           " bytes"
                                     : failure->message();
    std::fprintf(stderr, "line %llu: %s\n", static_cast<unsigned long long>(reader.line_number()),
                 why.c_str());
  }
  if (as_of) {
    for (auto& stream : streams) {
      Processor& processor = *stream.processor;
      // Time passes from the newest event on, past the allowed lateness too.
      const rollup::TimeMs last = processor.max_event_time();
      if (last != rollup::kNoTime && *as_of < last)
        std::fprintf(
            stderr, "replay: --as-of %s is before the last event time %s; using the latter\n",
            rollup::format_timestamp(*as_of).c_str(), rollup::format_timestamp(last).c_str());
      processor.advance_to(last == rollup::kNoTime ? *as_of : std::max(*as_of, last));
    }
  }
  std::uint64_t accounts = 0;
  signals.flush();  // before the scores: with both on stdout, every signal comes first
  write_scores(o, model, streams, accounts);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  print_summary(total_stats(streams), lines, accounts, seconds);
  return o.strict && total_stats(streams).rejected > 0 ? 1 : 0;
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
  for (const auto& [flag, path] :
       {std::pair{"--signals", &o.signals_path}, std::pair{"--scores", &o.scores_path}}) {
    std::error_code ignored;
    if (o.input != "-" && *path != "-" && fs::equivalent(o.input, *path, ignored)) {
      std::fprintf(stderr, "pqa-scorer: %s '%s' is the input file; it would be overwritten\n", flag,
                   path->c_str());
      return 2;
    }
  }
  try {
    if (o.state_dir) return replay_with(o, config, as_of, *o.state_dir);
    TempDir dir("pqa-replay");
    return replay_with(o, config, as_of, dir.path());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pqa-scorer: replay failed: %s\n", e.what());
    return 3;
  }
}

}  // namespace pqa::scorer
