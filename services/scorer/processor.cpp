#include "processor.h"

#include <algorithm>
#include <future>
#include <iterator>

#include "pqa/rollup/hash.h"

namespace pqa::scorer {

using rollup::AccountId;
using rollup::TimeMs;

namespace {
/// From this many changed account and user records on, take_changes() encodes on two threads.
constexpr std::size_t kParallelCollectMinRecords = 20'000;
}  // namespace

std::string make_signal_id(const std::string& model_version, const AccountId& account,
                           const rollup::Signal& signal, std::string_view cause) {
  std::string material = model_version;
  material.push_back('\x1f');
  material.append(account.str()).push_back('\x1f');
  material.append(rollup::to_string(signal.kind)).push_back('\x1f');
  material.append(std::to_string(signal.event_time)).push_back('\x1f');
  material.append(cause).push_back('\x1f');
  material.append(rollup::to_string(signal.previous_band)).push_back('>');
  material.append(rollup::to_string(signal.score.band)).push_back('\x1f');
  material.append(rollup::to_string(signal.score.pattern)).push_back('\x1f');
  material.append(signal.department);
  // Only for the kind that has one, so that the ids of the other kinds stay as they were.
  if (signal.kind == rollup::SignalKind::kRoutingChanged)
    material.append("\x1f")
        .append(rollup::to_string(signal.previous_routing))
        .append(">")
        .append(rollup::to_string(signal.score.routing));
  std::string id;
  id.reserve(32);
  rollup::detail::append_hex(id, rollup::detail::mix64(rollup::detail::fnv1a64(material, 1)));
  rollup::detail::append_hex(id, rollup::detail::mix64(rollup::detail::fnv1a64(material, 2)));
  return id;
}

Processor::Processor(const rollup::Model& model, StateStore& store, SignalSink& sink,
                     ProcessorOptions options)
    : model_(model),
      store_(store),
      sink_(sink),
      options_(options),
      decoder_(model),
      accounts_(store, options.account_cache_entries),
      users_(store, options.user_cache_entries),
      identities_(store, options.identity_cache_entries) {
  restore();
}

void Processor::restore() {
  watermark_ = read_meta_integer(store_, "watermark", "a time").value_or(rollup::kNoTime);
  max_event_time_ = read_meta_integer(store_, "max_event_time", "a time").value_or(watermark_);
  // State written under other model parameters keeps its history, but what the parameters
  // derive from traits (fit, segment) is recomputed, and the account is re-evaluated at the
  // clock by a timer, so that band changes the new parameters imply are published. Each record
  // names its model; records of earlier builds do not, and the store's metadata decides.
  const auto store_version = store_.get(keys::meta("model_version"));
  const bool store_model_changed = store_version.has_value() && *store_version != model_.version();
  WriteSet rewritten;
  // Timers are one per account and stored with it; rebuilding the queue is one scan at start.
  store_.scan(std::string(1, keys::kAccount), [&](std::string_view key, std::string_view value) {
    auto stored = decode_account(value);
    if (!stored)
      throw StoreError("corrupt account record during restore: account '" +
                       rollup::quote_input(key.substr(1)) + "'");
    const bool stale = stored->model_version.empty() ? store_model_changed
                                                     : stored->model_version != model_.version();
    // Naming no model in a store that names none either (restored from a changelog written
    // by a build before the name): which model derived it is unknown, so what the traits
    // give is derived again (the same values, if the model is the same), without a timer.
    const bool unknown = stored->model_version.empty() && !store_version.has_value();
    if (stale || unknown) {
      rederive(*stored, /*reevaluate=*/stale);
      rewritten.puts.emplace_back(std::string(key), encode(*stored));
      if (rewritten.puts.size() >= 10'000) {  // bounded memory however many accounts
        store_.commit(rewritten);
        rewritten = {};
      }
    }
    if (stored->timer_due != rollup::kNever) {
      timers_.emplace(stored->timer_due, std::string(key.substr(1)));
      ++live_timers_;
    }
  });
  rewritten.puts.emplace_back(keys::meta("model_version"), model_.version());
  store_.commit(rewritten);
}

void Processor::rederive(StoredAccount& stored, bool reevaluate) const {
  // The local rewrite is not in any transaction, and need not be: the changelog keeps the
  // record under its old model, so a store restored from it is re-derived the same way, and the
  // timer below makes the account's next changelog record carry the current model.
  rollup::refresh_trait_derived(model_, stored.state);
  if (reevaluate && watermark_ != rollup::kNoTime)
    stored.timer_due = std::min(stored.timer_due, watermark_);
  stored.model_version = model_.version();
}

void Processor::stamp_model(StoredAccount& stored) const {
  // Every record in memory is under this model (restore() re-derived the others): new ones,
  // and those of builds before the field, get its name with their first change.
  if (stored.model_version.empty()) stored.model_version = model_.version();
}

void Processor::reject(rollup::DecodeError code) {
  ++stats_.rejected;
  ++stats_.rejected_by_reason[static_cast<std::size_t>(code)];
}

std::optional<rollup::DecodeFailure> Processor::process(std::string_view message,
                                                        std::string_view fallback_cause,
                                                        rollup::Padding padding) {
  rollup::Event& e = event_;  // reused: decoding allocates nothing once its buffers have grown
  if (auto failure = decoder_.decode_into(message, e, padding)) {
    reject(failure->code);
    return failure;
  }
  if (e.type == rollup::CallType::kIgnored) {
    ++stats_.processed;
    ++stats_.ignored;
    return std::nullopt;
  }
  auto account = resolve_account(e);
  if (auto failure = check_admissible(e, account.has_value())) {
    reject(failure->code);
    return failure;
  }
  if (max_event_time_ == rollup::kNoTime || e.timestamp > max_event_time_) {
    max_event_time_ = e.timestamp;
    advance_to(e.timestamp - options_.allowed_lateness_ms);
  }

  if (e.type == rollup::CallType::kGroup) remember_identity(e);
  apply(e, *account, Cause{e.message_id, fallback_cause, message});
  ++stats_.processed;
  ++stats_.processed_by_type[static_cast<std::size_t>(e.type)];
  ++since_flush_;
  flush_if_due();
  return std::nullopt;
}

std::optional<rollup::DecodeFailure> Processor::check_admissible(const rollup::Event& e,
                                                                 bool account_resolved) const {
  if (!account_resolved)
    return rollup::DecodeFailure{rollup::DecodeError::kUnresolvedAccount,
                                 "no groupId, and user '" + rollup::quote_input(e.user.str()) +
                                     "' was never tied to an account by a group call"};
  const auto jump_days = model_.config().decoder.max_clock_jump_days;
  // The stream's clock: its newest event, or where an idle advance moved the watermark past
  // it (a partition silent for weeks must accept today's events). Not the watermark alone,
  // which trails the newest event by the allowed lateness.
  const rollup::TimeMs clock = std::max(max_event_time_, watermark_);
  if (jump_days > 0 && clock != rollup::kNoTime &&
      e.timestamp > clock + jump_days * rollup::kMsPerDay)
    return rollup::DecodeFailure{rollup::DecodeError::kTooFarAhead,
                                 "timestamp " + rollup::format_timestamp(e.timestamp) +
                                     " is more than " + std::to_string(jump_days) +
                                     " days ahead of the stream's clock " +
                                     rollup::format_timestamp(clock)};
  if (time_ceiling_ != rollup::kNoTime && e.timestamp > time_ceiling_)
    return rollup::DecodeFailure{rollup::DecodeError::kTooFarAhead,
                                 "timestamp " + rollup::format_timestamp(e.timestamp) +
                                     " is more than " + std::to_string(jump_days) +
                                     " days ahead of the wall clock"};
  return std::nullopt;
}

bool Processor::changes_over_bound() const {
  return accounts_.pending_bytes() + users_.pending_bytes() + identities_.pending_bytes() >
         options_.max_pending_bytes;
}

void Processor::flush_if_due() {
  if (!options_.auto_flush || (since_flush_ < options_.flush_every_events && !changes_over_bound()))
    return;
  // A store that can (BackgroundWriteStore) writes the batch while scoring goes on.
  store_.commit_in_background(take_changes());
  ++stats_.flushes;
}

std::optional<AccountId> Processor::resolve_account(const rollup::Event& e) {
  if (!e.explicit_account.empty()) return e.explicit_account;
  keys::identity(identity_key_, e.user.str());
  if (const Identity* id = identities_.get(identity_key_)) return id->account;
  return std::nullopt;
}

void Processor::remember_identity(const rollup::Event& e) {
  keys::identity(identity_key_, e.user.str());
  const std::string& key = identity_key_;
  Identity* current = identities_.get(key);
  if (current == nullptr) {
    identities_.insert(key, Identity{e.explicit_account, e.timestamp});
  } else if (rollup::later_call_wins(e.timestamp, e.explicit_account, current->as_of,
                                     current->account)) {
    *current = Identity{e.explicit_account, e.timestamp};  // the latest group call wins
    identities_.mark_dirty(key);
  }
}

std::string Processor::Cause::text() const {
  if (!message_id.empty()) return std::string(message_id);
  if (!fallback.empty()) return std::string(fallback);
  std::string hashed = "fnv:";
  rollup::detail::append_hex(hashed, rollup::detail::fnv1a64(message));
  return hashed;
}

void Processor::apply(const rollup::Event& e, const AccountId& account, const Cause& cause) {
  keys::account(account_key_, account.str());
  keys::user(user_key_, account.str(), e.user.str());
  // Once the state outgrows the CPU caches each step of a lookup is a cache miss: the user's
  // index slot is asked for before the account's lookup, and the account's vectors before the
  // user's lookup, so that their misses overlap those lookups instead of following them.
  const auto user_key = users_.prefetch(user_key_);
  const std::string& account_key = account_key_;
  StoredAccount& stored = accounts_.get_or_add(account_key).value;
  prefetch_parts(stored.state);
  // With allowed lateness the watermark trails the newest event, so this account's timers may
  // be due before this event and not fired yet. They fire first, in turn, as without lateness
  // (each firing registers the next, which may be due before the event too): the event moves
  // the account's clock past them, and applied first would hide what they find (a silent
  // account's crossings down). Each firing moves the account's clock forward, so this ends.
  while (stored.timer_due != rollup::kNever && stored.timer_due <= e.timestamp)
    fire_timer(stored.timer_due, account.str());
  stamp_model(stored);
  auto user = users_.get_or_add(user_key);
  auto outcome = rollup::apply_event(model_, stored.state, user.value, user.added, e, watermark_);
  handle(account, account_key, stored, std::move(outcome), cause);
}

void Processor::prefetch_parts(const rollup::AccountState& a) {
  __builtin_prefetch(a.buckets.data());
  __builtin_prefetch(a.department_days.data());
  __builtin_prefetch(a.seat_deltas.data());
}

void Processor::handle(const AccountId& account, const std::string& key, StoredAccount& stored,
                       rollup::Outcome&& outcome, const Cause& cause) {
  const std::string cause_text = outcome.signals.empty() ? std::string() : cause.text();
  for (auto& signal : outcome.signals) {
    OutputSignal out{make_signal_id(model_.version(), account, signal, cause_text), account,
                     std::move(signal)};
    sink_.emit(out);
    ++stats_.signals;
  }
  // Lazy timers: a later due time keeps the earlier registration, which fires, re-evaluates and
  // re-registers. That keeps the timer set to one write per account in the common case.
  if (stored.timer_due == rollup::kNever || outcome.next_timer < stored.timer_due)
    schedule(key.substr(1), stored, outcome.next_timer);
}

void Processor::schedule(const std::string& account_id, StoredAccount& stored, TimeMs due) {
  // The earlier registration, if any, stays in the heap and is skipped when popped.
  if (stored.timer_due != rollup::kNever) --live_timers_;
  stored.timer_due = due;
  if (due != rollup::kNever) {
    timers_.emplace(due, account_id);
    ++live_timers_;
  }
}

void Processor::advance_to(TimeMs t) {
  while (!timers_.empty() && timers_.top().first <= t) {
    auto [due, account_id] = timers_.top();
    timers_.pop();
    fire_timer(due, account_id);
    flush_if_due();  // a long jump fires many timers: keep evicted changes within their bound
  }
  if (watermark_ == rollup::kNoTime || t > watermark_) watermark_ = t;
}

void Processor::fire_timer(TimeMs due, const std::string& account_id) {
  keys::account(account_key_, account_id);
  const std::string& key = account_key_;
  StoredAccount* stored = accounts_.get(key);
  if (stored == nullptr || stored->timer_due != due) return;  // superseded registration
  accounts_.mark_dirty(key);
  stamp_model(*stored);
  stored->timer_due = rollup::kNever;
  --live_timers_;
  ++stats_.timers_fired;
  auto outcome = rollup::advance(model_, stored->state, due);
  handle(AccountId(account_id), key, *stored, std::move(outcome), Cause{{}, "timer", {}});
}

WriteSet Processor::take_changes() {
  return take_changes(ChangedAccountVisitor{});
}

WriteSet Processor::take_changes(const ChangedAccountVisitor& changed_account) {
  // Key order lets RocksDB's memtable reuse its insertion point from one key to the next, and
  // a large sorted batch can be ingested as a table file. Each cache hands over its changes
  // sorted; taken in the order of their keyspaces (accounts, identities, meta, users) the
  // batch is sorted as a whole without sorting it again.
  static_assert(keys::kAccount < keys::kIdentity && keys::kIdentity < keys::kMeta &&
                keys::kMeta < keys::kUser);
  WriteSet writes;
  // A large batch (replay's flushes, hundreds of thousands of records) is encoded on two
  // cores: the users' records on a helper thread, the rest here. The caches are separate
  // objects and encoding reads only its own records, so nothing is shared but the allocator.
  // The per-transaction batches of the service stay on this thread (a thread start would
  // cost more than it saves). Measured on 430,000-460,000 records: 0.25-0.38 s against
  // 0.32-0.48 s with one thread and one sort of the whole batch (bench/RESULTS.md §2).
  WriteSet user_writes;
  std::future<void> users_collected;
  if (accounts_.changed() + users_.changed() >= kParallelCollectMinRecords)
    users_collected = std::async(std::launch::async,
                                 [this, &user_writes] { users_.collect_writes(user_writes); });
  if (changed_account)
    accounts_.collect_writes(writes, [&](std::string_view key, const StoredAccount& stored) {
      changed_account(key.substr(1), stored.state);
    });
  else
    accounts_.collect_writes(writes);
  identities_.collect_writes(writes);
  if (watermark_ != rollup::kNoTime) {
    writes.puts.emplace_back(keys::meta("max_event_time"), std::to_string(max_event_time_));
    writes.puts.emplace_back(keys::meta("watermark"), std::to_string(watermark_));
  }
  if (users_collected.valid()) {
    users_collected.get();  // rethrows what the helper threw
    writes.puts.reserve(writes.puts.size() + user_writes.puts.size());
    std::move(user_writes.puts.begin(), user_writes.puts.end(), std::back_inserter(writes.puts));
  } else {
    users_.collect_writes(writes);
  }
  since_flush_ = 0;
  return writes;
}

void Processor::flush() {
  store_.commit(take_changes());
  ++stats_.flushes;
}

std::optional<rollup::AccountState> Processor::find_account(const AccountId& id) {
  if (const StoredAccount* stored = accounts_.get(keys::account(id.str()))) return stored->state;
  return std::nullopt;
}

void Processor::for_each_account(
    const std::function<void(const AccountId&, const rollup::AccountState&)>& fn) {
  flush();
  store_.scan(std::string(1, keys::kAccount), [&](std::string_view key, std::string_view value) {
    auto stored = decode_account(value);
    if (!stored) throw StoreError("corrupt account record");
    fn(AccountId(std::string(key.substr(1))), stored->state);
  });
}

}  // namespace pqa::scorer
