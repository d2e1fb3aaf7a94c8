// pqa-bench-relay: the two ends of the relay benchmark (bench/run_relay.sh).
//
//   pqa-bench-relay produce --bootstrap B --topic T --signals N --accounts A [--rate R]
//       Produces N threshold_crossed signals keyed by account, at R signals/s (0: at once).
//       Each signal's event_time is its produce time (ms), which the Standard Webhooks
//       envelope carries as `timestamp`: the sink measures signal-to-delivery from it.
//   pqa-bench-relay sink --port P --expect N [--timeout-s S]
//       An HTTP/1.1 keep-alive server answering 200 at once (a thread per connection), until
//       N requests arrived (or S seconds passed). Prints requests, records (HubSpot batch
//       inputs), the rate from first to last request, and latency percentiles of
//       receive time minus the envelope's timestamp.
#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kafka.h"
#include "pqa/rollup/event.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::system_clock;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

std::map<std::string, std::string> parse_flags(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 2; i + 1 < argc; i += 2) flags[argv[i]] = argv[i + 1];
  return flags;
}

int produce(std::map<std::string, std::string> f) {
  using namespace pqa::scorer;
  const std::string topic = f["--topic"];
  const long signals = std::stol(f["--signals"]);
  const long accounts = std::stol(f["--accounts"]);
  const double rate = f.count("--rate") ? std::stod(f["--rate"]) : 0.0;
  auto producer = kafka::make_client(RD_KAFKA_PRODUCER,
                                     kafka::make_conf({{"bootstrap.servers", f["--bootstrap"]},
                                                       {"linger.ms", "1"},
                                                       {"enable.idempotence", "true"}}));
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < signals; ++i) {
    if (rate > 0) {
      std::this_thread::sleep_until(
          start + std::chrono::microseconds(static_cast<long>(double(i) * 1e6 / rate)));
    }
    const std::string account = "acct-" + std::to_string(i % accounts);
    const std::string value =
        R"({"signal_id":"sig-)" + std::to_string(i) +
        R"(","kind":"threshold_crossed",)"
        R"("account_id":")" +
        account + R"(","score":81.5,"band":"hot","event_time":")" +
        pqa::rollup::format_timestamp(now_ms()) +
        R"(","model_version":"bench","direction":"up","previous_band":"qualified",)"
        R"("routing":"full_sales","components":{"breadth":0.8,"depth":0.7,"fabric":0.6,)"
        R"("fit":0.9},"drivers":[{"name":"breadth","points":28},{"name":"fabric",)"
        R"("points":15},{"name":"depth","points":12.5}],"risk_flags":[]})";
    while (kafka::produce(producer.get(), topic, -1, account, value, nullptr, 0) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(producer.get(), 10);
    rd_kafka_poll(producer.get(), 0);
  }
  rd_kafka_flush(producer.get(), 60'000);
  std::cout << "produced " << signals << "\n";
  return 0;
}

struct SinkStats {
  std::mutex mu;
  std::vector<double> latencies_ms;
  long requests = 0, records = 0;
  std::int64_t first_ms = 0, last_ms = 0;
};

/// The envelope's "timestamp" (the produce time, see produce()), or -1.
std::int64_t envelope_time(const std::string& body) {
  const auto at = body.find(R"("timestamp":")");
  if (at == std::string::npos) return -1;
  const auto t = pqa::rollup::parse_timestamp(body.substr(at + 13, 24));
  return t ? *t : -1;
}

long count_records(const std::string& body) {
  long n = 0;
  for (auto at = body.find("\"idProperty\""); at != std::string::npos;
       at = body.find("\"idProperty\"", at + 1))
    ++n;
  return std::max(n, 1L);
}

void serve(tcp::socket socket, SinkStats& stats) {
  beast::flat_buffer buffer;
  beast::error_code ec;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(16 << 20);
    http::read(socket, buffer, parser, ec);
    if (ec) return;
    const std::int64_t received = now_ms();
    const std::string& body = parser.get().body();
    const std::int64_t sent = envelope_time(body);
    {
      std::lock_guard lock(stats.mu);
      if (stats.requests++ == 0) stats.first_ms = received;
      stats.last_ms = received;
      stats.records += count_records(body);
      if (sent > 0) stats.latencies_ms.push_back(double(received - sent));
    }
    http::response<http::string_body> res(http::status::ok, 11);
    res.set(http::field::content_type, "application/json");
    res.body() = "{}";
    res.keep_alive(true);
    res.prepare_payload();
    http::write(socket, res, ec);
    if (ec) return;
  }
}

int sink(std::map<std::string, std::string> f) {
  const long expect = std::stol(f["--expect"]);
  const int timeout_s = f.count("--timeout-s") ? std::stoi(f["--timeout-s"]) : 600;
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"),
                              static_cast<unsigned short>(std::stoi(f["--port"]))});
  SinkStats stats;
  std::thread([&] {
    for (;;) {
      tcp::socket s(io);
      beast::error_code ec;
      acceptor.accept(s, ec);
      if (ec) return;
      std::thread(serve, std::move(s), std::ref(stats)).detach();
    }
  }).detach();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(stats.mu);
      if (stats.records >= expect) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::lock_guard lock(stats.mu);
  auto& l = stats.latencies_ms;
  std::sort(l.begin(), l.end());
  auto pct = [&](double p) {
    return l.empty() ? 0.0
                     : l[std::min(l.size() - 1, static_cast<std::size_t>(p * double(l.size())))];
  };
  const double seconds = double(stats.last_ms - stats.first_ms) / 1000.0;
  std::printf(
      "requests %ld records %ld seconds %.2f records_per_s %.0f requests_per_s %.0f "
      "p50_ms %.0f p99_ms %.0f max_ms %.0f\n",
      stats.requests, stats.records, seconds, seconds > 0 ? double(stats.records) / seconds : 0.0,
      seconds > 0 ? double(stats.requests) / seconds : 0.0, pct(0.50), pct(0.99),
      l.empty() ? 0.0 : l.back());
  std::fflush(stdout);
  std::_Exit(stats.records >= expect ? 0 : 1);  // connection threads are still blocked
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "produce") return produce(parse_flags(argc, argv));
    if (mode == "sink") return sink(parse_flags(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "pqa-bench-relay: " << e.what() << "\n";
    return 2;
  }
  std::cerr << "usage: pqa-bench-relay produce|sink --flag value ...\n";
  return 2;
}
