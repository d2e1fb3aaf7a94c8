// The scoring pipeline shared by `replay` and the service: decode, resolve the account, load
// state, apply the model, emit signals, keep timers, write state back.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "json_output.h"
#include "pqa/rollup/config.h"
#include "pqa/rollup/event.h"
#include "pqa/rollup/scoring.h"
#include "state_codec.h"
#include "state_store.h"
#include "write_back_cache.h"

namespace pqa::scorer {

/// Where signals go (a file in replay, Kafka in the service).
class SignalSink {
 public:
  virtual ~SignalSink() = default;
  virtual void emit(const OutputSignal& signal) = 0;
};

struct ProcessorOptions {
  std::size_t account_cache_entries = 200'000;
  std::size_t user_cache_entries = 1'000'000;
  std::size_t identity_cache_entries = 1'000'000;
  /// Changed state is written to the store in one batch every this many events, or sooner
  /// when changed records evicted from the caches exceed max_pending_bytes. Rarer flushes
  /// coalesce more writes of hot accounts; the caches bound the memory either way.
  std::size_t flush_every_events = 1'000'000;
  std::size_t max_pending_bytes = 64u << 20;
  /// Whether the processor writes to its store by itself (flush_every_events, the pending
  /// bound). The streaming service turns it off: there state reaches the store only after
  /// the Kafka transaction that carries the same changes has committed (take_changes()).
  bool auto_flush = true;
  /// Event-time slack: timers fire once the largest event time seen, minus this, passes
  /// them, so that events up to this late are applied before a timer judges silence.
  rollup::TimeMs allowed_lateness_ms = 0;
};

struct ProcessorStats {
  std::uint64_t processed = 0;  ///< valid events applied (ignored call types included)
  /// Applied events by call type: track, identify, group (CallType order).
  std::array<std::uint64_t, 3> processed_by_type{};
  std::uint64_t ignored = 0;  ///< page / screen / alias
  std::uint64_t rejected = 0;
  std::array<std::uint64_t, rollup::kDecodeErrorCount> rejected_by_reason{};
  std::uint64_t signals = 0;
  std::uint64_t timers_fired = 0;
  std::uint64_t flushes = 0;
};

/// Owns the scoring of one stream (one partition in the service).
///
/// Time: the processor's clock is the watermark, the largest event time seen (the service
/// later subtracts an allowed lateness). Events later than the watermark advance it first,
/// firing every timer due on the way, in due order; a late event is applied at the watermark
/// (it still counts, decayed by its age). Timers are one per account, lazily rescheduled.
///
/// Single-threaded: one thread calls every method. (take_changes() encodes a large batch on a
/// helper thread too, joined before it returns.)
class Processor {
 public:
  Processor(const rollup::Model& model, StateStore& store, SignalSink& sink,
            ProcessorOptions options = {});

  /// Processes one message. Returns why it was rejected, if it was; a rejected message
  /// changes no state. `fallback_cause` identifies the input for signal ids when the event has
  /// no messageId (e.g. "topic/partition/offset"); empty: a hash of the message bytes.
  /// `padding`: whether the message may be parsed in place (rollup::EventDecoder).
  std::optional<rollup::DecodeFailure> process(std::string_view message,
                                               std::string_view fallback_cause = {},
                                               rollup::Padding padding = rollup::Padding::kNone);

  /// Moves the clock to `t`, firing every timer due at or before it.
  void advance_to(rollup::TimeMs t);
  /// Writes every changed record (and the clock) to the store in one batch, and returns once
  /// the store has it (the processor's own periodic flushes may use commit_in_background).
  void flush();
  /// Every changed record (and the clock) since the last call, in key order, each key once;
  /// the caches count them as written. The caller must write them to the store (after
  /// making them durable elsewhere first, as the service does with its changelog) before
  /// calling process() again.
  WriteSet take_changes();
  /// The same, and calls `changed_account(account_id, state)` for every account among the
  /// changes (on this thread, before take_changes returns): the service derives each changed
  /// account's score record from the state in memory instead of decoding the record again.
  /// If the visitor throws, the processor must not be used again (its changes are half taken):
  /// the service rebuilds it from the store (rewind) or stops.
  using ChangedAccountVisitor =
      std::function<void(std::string_view account_id, const rollup::AccountState& state)>;
  WriteSet take_changes(const ChangedAccountVisitor& changed_account);
  /// Whether changes evicted from the caches exceed their byte bound (take them soon).
  bool changes_over_bound() const;

  /// Events later than `t` are refused as too far ahead whatever the watermark, so that the
  /// first event of a partition, which has no watermark to be judged against, is bounded too.
  /// The service sets the wall clock plus decoder.max_clock_jump_days each loop turn; replay
  /// sets none (kNoTime), as its input may be any period.
  void set_time_ceiling(rollup::TimeMs t) { time_ceiling_ = t; }

  /// The processor's clock: timers up to it have fired (largest event time - lateness).
  rollup::TimeMs watermark() const { return watermark_; }
  /// The largest event time seen.
  rollup::TimeMs max_event_time() const { return max_event_time_; }
  const ProcessorStats& stats() const { return stats_; }
  /// Accounts with a registered timer.
  std::size_t pending_timers() const { return live_timers_; }

  /// The current state of one account (cache or store); nullopt if it has none.
  std::optional<rollup::AccountState> find_account(const rollup::AccountId& id);

  /// Visits every stored account in ascending id order (flushes first).
  void for_each_account(
      const std::function<void(const rollup::AccountId&, const rollup::AccountState&)>& fn);

 private:
  struct AccountCodec {
    static std::string encode(const StoredAccount& a) { return scorer::encode(a); }
    static std::optional<StoredAccount> decode(std::string_view b) { return decode_account(b); }
  };
  struct UserCodec {
    static std::string encode(const rollup::UserState& u) { return scorer::encode(u); }
    static std::optional<rollup::UserState> decode(std::string_view b) { return decode_user(b); }
  };
  struct IdentityCodec {
    static std::string encode(const Identity& i) { return scorer::encode(i); }
    static std::optional<Identity> decode(std::string_view b) { return decode_identity(b); }
  };

  /// What triggered a transition, for signal ids; turned into text only when a signal fires.
  struct Cause {
    std::string_view message_id;
    std::string_view fallback;
    std::string_view message;
    std::string text() const;
  };

  std::optional<rollup::AccountId> resolve_account(const rollup::Event& e);
  /// Why a decoded event cannot be applied (no account, too far ahead of the clock), if so.
  std::optional<rollup::DecodeFailure> check_admissible(const rollup::Event& e,
                                                        bool account_resolved) const;
  void remember_identity(const rollup::Event& e);
  void apply(const rollup::Event& e, const rollup::AccountId& account, const Cause& cause);
  void fire_timer(rollup::TimeMs due, const std::string& account_id);
  void handle(const rollup::AccountId& account, const std::string& key, StoredAccount& stored,
              rollup::Outcome&& outcome, const Cause& cause);
  void schedule(const std::string& account_id, StoredAccount& stored, rollup::TimeMs due);
  void restore();
  /// Brings a record written under another (or an unknown) model to this one: fit and
  /// segment derived again, and with `reevaluate` a timer at the clock (see restore()).
  void rederive(StoredAccount& stored, bool reevaluate) const;
  /// Names this model in a changed record that names none yet.
  void stamp_model(StoredAccount& stored) const;
  /// Asks the CPU for the first cache line of each of the account's vectors.
  static void prefetch_parts(const rollup::AccountState& a);
  /// Flushes when N events have passed or evicted changes exceed their byte bound.
  void flush_if_due();
  void reject(rollup::DecodeError code);

  const rollup::Model& model_;
  StateStore& store_;
  SignalSink& sink_;
  ProcessorOptions options_;
  rollup::EventDecoder decoder_;
  rollup::Event event_;  ///< the event being processed, reused from message to message
  WriteBackCache<StoredAccount, AccountCodec> accounts_;
  WriteBackCache<rollup::UserState, UserCodec> users_;
  WriteBackCache<Identity, IdentityCodec> identities_;
  /// Min-heap of (due, account id), earliest first; ties fire in account id order. Deletion is
  /// lazy: a registration an account has replaced stays until it is popped, and is skipped then
  /// because the account's timer_due no longer matches (fire_timer). A heap on a vector costs
  /// no node allocation per timer, unlike an ordered set.
  using TimerEntry = std::pair<rollup::TimeMs, std::string>;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers_;
  std::size_t live_timers_ = 0;
  // Reused key buffers: building a key allocates nothing once they have grown.
  std::string account_key_, user_key_, identity_key_;
  rollup::TimeMs watermark_ = rollup::kNoTime;
  rollup::TimeMs time_ceiling_ = rollup::kNoTime;
  rollup::TimeMs max_event_time_ = rollup::kNoTime;
  std::uint64_t since_flush_ = 0;
  ProcessorStats stats_;
};

/// Deterministic signal id: a 128-bit hash (hex) of everything that makes the signal unique.
std::string make_signal_id(const std::string& model_version, const rollup::AccountId& account,
                           const rollup::Signal& signal, std::string_view cause);

}  // namespace pqa::scorer
