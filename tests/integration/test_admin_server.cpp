// The admin HTTP server over real loopback sockets, against well-behaved and hostile clients.
// After every hostile exchange the server must still answer /healthz.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "admin_routes.h"
#include "admin_server.h"
#include "metrics.h"

using namespace pqa::scorer;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

/// A raw client: sends bytes, reads until the server closes (or the timeout passes).
class RawClient {
 public:
  explicit RawClient(int port) : socket_(io_) {
    socket_.connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  }
  void send(const std::string& bytes) {
    boost::system::error_code ec;
    asio::write(socket_, asio::buffer(bytes), ec);  // the server may have closed already
  }
  /// Everything until EOF; "" if the peer reset.
  std::string read_all() {
    std::string out;
    boost::system::error_code ec;
    std::array<char, 4096> chunk{};
    for (;;) {
      const auto n = socket_.read_some(asio::buffer(chunk), ec);
      out.append(chunk.data(), n);
      if (ec) break;
    }
    return out;
  }
  /// Reads one response (headers + Content-Length body) without waiting for EOF.
  std::string read_response() {
    std::string out;
    std::array<char, 4096> chunk{};
    for (;;) {
      const auto head_end = out.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const auto cl = out.find("Content-Length: ");
        const std::size_t length =
            cl == std::string::npos
                ? 0
                : std::stoul(out.substr(cl + 16, out.find("\r\n", cl) - cl - 16));
        if (out.size() >= head_end + 4 + length) return out;
      }
      boost::system::error_code ec;
      const auto n = socket_.read_some(asio::buffer(chunk), ec);
      out.append(chunk.data(), n);
      if (ec) return out;
    }
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string get(int port, const std::string& target) {
  RawClient c(port);
  c.send("GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  return c.read_all();
}

struct Fixture {
  explicit Fixture(AdminServerOptions o = {}) : options(std::move(o)) {
    options.bind_address = "127.0.0.1";
    options.port = 0;
    metrics.set_ready(true);
    queries.set_serving(true);
    server = std::make_unique<AdminServer>(options, make_admin_handler(metrics, queries));
  }
  void check_alive() const { CHECK(status_of(get(server->port(), "/healthz")) == 200); }

  AdminServerOptions options;
  ServiceMetrics metrics{"v1", "exactly_once"};
  AccountQueries queries;
  std::unique_ptr<AdminServer> server;
};

}  // namespace

TEST_CASE("Admin server answers probes, metrics and keep-alive requests", "[admin][http]") {
  Fixture f;
  const int port = f.server->port();
  CHECK(status_of(get(port, "/healthz")) == 200);
  CHECK(status_of(get(port, "/readyz")) == 200);
  const auto metrics = get(port, "/metrics");
  CHECK(status_of(metrics) == 200);
  CHECK(metrics.find("pqa_ready 1") != std::string::npos);

  RawClient keep(port);  // two requests on one connection
  keep.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(keep.read_response()) == 200);
  keep.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(keep.read_response()) == 200);
}

TEST_CASE("Account queries are answered from the loop's thread, or time out with 503",
          "[admin][http]") {
  AdminServerOptions o;
  o.request_timeout_ms = 300;
  Fixture f(o);
  const int port = f.server->port();
  // A "loop" on another thread answers what is queued.
  std::atomic<bool> done{false};
  std::thread loop([&] {
    while (!done) {
      f.queries.serve([](const std::string& account) {
        HttpResponse r;
        r.content_type = "application/json";
        r.body = "{\"account_id\":\"" + account + "\"}";
        return r;
      });
      std::this_thread::sleep_for(5ms);
    }
  });
  const auto answer = get(port, "/v1/accounts/acme%20corp");
  CHECK(status_of(answer) == 200);
  CHECK(answer.find("{\"account_id\":\"acme corp\"}") != std::string::npos);
  done = true;
  loop.join();

  // Nobody serves the queue now: the request deadline answers.
  const auto started = std::chrono::steady_clock::now();
  CHECK(status_of(get(port, "/v1/accounts/late")) == 503);
  CHECK(std::chrono::steady_clock::now() - started >= 250ms);
  // The late answer, when it comes, lands nowhere and harms nothing.
  f.queries.serve([](const std::string&) { return HttpResponse{}; });
  f.check_alive();
}

TEST_CASE("Headers up to admin.max_header_bytes are read, above the read buffer's old 8 KiB",
          "[admin][http]") {
  AdminServerOptions o;
  o.max_header_bytes = 32768;
  Fixture f(o);
  RawClient c(f.server->port());
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " +
         std::string(12000, 'a') + "\r\n\r\n");
  CHECK(status_of(c.read_all()) == 200);
}

TEST_CASE("Hostile requests get a 4xx or a closed connection, never a crash", "[admin][http]") {
  AdminServerOptions o;
  o.request_timeout_ms = 400;
  o.max_header_bytes = 2048;
  o.max_body_bytes = 128;
  Fixture f(o);
  const int port = f.server->port();

  SECTION("oversized headers: 431") {
    RawClient c(port);
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n");
    CHECK(status_of(c.read_all()) == 431);
  }
  SECTION("oversized body: 413") {
    RawClient c(port);
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
           std::string(1000, 'b'));
    CHECK(status_of(c.read_all()) == 413);
  }
  SECTION("garbage request line: 400") {
    RawClient c(port);
    c.send("\x01\x02 garbage \xff\r\n\r\n");
    CHECK(status_of(c.read_all()) == 400);
  }
  SECTION("HTTP/0.9 style and bad versions: 400") {
    for (const char* request :
         {"GET /\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET / FTP/1.1\r\n\r\n"}) {
      RawClient c(port);
      c.send(request);
      CHECK(status_of(c.read_all()) == 400);
    }
  }
  SECTION("methods other than GET: 405 with Allow") {
    RawClient c(port);
    c.send("DELETE /v1/accounts/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const auto r = c.read_all();
    CHECK(status_of(r) == 405);
    CHECK(r.find("Allow: GET") != std::string::npos);
  }
  SECTION("broken chunked body: 400") {
    RawClient c(port);
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    CHECK(status_of(c.read_all()) == 400);
  }
  SECTION("a client too slow to finish its request is disconnected") {
    RawClient c(port);
    c.send("GET /healthz HTTP/1.1\r\nHo");
    const auto started = std::chrono::steady_clock::now();
    CHECK(c.read_all().empty());  // closed without an answer once the deadline passed
    CHECK(std::chrono::steady_clock::now() - started < 5s);
  }
  SECTION("a client that vanishes mid-request") {
    {
      RawClient c(port);
      c.send("GET /metr");
    }
    {
      RawClient c(port);
      c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    }  // no read
  }
  SECTION("random bytes") {
    std::mt19937 rng(7);
    for (int i = 0; i < 50; ++i) {
      std::string bytes(1 + rng() % 600, '\0');
      for (auto& b : bytes) b = static_cast<char>(rng());
      if (i % 2) bytes = "GET /" + bytes;
      RawClient c(port);
      c.send(bytes + "\r\n\r\n");
      const int status = status_of(c.read_all());
      CHECK((status == 0 || (status >= 400 && status < 500)));
    }
  }
  f.check_alive();
}

TEST_CASE("Connections beyond the cap are refused until one closes", "[admin][http]") {
  AdminServerOptions o;
  o.max_connections = 3;
  o.request_timeout_ms = 20'000;  // the kept-alive clients hold their slots through the test
  Fixture f(o);
  const int port = f.server->port();
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<RawClient>(port));
    idle.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(status_of(idle.back()->read_response()) == 200);  // kept alive: each holds a slot
  }
  // Every slot taken: the probes and the scrape still get through, on the reserved slots,
  // one request per connection; anything else there is turned away.
  CHECK(status_of(get(port, "/healthz")) == 200);
  CHECK(status_of(get(port, "/readyz")) == 200);
  CHECK(status_of(get(port, "/metrics?x=1")) == 200);
  const auto busy = get(port, "/v1/accounts/acme");
  CHECK(status_of(busy) == 503);
  CHECK(busy.find("\"busy\"") != std::string::npos);
  RawClient once(port);
  once.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");  // asks to be kept alive
  CHECK(status_of(once.read_all()) == 200);               // answered, then closed
  // The reserve held too: the next connection is closed at once.
  for (std::size_t i = 0; i < kProbeReserve; ++i) idle.push_back(std::make_unique<RawClient>(port));
  bool refused = false;
  for (int attempt = 0; attempt < 50 && !refused; ++attempt) {
    refused = get(port, "/healthz").empty();
    if (!refused) std::this_thread::sleep_for(20ms);
  }
  CHECK(refused);
  // Idle reserved connections are closed after 1 s (request_timeout_ms is 20 s here): the
  // reserve frees itself while the regular slots stay held.
  bool reserve_free = false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!reserve_free && std::chrono::steady_clock::now() < deadline) {
    reserve_free = status_of(get(port, "/healthz")) == 200;
    if (!reserve_free) std::this_thread::sleep_for(50ms);
  }
  CHECK(reserve_free);
  idle.clear();
  // The slots free up as the server notices the closes.
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    served = status_of(get(port, "/healthz")) == 200;
    if (!served) std::this_thread::sleep_for(20ms);
  }
  CHECK(served);
}

// Not in sanitizer builds: with no descriptor left, the sanitizers' own checks fail too (UBSan
// tells whether memory is readable through a pipe, and reports every vptr it cannot check).
#ifndef __SANITIZE_ADDRESS__
namespace {

/// CPU seconds this process has used (every thread), user and system.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

/// Holds every file descriptor the process may still open (under the current limit), so
/// that the next open or accept fails with EMFILE; gives them back when destroyed.
class DescriptorHog {
 public:
  DescriptorHog() {
    for (int fd; (fd = ::open("/dev/null", O_RDONLY)) >= 0;) held_.push_back(fd);
    failed_with_ = errno;
  }
  ~DescriptorHog() {
    for (const int fd : held_) ::close(fd);
  }
  int failed_with() const { return failed_with_; }

 private:
  std::vector<int> held_;
  int failed_with_ = 0;
};

}  // namespace

TEST_CASE("Out of file descriptors, the server waits to accept again instead of spinning",
          "[admin][http]") {
  Fixture f;
  const int port = f.server->port();
  asio::io_context io;
  tcp::socket client(io);
  client.open(tcp::v4());  // its descriptor, taken before the limit
  rlimit original{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &original) == 0);
  {
    // No descriptor left for the server's accept: the connection waits in the backlog. A low
    // limit keeps the hog small.
    rlimit tight = original;
    tight.rlim_cur = std::min<rlim_t>(original.rlim_cur, 256);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    struct Restore {
      const rlimit& limit;
      ~Restore() { setrlimit(RLIMIT_NOFILE, &limit); }
    } restore{original};
    const DescriptorHog hog;
    REQUIRE(hog.failed_with() == EMFILE);
    client.connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    const double cpu_before = process_cpu_seconds();
    std::this_thread::sleep_for(1500ms);
    // A busy loop of accept() and a log line would use most of a core meanwhile.
    CHECK(process_cpu_seconds() - cpu_before < 0.3);
  }
  // Descriptors again: the waiting connection is accepted and served.
  asio::write(
      client,
      asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
  std::string response;
  boost::system::error_code ec;
  std::array<char, 1024> chunk{};
  while (!ec) response.append(chunk.data(), client.read_some(asio::buffer(chunk), ec));
  CHECK(status_of(response) == 200);
  f.check_alive();
}
#endif  // __SANITIZE_ADDRESS__

TEST_CASE("Admin server refuses an address it cannot bind, naming it", "[admin][http]") {
  Fixture f;
  AdminServerOptions o;
  o.bind_address = "127.0.0.1";
  o.port = f.server->port();  // taken
  ServiceMetrics metrics("v1", "exactly_once");
  AccountQueries queries;
  CHECK_THROWS_WITH(AdminServer(o, make_admin_handler(metrics, queries)),
                    Catch::Contains("cannot listen on 127.0.0.1:" + std::to_string(o.port)));
  o.bind_address = "not-an-ip";
  CHECK_THROWS_WITH(AdminServer(o, make_admin_handler(metrics, queries)),
                    Catch::Contains("admin.bind_address"));
}
