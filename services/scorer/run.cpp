#include "run.h"

#include <atomic>
#include <csignal>

#include "config_loader.h"
#include "kafka.h"
#include "log.h"
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
  try {
    StreamService service(config, g_stop);
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
  }
}

}  // namespace pqa::scorer
