#include "relay_dispatch.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace pqa::scorer::relay {

AttemptClass classify(const AttemptResult& r) {
  if (r.status == 0) return AttemptClass::kTransportError;
  if (r.status >= 200 && r.status < 300)
    return r.partial_failure ? AttemptClass::kRetryable : AttemptClass::kSuccess;
  if (r.status == 410) return AttemptClass::kGone;
  if (r.status == 429 || r.status == 502 || r.status == 504) return AttemptClass::kSlowDown;
  // Authentication (a token being rotated), timeouts, conflicts and "too early" may pass
  // on a later try; any other 4xx, and redirects (a webhook URL must be exact), will not.
  if (r.status == 401 || r.status == 403 || r.status == 408 || r.status == 409 || r.status == 425)
    return AttemptClass::kRetryable;
  if ((r.status >= 300 && r.status < 500)) return AttemptClass::kPermanent;
  return AttemptClass::kRetryable;
}

const char* to_string(AttemptClass c) {
  switch (c) {
    case AttemptClass::kSuccess:
      return "success";
    case AttemptClass::kPermanent:
      return "rejected";
    case AttemptClass::kGone:
      return "gone";
    case AttemptClass::kSlowDown:
      return "slow_down";
    case AttemptClass::kRetryable:
      return "retryable_error";
    case AttemptClass::kTransportError:
      return "transport_error";
  }
  return "unknown";
}

namespace {

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

}  // namespace

std::optional<TimeMs> parse_retry_after(std::string_view value, TimeMs now_unix_ms) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  constexpr std::int64_t kMaxSeconds = 365LL * 86400;  // a longer pause is a broken header
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::uint64_t seconds = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range) return kMaxSeconds * 1000;  // all digits: huge
    if (ec != std::errc() || ptr != value.data() + value.size()) return std::nullopt;
    return static_cast<std::int64_t>(std::min<std::uint64_t>(seconds, kMaxSeconds)) * 1000;
  }
  // An HTTP date in any of the three forms RFC 9110 says recipients must read. Field widths
  // keep sscanf's conversions within an int (an overlong number no longer matches).
  char weekday[10] = {}, month[4] = {}, zone[4] = {};
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  const std::string text(value);
  const char* c = text.c_str();
  if (std::sscanf(c, "%3s, %2d %3s %4d %2d:%2d:%2d %3s", weekday, &day, month, &year, &hour,
                  &minute, &second, zone) == 8) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  } else if (std::sscanf(c, "%9[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d %3s", weekday, &day, month, &year,
                         &hour, &minute, &second, zone) == 8) {
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT". A two-digit year more than 50 years ahead
    // is the last such year in the past.
    const std::int64_t this_year = 1970 + now_unix_ms / (31'556'952LL * 1000);
    year += 2000;
    if (year > this_year + 50) year -= 100;
  } else if (std::sscanf(c, "%3s %3s %2d %2d:%2d:%2d %4d", weekday, month, &day, &hour, &minute,
                         &second, &year) == 7) {
    // asctime: "Sun Nov  6 08:49:37 1994", in GMT by definition
    std::strcpy(zone, "GMT");
  } else {
    return std::nullopt;
  }
  if (std::strcmp(zone, "GMT") != 0) return std::nullopt;
  if (year < 1970 || hour < 0 || minute < 0 || second < 0) return std::nullopt;
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  unsigned m = 0;
  for (unsigned i = 0; i < 12; ++i)
    if (std::strcmp(month, kMonths[i]) == 0) m = i + 1;
  if (m == 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const std::int64_t at_ms =
      ((days_from_civil(year, m, static_cast<unsigned>(day)) * 24 + hour) * 60 + minute) * 60'000 +
      second * 1000LL;
  return std::clamp<TimeMs>(at_ms - now_unix_ms, 0, kMaxSeconds * 1000);
}

// --- EndpointQueue ------------------------------------------------------------------------

EndpointQueue::EndpointQueue(EndpointPolicy policy, std::uint64_t jitter_seed)
    : policy_(std::move(policy)), rng_(jitter_seed) {
  if (policy_.max_records < 1) policy_.max_records = 1;
  if (policy_.max_in_flight < 1) policy_.max_in_flight = 1;
}

std::vector<Finished> EndpointQueue::enqueue(SignalPtr signal, TimeMs now) {
  if (disabled_) return {Finished{{std::move(signal)}, Finish::kDeadLettered, disabled_reason_, 0}};
  const std::string& id = signal->account_id;
  Account& account = accounts_[id];
  ++queued_signals_;
  // The newest item is still waiting unless it is the one in flight.
  const bool last_waiting =
      !account.items.empty() && !(account.in_flight && account.items.size() == 1);
  if (policy_.coalesce && last_waiting) {
    account.items.back().signals.push_back(std::move(signal));
    return {};
  }
  Item item;
  // Its age counts from when the scorer emitted it, not from this read: a relay restarted
  // (or a partition moved) within the retry schedule would otherwise restart the clock of
  // max_age for good, and a signal never deliverable would hold its partition's offset.
  item.enqueued_at = now - std::max<TimeMs>(0, signal->age_when_read_ms);
  item.not_before = now;
  item.signals.push_back(std::move(signal));
  account.items.push_back(std::move(item));
  schedule(id, account, now);
  return {};
}

void EndpointQueue::schedule(const std::string& id, Account& account, TimeMs now) {
  if (account.items.empty() || account.in_flight || account.scheduled) return;
  const TimeMs at = account.items.front().not_before;
  if (at <= now)
    ready_.push_back(id);
  else
    delayed_.emplace(at, id);
  account.scheduled = true;
}

void EndpointQueue::promote_due(TimeMs now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    ready_.push_back(std::move(delayed_.begin()->second));
    delayed_.erase(delayed_.begin());
  }
}

double EndpointQueue::effective_rate() const {
  return policy_.rate_limit.requests * slow_factor_;
}

void EndpointQueue::refill_tokens(TimeMs now) {
  if (policy_.rate_limit.requests <= 0) return;
  // Tokens flow in at the rate, fractions included (0.5 a second: one request every 2 s); the
  // bucket holds at least one, so that a request can ever go.
  const double rate = effective_rate();
  const double capacity = std::max(1.0, rate);
  if (tokens_at_ < 0) {
    tokens_ = capacity;
  } else if (now > tokens_at_) {
    tokens_ += double(now - tokens_at_) * rate / double(policy_.rate_limit.per_ms);
  }
  tokens_ = std::min(tokens_, capacity);
  tokens_at_ = std::max(tokens_at_, now);
}

bool EndpointQueue::slot_free(TimeMs now) const {
  if (disabled_ || now < paused_until_) return false;
  if (breaker_tripped_) {
    if (now < open_until_) return false;
    return !probe_in_flight_ && in_flight_.empty();  // half-open: one probe at a time
  }
  const int limit = std::max(1, static_cast<int>(std::floor(policy_.max_in_flight * slow_factor_)));
  if (static_cast<int>(in_flight_.size()) >= limit) return false;
  return policy_.rate_limit.requests <= 0 || tokens_ >= 1.0;
}

std::optional<Batch> EndpointQueue::take_batch(TimeMs now) {
  promote_due(now);
  refill_tokens(now);
  if (ready_.empty() || !slot_free(now)) return std::nullopt;
  Batch batch;
  batch.id = next_batch_id_;
  InFlight flight;
  while (!ready_.empty() && batch.signals.size() < policy_.max_records) {
    std::string id = std::move(ready_.front());
    ready_.pop_front();
    auto it = accounts_.find(id);
    // Stale entries: forgotten accounts, duplicates, or an entry older than the account's
    // current schedule.
    if (it == accounts_.end() || !it->second.scheduled || it->second.in_flight ||
        it->second.items.empty() || it->second.items.front().not_before > now)
      continue;
    Account& account = it->second;
    account.scheduled = false;
    account.in_flight = true;
    account.batch = batch.id;
    const Item& head = account.items.front();
    batch.signals.push_back(head.signals.back());
    batch.attempt = std::max(batch.attempt, head.attempts + 1);
    flight.accounts.push_back(std::move(id));
  }
  if (batch.signals.empty()) return std::nullopt;
  if (policy_.rate_limit.requests > 0) tokens_ -= 1.0;
  if (breaker_tripped_) probe_in_flight_ = true;
  ++next_batch_id_;
  in_flight_.emplace(batch.id, std::move(flight));
  return batch;
}

TimeMs EndpointQueue::retry_after_capped(TimeMs retry_after) const {
  // No signal waits longer than max_age: a longer pause would only outlive them all.
  return std::clamp<TimeMs>(retry_after, 0, policy_.retry.max_age_ms);
}

TimeMs EndpointQueue::retry_delay(const Item& item, const AttemptResult& result) {
  if (result.retry_after_ms) return retry_after_capped(*result.retry_after_ms);
  const auto& schedule = policy_.retry.schedule_ms;
  if (schedule.empty()) return 0;
  const std::size_t step = std::min<std::size_t>(
      static_cast<std::size_t>(std::max(item.attempts, 1) - 1), schedule.size() - 1);
  const double u = std::uniform_real_distribution<double>(-1.0, 1.0)(rng_);
  return static_cast<TimeMs>(double(schedule[step]) * (1.0 + policy_.retry.jitter * u));
}

void EndpointQueue::on_breaker_result(bool success, TimeMs now) {
  if (success) {
    consecutive_failures_ = 0;
    breaker_tripped_ = false;
    open_until_ = 0;
    return;
  }
  ++consecutive_failures_;
  if (breaker_tripped_ || consecutive_failures_ >= policy_.breaker.failure_threshold) {
    breaker_tripped_ = true;
    open_until_ = now + policy_.breaker.open_ms;
  }
}

namespace {

/// An item's signals as finished: the older ones superseded by the last, which has `outcome`.
void finish_item(std::vector<SignalPtr> signals, Finish outcome, std::string error, int attempts,
                 std::vector<Finished>& out) {
  if (signals.empty()) return;  // forgotten while in flight: no longer this relay's to finish
  if (signals.size() > 1) {
    Finished older{{}, Finish::kSuperseded, {}, attempts};
    older.signals.assign(signals.begin(), signals.end() - 1);
    out.push_back(std::move(older));
  }
  out.push_back(Finished{{signals.back()}, outcome, std::move(error), attempts});
}

}  // namespace

void EndpointQueue::fail_item(const std::string& id, Account& account, const AttemptResult& result,
                              AttemptClass cls, TimeMs now, std::vector<Finished>& out) {
  Item& item = account.items.front();
  ++item.attempts;
  item.last_error = result.error;
  if (policy_.coalesce && account.items.size() >= 2 && cls != AttemptClass::kPermanent) {
    // A newer update waits: it replaces this one, inheriting its attempts and age so that a
    // busy account on a failing endpoint still reaches the dead letter in time. Not after a
    // refusal: that says this request was wrong, not the newer one, which gets its own try.
    Item& newer = account.items[1];
    newer.signals.insert(newer.signals.begin(), item.signals.begin(), item.signals.end());
    newer.attempts = item.attempts;
    newer.enqueued_at = item.enqueued_at;
    newer.last_error = item.last_error;
    account.items.pop_front();
  }
  Item& head = account.items.front();
  const bool exhausted = head.attempts >= policy_.retry.max_attempts ||
                         now - head.enqueued_at >= policy_.retry.max_age_ms;
  if (cls == AttemptClass::kPermanent || exhausted) {
    queued_signals_ -= head.signals.size();
    std::string error =
        head.last_error + (cls == AttemptClass::kPermanent
                               ? " (not retried: the request was refused)"
                               : " (after " + std::to_string(head.attempts) + " attempts)");
    finish_item(std::move(head.signals), Finish::kDeadLettered, std::move(error), head.attempts,
                out);
    account.items.pop_front();
  } else {
    head.not_before =
        std::min(now + retry_delay(head, result), head.enqueued_at + policy_.retry.max_age_ms);
  }
  account.in_flight = false;
  schedule(id, account, now);
  erase_if_idle(id);
}

void EndpointQueue::disable(std::string reason, std::vector<Finished>& out) {
  disabled_ = true;
  disabled_reason_ = std::move(reason);
  for (auto& [id, account] : accounts_)
    for (Item& item : account.items)
      finish_item(std::move(item.signals), Finish::kDeadLettered, disabled_reason_, item.attempts,
                  out);
  accounts_.clear();
  ready_.clear();
  delayed_.clear();
  in_flight_.clear();
  queued_signals_ = 0;
}

void EndpointQueue::erase_if_idle(const std::string& id) {
  auto it = accounts_.find(id);
  if (it != accounts_.end() && it->second.items.empty() && !it->second.in_flight)
    accounts_.erase(it);
}

std::vector<Finished> EndpointQueue::complete(std::uint64_t batch_id, const AttemptResult& result,
                                              TimeMs now) {
  std::vector<Finished> out;
  auto flight = in_flight_.find(batch_id);
  if (flight == in_flight_.end()) return out;
  const std::vector<std::string> ids = std::move(flight->second.accounts);
  in_flight_.erase(flight);
  probe_in_flight_ = false;
  const AttemptClass cls = classify(result);
  if (cls == AttemptClass::kGone) {
    // The receiver says this endpoint no longer exists: stop sending, dead-letter the rest.
    disable("endpoint disabled: " + result.error, out);
    return out;
  }
  if (cls == AttemptClass::kSuccess) {
    on_breaker_result(true, now);
    slow_factor_ = std::min(1.0, slow_factor_ + 1.0 / 16);
  } else if (cls != AttemptClass::kPermanent) {
    on_breaker_result(false, now);
  }
  if (cls == AttemptClass::kSlowDown) {
    slow_factor_ = std::max(1.0 / 64, slow_factor_ / 2);
    if (result.retry_after_ms)
      paused_until_ = std::max(paused_until_, now + retry_after_capped(*result.retry_after_ms));
  }
  for (const std::string& id : ids) {
    auto it = accounts_.find(id);
    if (it == accounts_.end() || !it->second.in_flight || it->second.batch != batch_id) continue;
    Account& account = it->second;
    if (account.items.front().signals.empty()) {  // forgotten while in flight
      account.items.pop_front();
      account.in_flight = false;
      schedule(id, account, now);
      erase_if_idle(id);
      continue;
    }
    if (cls != AttemptClass::kSuccess) {
      fail_item(id, account, result, cls, now, out);
      continue;
    }
    Item& head = account.items.front();
    queued_signals_ -= head.signals.size();
    finish_item(std::move(head.signals), Finish::kDelivered, {}, head.attempts + 1, out);
    account.items.pop_front();
    account.in_flight = false;
    schedule(id, account, now);
    erase_if_idle(id);
  }
  return out;
}

std::optional<TimeMs> EndpointQueue::next_wakeup(TimeMs now) const {
  if (disabled_) return std::nullopt;
  std::optional<TimeMs> at;
  if (!ready_.empty())
    at = now;
  else if (!delayed_.empty())
    at = delayed_.begin()->first;
  if (!at) return std::nullopt;
  if (breaker_tripped_) {
    if (probe_in_flight_ || !in_flight_.empty()) return std::nullopt;  // its result wakes us
    at = std::max(*at, open_until_);
  }
  at = std::max(*at, paused_until_);
  const int limit = std::max(1, static_cast<int>(std::floor(policy_.max_in_flight * slow_factor_)));
  if (static_cast<int>(in_flight_.size()) >= limit) return std::nullopt;
  if (policy_.rate_limit.requests > 0 && tokens_ < 1.0) {
    const double per_ms = effective_rate() / double(policy_.rate_limit.per_ms);
    at = std::max(*at, tokens_at_ + static_cast<TimeMs>(std::ceil((1.0 - tokens_) / per_ms)));
  }
  return at;
}

void EndpointQueue::forget_partition(int partition, TimeMs now) {
  // Per signal, not per account: an account's signals may come from several partitions (the
  // topic was repartitioned).
  for (auto it = accounts_.begin(); it != accounts_.end();) {
    Account& account = it->second;
    bool head_dropped = false;
    for (std::size_t i = 0; i < account.items.size();) {
      auto& signals = account.items[i].signals;
      const std::size_t before = signals.size();
      std::erase_if(signals, [&](const SignalPtr& s) { return s->partition == partition; });
      queued_signals_ -= before - signals.size();
      const bool awaited = i == 0 && account.in_flight;  // stays, empty, until it completes
      if (signals.empty() && !awaited) {
        account.items.erase(account.items.begin() + static_cast<std::ptrdiff_t>(i));
        head_dropped |= i == 0;
      } else {
        ++i;
      }
    }
    if (account.items.empty() && !account.in_flight) {
      it = accounts_.erase(it);  // ready_ and delayed_ keep its name; take_batch skips it
      continue;
    }
    if (head_dropped) {  // the new head may go at once, not at the dropped one's retry time
      account.scheduled = false;
      schedule(it->first, account, now);
    }
    ++it;
  }
}

BreakerState EndpointQueue::breaker_state(TimeMs now) const {
  if (!breaker_tripped_) return BreakerState::kClosed;
  return now < open_until_ ? BreakerState::kOpen : BreakerState::kHalfOpen;
}

// --- OffsetTracker ------------------------------------------------------------------------

std::uint64_t OffsetTracker::assign(int partition) {
  Partition& p = partitions_[partition];
  p = Partition{};
  p.generation = next_generation_++;
  return p.generation;
}

void OffsetTracker::revoke(int partition) {
  partitions_.erase(partition);
}

void OffsetTracker::read(int partition, std::int64_t offset) {
  auto it = partitions_.find(partition);
  if (it == partitions_.end()) return;
  // Reading starts where the group's committed offset is: nothing to commit before progress.
  if (it->second.next < 0) it->second.committed = offset;
  it->second.unfinished.insert(offset);
  it->second.next = std::max(it->second.next, offset + 1);
}

void OffsetTracker::finish(int partition, std::uint64_t generation, std::int64_t offset) {
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.generation != generation) return;
  it->second.unfinished.erase(offset);
}

std::optional<std::int64_t> OffsetTracker::position(int partition) const {
  auto it = partitions_.find(partition);
  if (it == partitions_.end() || it->second.next < 0) return std::nullopt;
  const Partition& p = it->second;
  return p.unfinished.empty() ? p.next : *p.unfinished.begin();
}

std::vector<std::pair<int, std::int64_t>> OffsetTracker::take_commits() {
  std::vector<std::pair<int, std::int64_t>> out;
  for (auto& [partition, p] : partitions_) {
    const auto pos = position(partition);
    if (pos && *pos > p.committed) {
      p.committed = *pos;
      out.emplace_back(partition, *pos);
    }
  }
  return out;
}

void OffsetTracker::commit_failed(int partition, std::int64_t offset) {
  auto it = partitions_.find(partition);
  // Only the latest handed out: a later commit, of a position past it, covers it anyway.
  if (it != partitions_.end() && it->second.committed == offset) it->second.committed = -1;
}

std::size_t OffsetTracker::unfinished() const {
  std::size_t n = 0;
  for (const auto& [partition, p] : partitions_) n += p.unfinished.size();
  return n;
}

std::vector<int> OffsetTracker::partitions() const {
  std::vector<int> out;
  for (const auto& [partition, p] : partitions_) out.push_back(partition);
  return out;
}

}  // namespace pqa::scorer::relay
