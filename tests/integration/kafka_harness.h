// Helpers for tests against the real Kafka broker that CTest starts (fixture `kafka`, see
// tests/CMakeLists.txt and scripts/kafka.sh): child processes, topics, reading them back.
#pragma once

#include <librdkafka/rdkafka.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace pqa::test {

/// The broker's directory (env PQA_TEST_KAFKA_DIR) and bootstrap address.
std::string broker_dir();
std::string bootstrap();

/// The broker's SASL_SSL listener (SASL/PLAIN over TLS, see scripts/kafka.sh).
struct SecureListener {
  std::string bootstrap;
  std::string ca_path;  ///< PEM of the CA that signed the broker's certificate
  std::string username;
  std::string password;
};
SecureListener secure_listener();

/// A test's scratch directory; kept for inspection when PQA_TEST_KEEP is set.
class TempDir : public scorer::TempDir {
 public:
  TempDir();
};

/// Sets an environment variable for the scope's life, then restores its previous value (or
/// its absence).
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> previous_;
};

/// A broker of the test's own (scripts/kafka.sh in a temp dir), for tests that disturb it;
/// while it lives, broker_dir() and bootstrap() name it. Started with the broker properties
/// in PQA_KAFKA_BROKER_PROPERTIES, if set (scripts/kafka.sh).
class ScopedBroker {
 public:
  ScopedBroker();
  ~ScopedBroker();
  ScopedBroker(const ScopedBroker&) = delete;
  ScopedBroker& operator=(const ScopedBroker&) = delete;
  /// scripts/kafka.sh restart: stop and start again on the same ports and data.
  void restart();
  /// scripts/kafka.sh set-password: restart with `password` as the SASL user's password.
  void set_password(const std::string& password);

 private:
  TempDir dir_;
  std::optional<ScopedEnv> names_it_;  ///< PQA_TEST_KAFKA_DIR, once the broker runs
};

/// A name no other test run uses (topics, groups).
std::string unique_name(const std::string& prefix);

/// A child process; killed (SIGKILL) and reaped at scope exit if still running.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
        const std::string& stdout_path, const std::string& stderr_path);
  ~Child();
  Child(Child&& other) noexcept;
  Child& operator=(Child&&) = delete;
  Child(const Child&) = delete;
  void signal(int sig);
  /// Waits for exit; returns the exit code, or 128 + signal.
  int wait();
  /// Waits up to `timeout`; nullopt if still running.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  bool running();

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// Runs a command to completion; returns its exit code. Output goes to the given files.
int run(const std::vector<std::string>& argv, const std::string& stdout_path = "/dev/null",
        const std::string& stderr_path = "/dev/null");

void create_topic(const std::string& name, int partitions,
                  const std::map<std::string, std::string>& config = {});

struct Record {
  int partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string value;
  bool null_value = false;
  std::map<std::string, std::string> headers;
};

/// Every committed record of every partition of `topic`, partition by partition.
std::vector<Record> read_topic(const std::string& topic);

/// Deletes a consumer group and its committed offsets (DeleteGroups), retrying while its last
/// member is still leaving; returns the group's error (NO_ERROR once deleted).
rd_kafka_resp_err_t delete_group(const std::string& group);

/// Waits until `group` has committed offsets at the end of every partition of `topic`.
bool wait_consumed(const std::string& group, const std::string& topic,
                   std::chrono::milliseconds timeout);

std::vector<std::string> read_lines(const std::string& path);
void write_file(const std::string& path, const std::string& text);

struct HttpAnswer {
  int status = 0;  ///< 0: no answer (connection refused or closed)
  std::string body;
};
/// GET http://127.0.0.1:port/target over a fresh connection.
HttpAnswer http_get(int port, const std::string& target);
/// The admin port an instance logged ("listening"), waiting up to 60 s for the line.
int admin_port(const std::string& log_path);

}  // namespace pqa::test
