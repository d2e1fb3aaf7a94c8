// Test helpers: Segment JSON builders and a scorer over an in-memory store.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "pqa/rollup/config.h"
#include "pqa/rollup/scoring.h"
#include "processor.h"
#include "state_codec.h"

namespace pqa::test {

using rollup::TimeMs;

/// 2026-03-02T00:00:00Z, a Monday, plus an offset.
constexpr TimeMs kT0 = 1772409600000;
constexpr TimeMs kHour = 3'600'000;
constexpr TimeMs kDay = rollup::kMsPerDay;

inline std::string ts(TimeMs t) {
  return rollup::format_timestamp(t);
}

inline std::string group(const std::string& user, const std::string& account, TimeMs t,
                         const std::string& traits = "{}") {
  return R"({"type":"group","userId":")" + user + R"(","groupId":")" + account +
         R"(","timestamp":")" + ts(t) + R"(","traits":)" + traits + "}";
}

inline std::string identify(const std::string& user, TimeMs t, const std::string& traits) {
  return R"({"type":"identify","userId":")" + user + R"(","timestamp":")" + ts(t) +
         R"(","traits":)" + traits + "}";
}

inline std::string track(const std::string& user, const std::string& event, TimeMs t,
                         const std::string& properties = "{}", const std::string& account = "") {
  std::string s = R"({"type":"track","userId":")" + user + R"(","event":")" + event +
                  R"(","timestamp":")" + ts(t) + R"(","properties":)" + properties;
  if (!account.empty()) s += R"(,"context":{"groupId":")" + account + R"("})";
  return s + "}";
}

/// The shipped model: config/scorer.yaml spells out exactly the built-in defaults (checked by
/// "the shipped config is the built-in defaults").
inline rollup::ModelConfig shipped_model_config() {
  return {};
}

class CollectingSink final : public scorer::SignalSink {
 public:
  void emit(const scorer::OutputSignal& s) override { signals.push_back(s); }
  std::vector<scorer::OutputSignal> signals;

  std::vector<scorer::OutputSignal> of_kind(rollup::SignalKind k) const {
    std::vector<scorer::OutputSignal> out;
    for (const auto& s : signals)
      if (s.signal.kind == k) out.push_back(s);
    return out;
  }
};

/// The real pipeline (decoder, identity resolution, core, timers, write-back caches) over an
/// in-memory store.
class Harness {
 public:
  explicit Harness(rollup::ModelConfig config = shipped_model_config(),
                   scorer::ProcessorOptions options = {})
      : model(std::move(config)),
        store(scorer::make_memory_store()),
        processor(model, *store, sink, options) {}

  /// Sends one message; fails the test if it is rejected.
  void send(const std::string& json);
  void send_all(const std::vector<std::string>& lines) {
    for (const auto& l : lines) send(l);
  }

  rollup::Score score(const std::string& account, TimeMs at) {
    auto state = processor.find_account(rollup::AccountId(account));
    return rollup::evaluate(model, state.value(), at);
  }
  rollup::Score score_now(const std::string& account) {
    return score(account, processor.watermark());
  }
  rollup::AccountState state(const std::string& account) {
    return processor.find_account(rollup::AccountId(account)).value();
  }
  /// A user's state as stored (the processor flushes its changes first).
  rollup::UserState user(const std::string& account, const std::string& user_id) {
    processor.flush();
    return scorer::decode_user(store->get(scorer::keys::user(account, user_id)).value()).value();
  }

  rollup::Model model;
  std::unique_ptr<scorer::StateStore> store;
  CollectingSink sink;
  scorer::Processor processor;
};

}  // namespace pqa::test
