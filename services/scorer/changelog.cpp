#include "changelog.h"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "log.h"
#include "output_producer.h"
#include "state_codec.h"

namespace pqa::scorer {
namespace {

// A restore batch ends at whichever comes first. Large batches coalesce the versions of a key
// that the changelog holds until it is compacted, and reach the store's table-file ingestion.
constexpr std::size_t kBatchRecords = 100'000;
constexpr std::size_t kBatchBytes = 32u << 20;
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
      {"fetch.wait.max.ms", "10"},
      // librdkafka 2.0 stops fetching a partition whose local queue holds queued.min.messages
      // (default 100,000) or queued.max.messages.kbytes (64 MB), and looks again only about
      // a second later, however soon the queue drains: a changelog partition of just over
      // 100,000 records took ~1.0 s to restore instead of ~0.2 s, most of it waiting for the
      // end-of-partition event (bench/RESULTS.md §5e). So the count never stops a fetch, and
      // fetches are a quarter of the byte bound, which alone bounds the queue's memory.
      {"queued.min.messages", "10000000"},
      {"max.partition.fetch.bytes", "16777216"},
      {"fetch.max.bytes", "16777216"},
  };
  for (const auto& [k, v] : c.properties) p[k] = v;
  for (const auto& [k, v] : c.consumer_properties) p[k] = v;
  for (const auto& [k, v] : c.restore_consumer_properties) p[k] = v;
  p["enable.auto.commit"] = "false";
  p["enable.partition.eof"] = "true";
  p["isolation.level"] = "read_committed";
  // A restore starts inside the partition's offsets, but records can be deleted under it
  // (DeleteRecords, or a retention set on the topic by hand): from an offset that no longer
  // exists it goes on from the earliest one left rather than librdkafka's default, the end,
  // which would skip every record still there.
  p["auto.offset.reset"] = "earliest";
  return p;
}

// Only asks for the partition's end including open transactions (its high watermark).
kafka::Properties uncommitted_properties(const KafkaConfig& c) {
  kafka::Properties p = restore_properties(c);
  p["isolation.level"] = "read_uncommitted";
  return p;
}

std::optional<std::int64_t> stored_offset(StateStore& store, std::string_view meta_key) {
  const auto value = store.get(keys::meta(meta_key));
  if (!value) return std::nullopt;
  try {
    return std::stoll(*value);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::optional<std::int64_t> changelog_input_offset(StateStore& store) {
  const auto offset = read_meta_integer(store, changelog_meta::kInputOffset, "an offset");
  if (offset && *offset < 0)
    throw StoreError("corrupt state record: meta '" + std::string(changelog_meta::kInputOffset) +
                     "' is not an offset: " + std::to_string(*offset));
  return offset;
}

WriteSet coalesce_changelog(std::vector<ChangelogRecord> records) {
  // Stable: among the records of one key, the last one read stays last.
  std::stable_sort(
      records.begin(), records.end(),
      [](const ChangelogRecord& x, const ChangelogRecord& y) { return x.key < y.key; });
  WriteSet writes;
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (i + 1 < records.size() && records[i + 1].key == records[i].key) continue;  // superseded
    ChangelogRecord& r = records[i];
    if (r.value)
      writes.puts.emplace_back(std::move(r.key), std::move(*r.value));
    else
      writes.deletes.push_back(std::move(r.key));
  }
  return writes;
}

void clear_store(StateStore& store) {
  WriteSet wipe;
  store.scan("", [&](std::string_view key, std::string_view) { wipe.deletes.emplace_back(key); });
  store.commit(wipe);
}

ChangelogRestorer::ChangelogRestorer(const KafkaConfig& config, const std::atomic<bool>& stop)
    : topic_(config.changelog_topic),
      timeout_(config.timeout_ms),
      settle_limit_(transaction_timeout_ms(config) + config.timeout_ms),
      stop_(stop),
      consumer_(
          kafka::make_client(RD_KAFKA_CONSUMER, kafka::make_conf(restore_properties(config)))),
      uncommitted_(kafka::make_client(RD_KAFKA_CONSUMER,
                                      kafka::make_conf(uncommitted_properties(config)))) {}

RestoreResult ChangelogRestorer::restore(StateStore& store, int partition,
                                         std::int64_t committed_input) {
  const auto started = std::chrono::steady_clock::now();
  RestoreResult result;
  const std::string source = topic_ + "/" + std::to_string(partition);
  const auto checkpoint = stored_offset(store, changelog_meta::kOffset);
  const auto stored_source = store.get(keys::meta(changelog_meta::kSource));
  std::int64_t from = checkpoint ? *checkpoint + 1 : 0;
  // A checkpoint past the committed end may be this store's own last commit, its markers not
  // yet written: worth a wait rather than a rebuild.
  const auto [low, high] = checkpoint && stored_source == source
                               ? wait_while_pending(partition, from, "the store's checkpoint",
                                                    std::chrono::steady_clock::now() + timeout_)
                               : watermarks(partition, consumer_.get());
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
  if (committed_input >= 0) last = settle(store, partition, committed_input, last, result);
  WriteSet meta;
  meta.puts.emplace_back(keys::meta(changelog_meta::kSource), source);
  if (last >= 0) meta.puts.emplace_back(keys::meta(changelog_meta::kOffset), std::to_string(last));
  store.commit(meta);
  report(partition, 0, 0);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

std::pair<std::int64_t, std::int64_t> ChangelogRestorer::wait_while_pending(
    int partition, std::int64_t wanted_end, std::string_view what,
    std::chrono::steady_clock::time_point deadline) {
  constexpr auto kPause = std::chrono::milliseconds(50);
  auto next_warning = std::chrono::steady_clock::now() + timeout_;
  for (bool logged = false;;) {
    const auto committed = watermarks(partition, consumer_.get());
    if (committed.second >= wanted_end) return committed;
    // The committed end stops short: only a transaction still open on the partition can
    // move it, and only that is waited for.
    if (committed.second >= watermarks(partition, uncommitted_.get()).second) return committed;
    if (stop_) throw RestoreInterrupted("restore interrupted by shutdown");
    const std::initializer_list<log::Field> fields = {
        {"partition", std::to_string(partition)},
        {"waiting_for", std::string(what)},
        {"changelog_committed_end", std::to_string(committed.second)}};
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      log::warn("restore", "a transaction on the changelog stays open past the wait's limit",
                fields);
      return committed;
    }
    if (!std::exchange(logged, true))
      log::info("restore", "waiting for a transaction on the changelog to settle", fields);
    if (now >= next_warning) {  // a long wait says so every kafka.timeout_ms
      log::warn("restore", "still waiting for a transaction on the changelog", fields);
      next_warning = now + timeout_;
    }
    std::this_thread::sleep_for(kPause);
  }
}

std::int64_t ChangelogRestorer::settle(StateStore& store, int partition,
                                       std::int64_t committed_input, std::int64_t last,
                                       RestoreResult& result) {
  // The group's offset is stable, so a transaction open on the changelog below it is the
  // commit that offset counts, its markers still on their way: going on without its state
  // changes would lose them for good, so it is waited for well past kafka.timeout_ms. The
  // broker aborts a transaction older than its timeout; one open longer is a hanging
  // transaction, which needs an operator: stopping says so, where going on would lose state.
  const auto deadline = std::chrono::steady_clock::now() + settle_limit_;
  std::int64_t next = last + 1;  // the first offset not read yet
  for (;;) {
    const auto reached = stored_offset(store, changelog_meta::kInputOffset);
    if (reached && *reached >= committed_input) return last;
    // Below the group's offset, or no record: the commit that offset counts may still be
    // settling, which only a transaction open on the changelog can show.
    const std::int64_t committed_end =
        wait_while_pending(partition, next + 1, "the committed input offset", deadline).second;
    if (next < committed_end) {  // settled meanwhile: read it, then look again
      auto [records, last_read] = copy_records(store, partition, next, committed_end);
      result.records += records;
      if (last_read >= 0) last = last_read;
      next = committed_end;
      continue;
    }
    if (std::chrono::steady_clock::now() >= deadline && transaction_open(partition, next))
      throw kafka::KafkaError(
          "changelog partition " + std::to_string(partition) + " of " + topic_ +
              " holds a transaction open past the transaction timeout, below the group's "
              "committed input offset " +
              std::to_string(committed_input) +
              ": a hanging transaction (find it with kafka-transactions.sh find-hanging, end "
              "it with kafka-transactions.sh abort); restoring past it would lose state",
          /*fatal=*/true);
    // Nothing open: a changelog of a build before the record, or offsets moved forward by
    // hand (an open transaction there, a crashed owner's, is aborted by the broker in time).
    if (reached)
      log::warn("restore", "the changelog does not reach the committed input offset; going on",
                {{"partition", std::to_string(partition)},
                 {"changelog_input_offset", std::to_string(*reached)},
                 {"committed_input_offset", std::to_string(committed_input)}});
    else  // every commit writes the record: none at all is a changelog emptied or recreated
      log::warn("restore",
                "the changelog holds no input offset, yet the group has committed input: going "
                "on with the state it holds (offsets set by hand before a first start, a "
                "changelog recreated or emptied, whose state is then lost, or one written by a "
                "build before the record)",
                {{"partition", std::to_string(partition)},
                 {"committed_input_offset", std::to_string(committed_input)}});
    return last;
  }
}

void ChangelogRestorer::refresh_metadata(rd_kafka_t* client) {
  // librdkafka answers a watermark query from its cached view of the topic and says "Unknown
  // partition" for one that view lacks, without asking the brokers, until the view ages out
  // (metadata.max.age.ms, 15 min): a view taken while the changelog was being created, or
  // while a broker restarted, would hold the restore that long. A metadata request for the
  // topic renews the view; its own failure (the brokers still away) is the next attempt's.
  try {
    kafka::partition_count(client, topic_, timeout_);
  } catch (const kafka::KafkaError&) {
  }
}

bool ChangelogRestorer::transaction_open(int partition, std::int64_t committed_end) {
  return watermarks(partition, uncommitted_.get()).second > committed_end;
}

std::pair<std::int64_t, std::int64_t> ChangelogRestorer::watermarks(int partition,
                                                                    rd_kafka_t* client) {
  // A changelog just created answers "not leader" or "unknown partition" for a while, and a
  // broker outage (a restart, credentials rotated under the instance) fails every call until
  // it ends. The restore waits it out, as the processing loop does, instead of giving up after
  // one call's timeout and stopping the instance: readiness stays false meanwhile. Only a
  // shutdown ends the wait.
  constexpr auto kPause = std::chrono::milliseconds(500);
  constexpr int kLogEvery = 20;  // attempts: a warning every ~10 s of a long outage, not 2 a second
  for (int attempt = 0;; ++attempt) {
    try {
      return kafka::query_watermarks(client, topic_, partition, timeout_);
    } catch (const kafka::KafkaError& e) {
      if (stop_) throw RestoreInterrupted("restore interrupted by shutdown");
      if (attempt % kLogEvery == 0)
        log::warn("restore", "changelog offsets not available yet, retrying",
                  {{"partition", std::to_string(partition)},
                   {"attempt", std::to_string(attempt + 1)},
                   {"error", e.what()}});
      std::this_thread::sleep_for(kPause);
      // The renewal may itself wait kafka.timeout_ms: a shutdown or a cancel must not wait too.
      if (stop_) throw RestoreInterrupted("restore interrupted by shutdown");
      refresh_metadata(client);
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

  std::vector<ChangelogRecord> batch;
  std::size_t batch_bytes = 0;
  std::uint64_t records = 0, reported = 0;
  std::int64_t last = -1;
  const auto commit = [&] {
    store.commit(coalesce_changelog(std::exchange(batch, {})));
    batch_bytes = 0;
    report(partition, records - reported, std::max<std::int64_t>(0, high - last - 1));
    reported = records;
  };
  for (bool done = false; !done;) {
    if (stop_) throw RestoreInterrupted("restore interrupted by shutdown");
    // One message per poll: it returns as soon as one is there (a batch call waits for a full
    // batch or its timeout, which dominated restores of small partitions).
    for (bool first = true; !done && batch.size() < kBatchRecords && batch_bytes < kBatchBytes;
         first = false) {
      kafka::Message m(rd_kafka_consumer_poll(consumer_.get(), first ? kPollMs : 0));
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
      ChangelogRecord& record = batch.emplace_back(
          ChangelogRecord{std::string(static_cast<const char*>(m->key), m->key_len), std::nullopt});
      if (m->payload != nullptr) record.value.emplace(static_cast<const char*>(m->payload), m->len);
      batch_bytes += m->key_len + m->len;
      last = m->offset;
      ++records;
    }
    if (batch.size() >= kBatchRecords || batch_bytes >= kBatchBytes || (done && !batch.empty()))
      commit();
  }
  return {records, last};
}

}  // namespace pqa::scorer
