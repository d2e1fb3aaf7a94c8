#include "run.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <stdexcept>

#include "admin_routes.h"
#include "admin_server.h"
#include "config_loader.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "state_store.h"
#include "stream_service.h"

namespace pqa::scorer {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void request_stop(int) {
  g_stop.store(true);  // lock-free atomic: async-signal-safe
}

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = &request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

}  // namespace

int run_service(const RunOptions& options) {
  install_signal_handlers();  // first: a SIGTERM during start-up is a graceful stop too
  ServiceConfig config;
  try {
    config = load_config(options.config_path);
    if (options.state_dir) config.service.state_dir = *options.state_dir;
  } catch (const ConfigException& e) {
    log::error("config", e.what(), {{"key", e.key()}});
    return 2;
  }
  const auto& level = config.service.log_level;
  log::set_min_level(level == "debug"   ? log::Level::kDebug
                     : level == "warn"  ? log::Level::kWarn
                     : level == "error" ? log::Level::kError
                                        : log::Level::kInfo);
  const bool exactly_once = config.kafka.processing == Processing::kExactlyOnce;
  ServiceMetrics metrics(rollup::Model(config.model).version(),
                         exactly_once ? "exactly_once" : "at_least_once");
  AccountQueries queries(std::chrono::milliseconds(config.admin.server.request_timeout_ms));
  std::unique_ptr<AdminServer> admin;
  try {
    // First, so that probes and metrics answer while the service connects and restores.
    if (config.admin.enabled) {
      admin =
          std::make_unique<AdminServer>(config.admin.server, make_admin_handler(metrics, queries));
      log::info(
          "admin", "listening",
          {{"address", config.admin.server.bind_address}, {"port", std::to_string(admin->port())}});
    }
  } catch (const std::runtime_error& e) {  // the address is checked with the config: the port
    log::error("config", e.what(), {{"key", "admin.port"}});
    return 2;
  }
  try {
    StreamService service(config, g_stop, metrics, config.admin.enabled ? &queries : nullptr);
    service.run();
    return 0;
  } catch (const ConfigException& e) {
    log::error("config", e.what(), {{"key", e.key()}});
    return 2;
  } catch (const kafka::KafkaError& e) {
    log::error("service", "stopping on a Kafka error", {{"error", e.what()}});
    return 3;
  } catch (const StoreError& e) {
    log::error("service", "stopping on a storage error", {{"error", e.what()}});
    return 3;
  } catch (const std::exception& e) {
    // Anything else (out of memory, say) still ends with a log line and an exit code, not
    // std::terminate's abort.
    log::error("service", "stopping on an unexpected error", {{"error", e.what()}});
    return 4;
  }
}

}  // namespace pqa::scorer
