// pqa-bench-e2e: measurements of the streaming service through a real broker (bench/run_e2e.sh).
//
//   pqa-bench-e2e raw --bootstrap B --topic T
//       librdkafka alone: consume every partition of T from the beginning to its current end
//       (no group, no processing) and print "raw <records> <seconds> <records/s>".
//   pqa-bench-e2e wait --bootstrap B --topic T --group G [--timeout S]
//       wait until G has committed the end of every partition of T; print
//       "consumed <records> <seconds since start> <seconds since first progress>
//       <records committed at first progress> <wall clock at the end, ms since the epoch>":
//       one rate is (records - the fourth) / the third (the events of the first commit,
//       processed before it, left out with their time); the fairer one, timed as `raw` is
//       (from its assignment), is records / (the fifth - the time the service logged its
//       partitions assigned): with_broker.sh's rate_from_assignment.
//   pqa-bench-e2e latency --bootstrap B --topic SIGNALS --seconds S [--warmup W] [--dump FILE]
//       read SIGNALS (read_committed) from its end for S seconds; each record's latency is the
//       wall time it became readable minus its timestamp, which the service copies from the
//       input event that caused it (pqa-load stamps events at produce time); print
//       "latency <count> p50 <ms> p99 <ms> p999 <ms> max <ms> steady <count> p50 <ms> p99 <ms>
//       p999 <ms> max <ms>": first over every record, then over those read W seconds (default
//       5) or more after the first one. --dump also writes one line per record, "<ms since
//       the first record> <latency ms>", to see when the slow ones were.
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kafka.h"

namespace {

namespace kafka = pqa::scorer::kafka;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

kafka::Handle consumer(const std::string& bootstrap, kafka::Properties extra) {
  extra["bootstrap.servers"] = bootstrap;
  extra.emplace("group.id", "pqa-bench-e2e");
  extra["enable.auto.commit"] = "false";
  return kafka::make_client(RD_KAFKA_CONSUMER, kafka::make_conf(extra));
}

std::vector<std::int64_t> end_offsets(rd_kafka_t* rk, const std::string& topic, int partitions) {
  std::vector<std::int64_t> ends;
  for (int p = 0; p < partitions; ++p)
    ends.push_back(kafka::query_watermarks(rk, topic, p, 10s).second);
  return ends;
}

int raw(const std::string& bootstrap, const std::string& topic) {
  auto c = consumer(bootstrap, {{"enable.partition.eof", "true"},
                                {"fetch.max.bytes", "104857600"},
                                {"queued.max.messages.kbytes", "1048576"}});
  const int partitions = kafka::partition_count(c.get(), topic, 10s).value_or(0);
  auto list = kafka::make_partition_list(partitions);
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  const auto start = Clock::now();
  kafka::throw_if(rd_kafka_assign(c.get(), list.get()), "assign");
  std::uint64_t records = 0;
  for (int eof = 0; eof < partitions;) {
    kafka::Message m(rd_kafka_consumer_poll(c.get(), 1000));
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++eof;
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) ++records;
  }
  const double seconds = since(start);
  std::printf("raw %llu %.3f %.0f\n", static_cast<unsigned long long>(records), seconds,
              static_cast<double>(records) / seconds);
  return 0;
}

int wait(const std::string& bootstrap, const std::string& topic, const std::string& group,
         double timeout) {
  auto c = consumer(bootstrap, {{"group.id", group}});
  const int partitions = kafka::partition_count(c.get(), topic, 10s).value_or(0);
  const auto ends = end_offsets(c.get(), topic, partitions);
  std::int64_t total = 0;
  for (auto e : ends) total += e;
  const auto start = Clock::now();
  std::optional<Clock::time_point> first_progress;
  std::int64_t first_done = 0;
  while (since(start) < timeout) {
    auto list = kafka::make_partition_list(partitions);
    for (int p = 0; p < partitions; ++p)
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
    if (rd_kafka_committed(c.get(), list.get(), 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::int64_t done = 0;
      for (int p = 0; p < partitions; ++p) done += std::max<std::int64_t>(0, list->elems[p].offset);
      if (done > 0 && !first_progress) {
        first_progress = Clock::now();
        first_done = done;
      }
      if (done >= total) {
        const auto wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
        std::printf("consumed %lld %.3f %.3f %lld %lld\n", static_cast<long long>(total),
                    since(start), since(*first_progress), static_cast<long long>(first_done),
                    static_cast<long long>(wall_ms));
        return 0;
      }
    }
    std::this_thread::sleep_for(20ms);
  }
  std::fprintf(stderr, "pqa-bench-e2e: timed out\n");
  return 1;
}

/// "<count> p50 <ms> p99 <ms> p999 <ms> max <ms>" of `samples`.
std::string percentiles(std::vector<std::int64_t> samples) {
  if (samples.empty()) return "0 p50 0 p99 0 p999 0 max 0";
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    return std::to_string(samples[std::min(
        samples.size() - 1, static_cast<std::size_t>(q * static_cast<double>(samples.size())))]);
  };
  return std::to_string(samples.size()) + " p50 " + at(0.5) + " p99 " + at(0.99) + " p999 " +
         at(0.999) + " max " + std::to_string(samples.back());
}

void write_dump(const std::string& path, const std::vector<std::int64_t>& seen_at,
                const std::vector<std::int64_t>& samples) {
  std::FILE* out = std::fopen(path.c_str(), "w");
  if (out == nullptr) throw std::runtime_error("cannot write " + path);
  for (std::size_t i = 0; i < samples.size(); ++i)
    std::fprintf(out, "%lld %lld\n", static_cast<long long>(seen_at[i] - seen_at.front()),
                 static_cast<long long>(samples[i]));
  std::fclose(out);
}

int latency(const std::string& bootstrap, const std::string& topic, double seconds,
            double warmup_seconds, const std::string& dump) {
  auto c = consumer(bootstrap, {{"isolation.level", "read_committed"},
                                {"fetch.wait.max.ms", "5"},
                                {"fetch.error.backoff.ms", "5"}});
  const int partitions = kafka::partition_count(c.get(), topic, 10s).value_or(0);
  auto list = kafka::make_partition_list(partitions);
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_END;
  kafka::throw_if(rd_kafka_assign(c.get(), list.get()), "assign");
  std::vector<std::int64_t> samples, seen_at;  // latency, and wall time read, per record
  const auto start = Clock::now();
  while (since(start) < seconds) {
    kafka::Message m(rd_kafka_consumer_poll(c.get(), 100));
    if (!m || m->err) continue;
    const std::int64_t stamped = rd_kafka_message_timestamp(m.get(), nullptr);
    if (stamped <= 0) continue;
    seen_at.push_back(wall_ms());
    samples.push_back(seen_at.back() - stamped);
  }
  if (samples.empty()) {
    std::fprintf(stderr, "pqa-bench-e2e: no signals seen\n");
    return 1;
  }
  if (!dump.empty()) write_dump(dump, seen_at, samples);
  // The first seconds after the service's first output are its warm-up (the new topics' first
  // transactions, a broker JVM not yet warm, and a generated stream that starts with every
  // account new, so with many of its signals); the steady figures leave them out.
  const auto warmup_ms = static_cast<std::int64_t>(warmup_seconds * 1000);
  std::vector<std::int64_t> steady;
  for (std::size_t i = 0; i < samples.size(); ++i)
    if (seen_at[i] - seen_at.front() >= warmup_ms) steady.push_back(samples[i]);
  std::printf("latency %s steady %s\n", percentiles(samples).c_str(),
              percentiles(std::move(steady)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: pqa-bench-e2e raw|wait|latency --bootstrap B --topic T ...\n");
    return 2;
  }
  const std::string mode = argv[1];
  std::map<std::string, std::string> args;
  for (int i = 2; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  try {
    const std::string bootstrap = args.at("--bootstrap"), topic = args.at("--topic");
    if (mode == "raw") return raw(bootstrap, topic);
    if (mode == "wait")
      return wait(bootstrap, topic, args.at("--group"),
                  args.count("--timeout") ? std::stod(args["--timeout"]) : 600);
    if (mode == "latency")
      return latency(bootstrap, topic, std::stod(args.at("--seconds")),
                     args.count("--warmup") ? std::stod(args["--warmup"]) : 5.0,
                     args.count("--dump") ? args["--dump"] : std::string());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pqa-bench-e2e: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "pqa-bench-e2e: unknown mode %s\n", mode.c_str());
  return 2;
}
