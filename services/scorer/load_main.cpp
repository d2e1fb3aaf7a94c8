// pqa-load: produces a JSON-lines file of events to a Kafka topic, keyed by account id the way
// an upstream pipeline would key them (partitioning.h: the same router and partitioner as
// `replay --partitions`), optionally at a steady rate. Used by the integration tests and the
// end-to-end benchmarks, and by operators to backfill a topic from a file.
//
//   pqa-load --bootstrap HOST:PORT --topic T --input FILE [--rate EVENTS_PER_S]
//            [--config config/scorer.yaml] [--stamp] [--create-partitions N] [--skip N]
//
// --create-partitions N creates the topic with N partitions (replication 1) if it is missing.
// --stamp adds a header `pqa.sent_ms` (wall clock at produce) for latency measurements.
// --skip N routes the first N lines without sending them: the rest of a file whose start was
// sent before, keyed as if the file were sent whole (a user's account is learnt from its group
// call, which may be among the lines skipped).
// Lines that cannot be decoded or routed are sent without a key (partition by line number):
// the service must dead-letter them. Prints "produced N" when every record is acknowledged.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>

#include "config_loader.h"
#include "kafka.h"
#include "line_io.h"
#include "partitioning.h"

namespace {

using namespace pqa::scorer;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string bootstrap, topic, input, config = "config/scorer.yaml";
  double rate = 0;
  bool stamp = false;
  int create_partitions = 0;
  std::uint64_t skip = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--stamp") {
      o.stamp = true;
      continue;
    }
    if (i + 1 >= argc) throw std::runtime_error("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--bootstrap")
      o.bootstrap = value;
    else if (flag == "--topic")
      o.topic = value;
    else if (flag == "--input")
      o.input = value;
    else if (flag == "--config")
      o.config = value;
    else if (flag == "--rate")
      o.rate = std::stod(value);
    else if (flag == "--create-partitions")
      o.create_partitions = std::stoi(value);
    else if (flag == "--skip")
      o.skip = std::stoull(value);
    else
      throw std::runtime_error("unknown flag " + flag);
  }
  if (o.bootstrap.empty() || o.topic.empty() || o.input.empty())
    throw std::runtime_error(
        "usage: pqa-load --bootstrap HOST:PORT --topic T --input FILE [--rate N] [--stamp]");
  return o;
}

int delivery_failures = 0;

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (delivery_failures++ < 5)
      std::fprintf(stderr, "pqa-load: delivery failed: %s\n", rd_kafka_err2str(m->err));
  }
}

void produce(rd_kafka_t* rk, const std::string& topic, int partition, const std::string& key,
             std::string_view line, bool stamp) {
  for (;;) {
    rd_kafka_headers_t* headers = nullptr;
    if (stamp) {
      const auto sent = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
      headers = rd_kafka_headers_new(1);
      rd_kafka_header_add(headers, "pqa.sent_ms", -1, sent.data(),
                          static_cast<ssize_t>(sent.size()));
    }
    const auto err = kafka::produce(rk, topic, partition, key, line, headers, 0);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (headers != nullptr) rd_kafka_headers_destroy(headers);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      throw std::runtime_error(std::string("produce: ") + rd_kafka_err2str(err));
    rd_kafka_poll(rk, 10);
  }
}

int run(const Options& o) {
  const ServiceConfig config = load_config(o.config);
  const pqa::rollup::Model model(config.model);
  pqa::rollup::EventDecoder decoder(model);
  pqa::rollup::Event event;
  AccountRouter router;

  auto conf = kafka::make_conf({{"bootstrap.servers", o.bootstrap},
                                {"enable.idempotence", "true"},
                                {"linger.ms", o.rate > 0 ? "1" : "20"},
                                {"batch.size", "1000000"},
                                {"compression.type", "lz4"}});
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &on_delivery);
  auto producer = kafka::make_client(RD_KAFKA_PRODUCER, std::move(conf));
  if (o.create_partitions > 0)
    kafka::create_topics(producer.get(), {{o.topic, o.create_partitions, 1, {}}},
                         std::chrono::milliseconds(10000));
  const auto partitions =
      kafka::partition_count(producer.get(), o.topic, std::chrono::milliseconds(10000));
  if (!partitions) throw std::runtime_error("topic " + o.topic + " does not exist");

  // Lines as replay reads them (prepare_input_line), so that the service is sent what the
  // oracle scores. Lines up to 64 MiB are sent whole (the broker refuses what is over its
  // message.max.bytes, as it would anyone's).
  LineReader in(o.input, 64u << 20);
  std::string_view line;
  bool overlong = false;
  std::uint64_t count = 0;  // lines routed
  std::uint64_t sent = 0;   // lines produced
  const auto start = Clock::now();
  while (in.next(line, overlong)) {
    if (!prepare_input_line(line, in.line_number(), overlong)) continue;
    std::string key;
    if (!decoder.decode_into(line, event)) key = router.route(event).value_or("");
    const int partition = key.empty()
                              ? static_cast<int>(count % static_cast<std::uint64_t>(*partitions))
                              : partition_for_key(key, *partitions);
    if (count++ < o.skip) continue;
    produce(producer.get(), o.topic, partition, key, line, o.stamp);
    ++sent;
    if (o.rate > 0) {  // steady rate: sleep until this event's slot
      // Only once a whole millisecond ahead: a sleep per event (20,000 a second) cost this
      // tool more than half a core of the two the broker and the service share with it,
      // which the latency benchmarks then measured as the service's delay.
      const auto due =
          start + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(static_cast<double>(sent) / o.rate));
      if (due - Clock::now() >= std::chrono::milliseconds(1)) std::this_thread::sleep_until(due);
    }
    rd_kafka_poll(producer.get(), 0);
  }
  while (rd_kafka_outq_len(producer.get()) > 0) rd_kafka_flush(producer.get(), 1000);
  if (delivery_failures > 0) {
    std::fprintf(stderr, "pqa-load: %d records failed\n", delivery_failures);
    return 1;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("produced %llu in %.2f s\n", static_cast<unsigned long long>(sent), seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pqa-load: %s\n", e.what());
    return 2;
  }
}
