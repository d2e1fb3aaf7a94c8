#include "kafka_harness.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "kafka.h"

namespace pqa::test {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
namespace kafka = pqa::scorer::kafka;

std::string broker_dir() {
  const char* dir = std::getenv("PQA_TEST_KAFKA_DIR");
  if (dir == nullptr) throw std::runtime_error("PQA_TEST_KAFKA_DIR is not set (run via ctest)");
  return dir;
}

namespace {
/// The first line of a file scripts/kafka.sh wrote into the broker's directory.
std::string broker_file_line(const std::string& name) {
  auto lines = read_lines(broker_dir() + "/" + name);
  if (lines.empty()) throw std::runtime_error("no " + name + " file in " + broker_dir());
  return lines.front();
}
}  // namespace

std::string bootstrap() {
  return broker_file_line("bootstrap");
}

SecureListener secure_listener() {
  return {broker_file_line("secure_bootstrap"), broker_dir() + "/tls/ca.pem", "scorer",
          broker_file_line("sasl_password")};
}

TempDir::TempDir() : scorer::TempDir("pqa-test") {
  if (std::getenv("PQA_TEST_KEEP") != nullptr) keep();  // for debugging: logs, events, state
}

ScopedEnv::ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
  if (const char* previous = std::getenv(name_.c_str())) previous_ = previous;
  ::setenv(name_.c_str(), value.c_str(), 1);
}

ScopedEnv::~ScopedEnv() {
  if (previous_)
    ::setenv(name_.c_str(), previous_->c_str(), 1);
  else
    ::unsetenv(name_.c_str());
}

ScopedBroker::ScopedBroker() {
  if (run({PQA_SOURCE_DIR "/scripts/kafka.sh", "start", dir_.path()}, "/dev/null",
          dir_.path() + "/start.err") != 0)
    throw std::runtime_error("could not start a broker in " + dir_.path());
  names_it_.emplace("PQA_TEST_KAFKA_DIR", dir_.path());
}

ScopedBroker::~ScopedBroker() {
  run({PQA_SOURCE_DIR "/scripts/kafka.sh", "stop", dir_.path()});
  names_it_.reset();
}

void ScopedBroker::restart() {
  if (run({PQA_SOURCE_DIR "/scripts/kafka.sh", "restart", dir_.path()}, "/dev/null",
          dir_.path() + "/restart.err") != 0)
    throw std::runtime_error("could not restart the broker in " + dir_.path());
}

void ScopedBroker::set_password(const std::string& password) {
  if (run({PQA_SOURCE_DIR "/scripts/kafka.sh", "set-password", dir_.path(), password}, "/dev/null",
          dir_.path() + "/restart.err") != 0)
    throw std::runtime_error("could not restart the broker in " + dir_.path());
}

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

Child::Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
             const std::string& stdout_path, const std::string& stderr_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    const int out = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out >= 0) ::dup2(out, 1);
    if (err >= 0) ::dup2(err, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
}

Child::Child(Child&& other) noexcept : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
}

Child::~Child() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    (void)wait();
  }
}

void Child::signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

static int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int Child::wait() {
  if (status_) return *status_;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = decode_status(status);
  return *status_;
}

std::optional<int> Child::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!status_) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = decode_status(status);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
  return status_;
}

bool Child::running() {
  return !wait_for(0ms).has_value();
}

int run(const std::vector<std::string>& argv, const std::string& stdout_path,
        const std::string& stderr_path) {
  Child child(argv, {}, stdout_path, stderr_path);
  return child.wait();
}

namespace {

kafka::Handle client(rd_kafka_type_t type, kafka::Properties extra = {}) {
  extra["bootstrap.servers"] = bootstrap();
  return kafka::make_client(type, kafka::make_conf(extra));
}

}  // namespace

void create_topic(const std::string& name, int partitions,
                  const std::map<std::string, std::string>& config) {
  auto admin = client(RD_KAFKA_PRODUCER);
  kafka::create_topics(admin.get(), {{name, partitions, 1, config}}, 10s);
  // Wait until the metadata shows it, so producers do not race its creation.
  for (int i = 0; i < 100; ++i) {
    if (kafka::partition_count(admin.get(), name, 5s) == partitions) return;
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error("topic " + name + " did not appear");
}

namespace {

rd_kafka_resp_err_t delete_group_once(rd_kafka_t* admin, const std::string& group) {
  std::unique_ptr<rd_kafka_queue_t, decltype(&rd_kafka_queue_destroy)> queue(
      rd_kafka_queue_new(admin), rd_kafka_queue_destroy);
  std::unique_ptr<rd_kafka_DeleteGroup_t, decltype(&rd_kafka_DeleteGroup_destroy)> request(
      rd_kafka_DeleteGroup_new(group.c_str()), rd_kafka_DeleteGroup_destroy);
  rd_kafka_DeleteGroup_t* requests[] = {request.get()};
  rd_kafka_DeleteGroups(admin, requests, 1, nullptr, queue.get());
  std::unique_ptr<rd_kafka_event_t, decltype(&rd_kafka_event_destroy)> event(
      rd_kafka_queue_poll(queue.get(), 30000), rd_kafka_event_destroy);
  if (!event) return RD_KAFKA_RESP_ERR__TIMED_OUT;
  if (const auto err = rd_kafka_event_error(event.get())) return err;
  std::size_t count = 0;
  const rd_kafka_group_result_t** results =
      rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(event.get()), &count);
  if (count != 1) return RD_KAFKA_RESP_ERR__FAIL;
  const rd_kafka_error_t* error = rd_kafka_group_result_error(results[0]);
  return error ? rd_kafka_error_code(error) : RD_KAFKA_RESP_ERR_NO_ERROR;
}

}  // namespace

rd_kafka_resp_err_t delete_group(const std::string& group) {
  auto admin = client(RD_KAFKA_PRODUCER);
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__FAIL;
  for (int attempt = 0; attempt < 60; ++attempt) {
    err = delete_group_once(admin.get(), group);
    if (err != RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP &&
        err != RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS)
      return err;
    std::this_thread::sleep_for(500ms);
  }
  return err;
}

std::vector<Record> read_topic(const std::string& topic) {
  auto consumer = client(RD_KAFKA_CONSUMER, {{"group.id", unique_name("reader")},
                                             {"enable.auto.commit", "false"},
                                             {"enable.partition.eof", "true"},
                                             {"isolation.level", "read_committed"}});
  const auto partitions = kafka::partition_count(consumer.get(), topic, 10s);
  if (!partitions) throw std::runtime_error("no topic " + topic);
  std::vector<Record> records;
  for (int p = 0; p < *partitions; ++p) {
    auto [low, high] = kafka::query_watermarks(consumer.get(), topic, p, 10s);
    if (high <= low) continue;
    auto list = kafka::make_partition_list(1);
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = low;
    kafka::throw_if(rd_kafka_assign(consumer.get(), list.get()), "assign");
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (bool done = false; !done;) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("reading " + topic + " timed out");
      kafka::Message m(rd_kafka_consumer_poll(consumer.get(), 200));
      if (!m) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        done = true;
        continue;
      }
      if (m->err) continue;
      Record r;
      r.partition = m->partition;
      r.offset = m->offset;
      if (m->key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      r.null_value = m->payload == nullptr;
      if (m->payload) r.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(m.get(), &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        std::size_t size = 0;
        for (std::size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                                RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i)
          r.headers[name] = std::string(static_cast<const char*>(value), size);
      }
      records.push_back(std::move(r));
    }
    rd_kafka_assign(consumer.get(), nullptr);
  }
  return records;
}

bool wait_consumed(const std::string& group, const std::string& topic,
                   std::chrono::milliseconds timeout) {
  auto consumer = client(RD_KAFKA_CONSUMER, {{"group.id", group}, {"enable.auto.commit", "false"}});
  const auto partitions = kafka::partition_count(consumer.get(), topic, 10s);
  if (!partitions) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto list = kafka::make_partition_list(*partitions);
    for (int p = 0; p < *partitions; ++p)
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
    bool all = rd_kafka_committed(consumer.get(), list.get(), 10000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int p = 0; all && p < *partitions; ++p) {
      const auto [low, high] = kafka::query_watermarks(consumer.get(), topic, p, 10s);
      const auto committed = list->elems[p].offset;
      if (high > low && committed < high) all = false;
    }
    if (all) return true;
    std::this_thread::sleep_for(200ms);
  }
  return false;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace pqa::test

namespace pqa::test {

HttpAnswer http_get(int port, const std::string& target) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                static_cast<unsigned short>(port)),
                 ec);
  if (ec) return {};
  http::request<http::empty_body> request(http::verb::get, target, 11);
  request.set(http::field::host, "127.0.0.1");
  http::write(stream, request, ec);
  if (ec) return {};
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response, ec);
  if (ec) return {};
  return {static_cast<int>(response.result_int()), response.body()};
}

int admin_port(const std::string& log_path) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const std::string marker = "\"port\":\"";
  while (std::chrono::steady_clock::now() < deadline) {
    int port = 0;
    for (const auto& line : read_lines(log_path))
      if (line.find("\"message\":\"listening\"") != std::string::npos) {
        const auto at = line.find(marker) + marker.size();
        port = std::stoi(line.substr(at, line.find('"', at) - at));
      }
    if (port > 0) return port;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("no admin port logged in " + log_path);
}

}  // namespace pqa::test
