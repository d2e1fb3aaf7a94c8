// Whole-pipeline throughput, one scoring thread, measured side by side in one run on the same
// lines:
//
//   floor     simdjson on-demand parse + extraction of the fields the scorer reads, nothing else
//   decode    the scorer's EventDecoder (validation, taxonomy lookup, owned strings)
//   score     decode + identity resolution + scoring core + timers, state in memory (no store)
//   score-copy  the same, each line first copied into the decoder's padded buffer, as the
//             service does with Kafka payloads (the other stages parse lines in place, as
//             replay does; not in the default list)
//   replay    the full replay path: the same plus RocksDB state on disk (write-back cache,
//             batched writes, written on a second thread by BackgroundWriteStore), as
//             `pqa-scorer replay` runs it, without writing output files
//   replay-sync  the same with every batch written on the scoring thread (the design before
//             BackgroundWriteStore, kept to measure what the second thread buys)
//
// Usage: pqa-bench-throughput --config config/scorer.yaml --input FILE [--repeat N]
//                             [--stages floor,decode,score,score-copy,replay,replay-sync]
//                             [--warmup FILE]
// Prints one line per stage: events/s, and the ratio to the floor.
//
// Timed: the stage's pass over --input, and for replay the final flush that makes the state
// durable; not timed: building the pipeline, tearing it down and, with --warmup, processing
// the warm-up file first (score and replay stages), so that the measured events meet state
// that already exists, as in a service that has been running for a while.
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "background_write_store.h"
#include "config_loader.h"
#include "pqa/rollup/event.h"
#include "processor.h"

namespace {

using Clock = std::chrono::steady_clock;

/// What a stage returns: a checksum-like count (so the work cannot be optimised away) and the
/// seconds its timed part took.
struct StageRun {
  std::uint64_t result = 0;
  double seconds = 0;
  double final_flush_seconds = 0;  ///< replay stages: the part of `seconds` the last flush took
};

/// Times `fn`, returning its result and duration.
template <typename Fn>
StageRun timed(Fn&& fn) {
  const auto start = Clock::now();
  const std::uint64_t result = fn();
  return {result, std::chrono::duration<double>(Clock::now() - start).count()};
}

/// The input buffer ends in simdjson's padding, so every line may be parsed in place.
constexpr pqa::rollup::Padding kReplayPadding = pqa::rollup::Padding::kReadable;

struct Input {
  std::string text;  // padded for simdjson
  std::vector<std::string_view> lines;
};

Input load(const std::string& path) {
  Input in;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << f.rdbuf();
  in.text = s.str();
  in.text.append(simdjson::SIMDJSON_PADDING, '\0');
  const std::size_t size = in.text.size() - simdjson::SIMDJSON_PADDING;
  std::size_t start = 0;
  while (start < size) {
    std::size_t end = in.text.find('\n', start);
    if (end == std::string::npos || end > size) end = size;
    if (end > start) in.lines.emplace_back(in.text.data() + start, end - start);
    start = end + 1;
  }
  return in;
}

/// The decode floor: parse and pull out the fields the scorer uses, keep nothing.
std::uint64_t floor_pass(const Input& in) {
  simdjson::ondemand::parser parser;
  std::uint64_t sink = 0;
  for (auto line : in.lines) {
    simdjson::padded_string_view view(line.data(), line.size(),
                                      line.size() + simdjson::SIMDJSON_PADDING);
    simdjson::ondemand::document doc;
    if (parser.iterate(view).get(doc)) continue;
    simdjson::ondemand::object obj;
    if (doc.get_object().get(obj)) continue;
    for (auto field : obj) {
      std::string_view key;
      if (field.unescaped_key().get(key)) break;
      auto value = field.value();
      if (key == "type" || key == "userId" || key == "event" || key == "timestamp" ||
          key == "messageId" || key == "groupId") {
        std::string_view s;
        if (!value.get_string().get(s)) sink += s.size();
      } else if (key == "context" || key == "traits" || key == "properties") {
        simdjson::ondemand::object inner;
        if (value.get_object().get(inner)) continue;
        for (auto f2 : inner) {
          std::string_view k2;
          if (f2.unescaped_key().get(k2)) break;
          auto v2 = f2.value();
          std::string_view s2;
          double d2 = 0;
          if (!v2.get_string().get(s2))
            sink += s2.size();
          else if (!v2.get_double().get(d2))
            sink += static_cast<std::uint64_t>(d2);
        }
      }
    }
  }
  return sink;
}

std::uint64_t decode_pass(const Input& in, const pqa::rollup::Model& model) {
  pqa::rollup::EventDecoder decoder(model);
  pqa::rollup::Event event;  // reused, as the processor does
  std::uint64_t ok = 0;
  for (auto line : in.lines) ok += !decoder.decode_into(line, event, kReplayPadding).has_value();
  return ok;
}

class CountingSink final : public pqa::scorer::SignalSink {
 public:
  void emit(const pqa::scorer::OutputSignal&) override { ++count; }
  std::uint64_t count = 0;
};

/// `padding`: kReadable parses lines where they lie in the input buffer, as replay does;
/// kNone copies each into the decoder's padded buffer first, as the service does with Kafka
/// payloads (the `score-copy` stage).
StageRun score_pass(const Input& in, const Input& warmup, const pqa::rollup::Model& model,
                    pqa::rollup::Padding padding) {
  auto store = pqa::scorer::make_memory_store();
  CountingSink sink;
  pqa::scorer::ProcessorOptions options;
  options.account_cache_entries = options.user_cache_entries = options.identity_cache_entries =
      100'000'000;  // everything stays in memory: no store traffic until the end
  options.flush_every_events = ~std::size_t{0};
  pqa::scorer::Processor processor(model, *store, sink, options);
  for (auto line : warmup.lines) (void)processor.process(line, {}, padding);
  const std::uint64_t warm_signals = sink.count;
  return timed([&] {
    for (auto line : in.lines) (void)processor.process(line, {}, padding);
    return sink.count - warm_signals;
  });
}

StageRun replay_pass(const Input& in, const Input& warmup, const pqa::rollup::Model& model,
                     const pqa::scorer::ServiceConfig& config, bool background_writes) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("pqa-bench-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  StageRun run;
  {
    auto db = config.rocksdb;
    db.path = dir.string();
    std::unique_ptr<pqa::scorer::StateStore> store = pqa::scorer::open_rocksdb_store(db);
    if (background_writes)
      store = std::make_unique<pqa::scorer::BackgroundWriteStore>(std::move(store));
    CountingSink sink;
    pqa::scorer::Processor processor(model, *store, sink, config.processor);
    for (auto line : warmup.lines) (void)processor.process(line, {}, kReplayPadding);
    processor.flush();
    const std::uint64_t warm_signals = sink.count;
    double flush_seconds = 0;
    run = timed([&] {
      for (auto line : in.lines) (void)processor.process(line, {}, kReplayPadding);
      flush_seconds = timed([&] {
                        processor.flush();
                        return std::uint64_t{0};
                      }).seconds;
      return sink.count - warm_signals;
    });
    run.final_flush_seconds = flush_seconds;
  }
  fs::remove_all(dir);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "config/scorer.yaml", input_path, warmup_path, stage,
              stages = "floor,decode,score,replay";
  int repeat = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--config")
      config_path = argv[i + 1];
    else if (flag == "--input")
      input_path = argv[i + 1];
    else if (flag == "--repeat")
      repeat = std::stoi(argv[i + 1]);
    else if (flag == "--stages")
      stages = argv[i + 1];
    else if (flag == "--warmup")
      warmup_path = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (input_path.empty()) {
    std::fprintf(
        stderr,
        "usage: %s --config FILE --input FILE [--repeat N] [--stages LIST] [--warmup FILE]\n",
        argv[0]);
    return 2;
  }
  const auto config = pqa::scorer::load_config(config_path);
  const pqa::rollup::Model model(config.model);
  const Input in = load(input_path);
  const Input warmup = warmup_path.empty() ? Input{} : load(warmup_path);
  std::printf("input: %zu events, %.1f MB", in.lines.size(),
              static_cast<double>(in.text.size()) / 1e6);
  if (!warmup_path.empty()) std::printf(" (after %zu warm-up events)", warmup.lines.size());
  std::printf("\n");
  // The allocator's huge pages change the stateful stages by up to a quarter (RESULTS §1).
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::printf("GLIBC_TUNABLES: %s\n", tunables != nullptr ? tunables : "(unset)");

  const std::vector<std::pair<std::string, std::function<StageRun()>>> all = {
      {"floor", [&] { return timed([&] { return floor_pass(in); }); }},
      {"decode", [&] { return timed([&] { return decode_pass(in, model); }); }},
      {"score", [&] { return score_pass(in, warmup, model, kReplayPadding); }},
      {"score-copy", [&] { return score_pass(in, warmup, model, pqa::rollup::Padding::kNone); }},
      {"replay", [&] { return replay_pass(in, warmup, model, config, true); }},
      {"replay-sync", [&] { return replay_pass(in, warmup, model, config, false); }},
  };
  std::set<std::string> wanted;
  for (std::istringstream list(stages); std::getline(list, stage, ',');) wanted.insert(stage);
  double floor_rate = 0;
  // Stages are interleaved round by round so that machine noise hits all of them alike;
  // each stage reports its best round.
  std::vector<double> best(all.size(), 0.0);
  for (int r = 0; r < repeat; ++r) {
    for (std::size_t s = 0; s < all.size(); ++s) {
      if (!wanted.contains(all[s].first)) continue;
      const StageRun run = all[s].second();
      const double rate = static_cast<double>(in.lines.size()) / run.seconds;
      best[s] = std::max(best[s], rate);
      std::fprintf(stderr, "  round %d %-11s %10.0f events/s (%llu)", r + 1, all[s].first.c_str(),
                   rate, static_cast<unsigned long long>(run.result));
      if (run.final_flush_seconds > 0)
        std::fprintf(stderr, ", final flush %.3f of %.3f s", run.final_flush_seconds, run.seconds);
      std::fprintf(stderr, "\n");
    }
  }
  for (std::size_t s = 0; s < all.size(); ++s) {
    if (best[s] == 0) continue;
    if (all[s].first == "floor") floor_rate = best[s];
    std::printf("%-11s %10.0f events/s", all[s].first.c_str(), best[s]);
    if (floor_rate > 0) std::printf("   %.3f x floor", best[s] / floor_rate);
    std::printf("\n");
  }
  return 0;
}
