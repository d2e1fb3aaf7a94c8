#include "changelog.h"

#include <thread>
#include <vector>

#include "log.h"
#include "state_codec.h"

namespace pqa::scorer {
namespace {

constexpr std::size_t kBatchRecords = 10'000;
constexpr int kPollMs = 200;

kafka::Properties restore_properties(const KafkaConfig& c) {
  kafka::Properties p = {
      {"bootstrap.servers", c.bootstrap_servers},
      // Never subscribes nor commits: the group id only satisfies the client.
      {"group.id", c.group_id + "-restore"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"},
      {"isolation.level", "read_committed"},
      {"fetch.max.bytes", "104857600"},
      {"max.partition.fetch.bytes", "67108864"},
      {"fetch.wait.max.ms", "10"},
  };
  for (const auto& [k, v] : c.properties) p[k] = v;
  for (const auto& [k, v] : c.consumer_properties) p[k] = v;
  p["enable.auto.commit"] = "false";
  p["enable.partition.eof"] = "true";
  p["isolation.level"] = "read_committed";
  return p;
}

std::optional<std::int64_t> stored_checkpoint(StateStore& store) {
  const auto value = store.get(keys::meta(changelog_meta::kOffset));
  if (!value) return std::nullopt;
  try {
    return std::stoll(*value);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

void clear_store(StateStore& store) {
  WriteSet wipe;
  store.scan("", [&](std::string_view key, std::string_view) { wipe.deletes.emplace_back(key); });
  store.commit(wipe);
}

ChangelogRestorer::ChangelogRestorer(const KafkaConfig& config, const std::atomic<bool>& stop)
    : topic_(config.changelog_topic),
      timeout_(config.timeout_ms),
      stop_(stop),
      consumer_(
          kafka::make_client(RD_KAFKA_CONSUMER, kafka::make_conf(restore_properties(config)))) {}

RestoreResult ChangelogRestorer::restore(StateStore& store, int partition) {
  const auto started = std::chrono::steady_clock::now();
  RestoreResult result;
  const std::string source = topic_ + "/" + std::to_string(partition);
  const auto [low, high] = watermarks(partition);
  const auto checkpoint = stored_checkpoint(store);
  const auto stored_source = store.get(keys::meta(changelog_meta::kSource));
  std::int64_t from = checkpoint ? *checkpoint + 1 : low;
  const bool reusable = checkpoint && stored_source == source && from >= low && from <= high;
  if (!reusable) {
    if (checkpoint || stored_source)
      log::warn("restore", "local state does not match the changelog; rebuilding it",
                {{"partition", std::to_string(partition)},
                 {"checkpoint", checkpoint ? std::to_string(*checkpoint) : "none"},
                 {"changelog_low", std::to_string(low)},
                 {"changelog_high", std::to_string(high)}});
    clear_store(store);
    result.rebuilt = true;
    from = low;
  }
  std::int64_t last = from - 1;
  if (from < high) {
    report(partition, 0, high - from);
    auto [records, last_read] = copy_records(store, partition, from, high);
    result.records = records;
    if (last_read >= 0) last = last_read;
  }
  WriteSet meta;
  meta.puts.emplace_back(keys::meta(changelog_meta::kSource), source);
  if (last >= 0) meta.puts.emplace_back(keys::meta(changelog_meta::kOffset), std::to_string(last));
  store.commit(meta);
  report(partition, 0, 0);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

std::pair<std::int64_t, std::int64_t> ChangelogRestorer::watermarks(int partition) {
  // A changelog just created answers "not leader" or "unknown partition" for a while, and a
  // broker outage (a restart, credentials rotated under the instance) fails every call until
  // it ends. The restore waits it out, as the processing loop does, instead of giving up after
  // one call's timeout and stopping the instance: readiness stays false meanwhile. Only a
  // shutdown ends the wait.
  constexpr auto kPause = std::chrono::milliseconds(500);
  constexpr int kLogEvery = 20;  // attempts: a warning every ~10 s of a long outage, not 2 a second
  for (int attempt = 0;; ++attempt) {
    try {
      return kafka::query_watermarks(consumer_.get(), topic_, partition, timeout_);
    } catch (const kafka::KafkaError& e) {
      if (stop_) throw RestoreInterrupted("restore interrupted by shutdown");
      if (attempt % kLogEvery == 0)
        log::warn("restore", "changelog offsets not available yet, retrying",
                  {{"partition", std::to_string(partition)},
                   {"attempt", std::to_string(attempt + 1)},
                   {"error", e.what()}});
      std::this_thread::sleep_for(kPause);
    }
  }
}

std::pair<std::uint64_t, std::int64_t> ChangelogRestorer::copy_records(StateStore& store,
                                                                       int partition,
                                                                       std::int64_t from,
                                                                       std::int64_t high) {
  auto assignment = kafka::make_partition_list(1);
  rd_kafka_topic_partition_list_add(assignment.get(), topic_.c_str(), partition)->offset = from;
  kafka::throw_if(rd_kafka_assign(consumer_.get(), assignment.get()), "assigning the changelog");
  struct Unassign {
    rd_kafka_t* rk;
    ~Unassign() { rd_kafka_assign(rk, nullptr); }
  } unassign{consumer_.get()};

  WriteSet writes;
  std::uint64_t records = 0, reported = 0;
  std::int64_t last = -1;
  const auto commit = [&] {
    store.commit(writes);
    writes = {};
    report(partition, records - reported, std::max<std::int64_t>(0, high - last - 1));
    reported = records;
  };
  for (bool done = false; !done;) {
    if (stop_) throw RestoreInterrupted("restore interrupted by shutdown");
    // One message per poll: it returns as soon as one is there (a batch call waits for a full
    // batch or its timeout, which dominated restores of small partitions).
    for (std::size_t taken = 0; taken < kBatchRecords && !done; ++taken) {
      kafka::Message m(rd_kafka_consumer_poll(consumer_.get(), taken == 0 ? kPollMs : 0));
      if (!m) break;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        done = true;
        continue;
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log::warn("restore", "changelog read error, retrying",
                  {{"partition", std::to_string(partition)},
                   {"error", rd_kafka_message_errstr(m.get())}});
        continue;
      }
      std::string key(static_cast<const char*>(m->key), m->key_len);
      const bool tombstone = m->payload == nullptr;
      // A batch holds puts or deletes, never both, so that changelog order is kept.
      if (tombstone ? !writes.puts.empty() : !writes.deletes.empty()) commit();
      if (tombstone)
        writes.deletes.push_back(std::move(key));
      else
        writes.puts.emplace_back(std::move(key),
                                 std::string(static_cast<const char*>(m->payload), m->len));
      last = m->offset;
      ++records;
    }
    if (writes.puts.size() + writes.deletes.size() >= kBatchRecords || (done && !writes.empty()))
      commit();
  }
  return {records, last};
}

}  // namespace pqa::scorer
