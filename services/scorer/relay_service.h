// `pqa-scorer relay`: the CRM fast lane. Consumes the signals topic in its own consumer group
// and delivers each signal to the endpoints whose routes match it, signed (Standard
// Webhooks), retried, in order per account, at least once: a partition's offset is committed
// only past signals that every matching endpoint has delivered or dead-lettered.
//
// One thread runs everything: an Asio io_context drives the HTTP requests and timers, and
// librdkafka wakes it through a pipe when its queues have something (queue IO events), so the
// delivery state (relay_dispatch.h) needs no lock. The admin server (probes, /metrics) runs on
// its own thread and reads only atomic metrics.
#pragma once

#include <string>

namespace pqa::scorer {

struct RelayOptions {
  std::string config_path;
};

/// Until SIGTERM/SIGINT. Exit code: 0 after a clean stop, 2 for a configuration error, 3 for
/// an unrecoverable Kafka error.
int run_relay(const RelayOptions& options);

}  // namespace pqa::scorer
