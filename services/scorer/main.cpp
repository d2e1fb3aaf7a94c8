// pqa-scorer: the PQA stream scorer's command-line entry point.
#include <CLI/CLI.hpp>

#include "demo.h"
#include "relay_service.h"
#include "replay.h"
#include "run.h"

int main(int argc, char** argv) {
  CLI::App app{"pqa-scorer: product-qualified account scoring over Segment event streams"};
  app.require_subcommand(1);

  pqa::scorer::ReplayOptions replay;
  std::string as_of, state_dir;
  auto* cmd = app.add_subcommand(
      "replay",
      "Score a file of events offline (file order, event time) and write signals and "
      "final scores as JSON lines");
  cmd->add_option("--config", replay.config_path, "Scorer configuration (YAML)")->required();
  cmd->add_option("--input", replay.input, "Events, one JSON object per line; - for stdin")
      ->required();
  cmd->add_option("--signals", replay.signals_path, "Where to write signals; - for stdout")
      ->required();
  cmd->add_option("--scores", replay.scores_path, "Where to write one score line per account")
      ->required();
  cmd->add_option("--as-of", as_of,
                  "After the input, advance the clock to this time, firing every timer");
  cmd->add_option("--state-dir", state_dir, "RocksDB state directory (default: a temp dir)");
  cmd->add_flag("--strict", replay.strict, "Exit 1 if any input line was rejected");
  cmd->add_option("--partitions", replay.partitions,
                  "Split the events by account into N partitions as Kafka's default "
                  "partitioner does, each with its own clock: what `run` computes")
      ->check(CLI::Range(1, 100000));
  std::string scores_at = "end";
  cmd->add_option("--scores-at", scores_at,
                  "Evaluate each score at the end of the input (end) or at the account's "
                  "last change (account, as the service's scores topic publishes it)")
      ->check(CLI::IsMember({"end", "account"}));

  pqa::scorer::RunOptions run;
  std::string run_state_dir;
  auto* run_cmd = app.add_subcommand(
      "run",
      "Run the streaming service: consume events from Kafka, keep state in RocksDB, emit "
      "signals, scores and a changelog (until SIGTERM/SIGINT)");
  run_cmd->add_option("--config", run.config_path, "Scorer configuration (YAML)")->required();
  run_cmd->add_option("--state-dir", run_state_dir, "Overrides service.state_dir");

  pqa::scorer::DemoOptions demo;
  auto* demo_cmd = app.add_subcommand(
      "demo",
      "Run the whole streaming pipeline on an embedded default: an in-process Kafka (librdkafka's "
      "mock cluster), generated traffic, RocksDB in a temp dir; prints signals as they are "
      "emitted");
  demo_cmd->add_option("--config", demo.config_path, "Scorer configuration (default: built-in)");
  demo_cmd->add_option("--events", demo.events, "Events to generate")
      ->check(CLI::Range(1, 100000000));
  demo_cmd->add_option("--accounts", demo.accounts, "Accounts")->check(CLI::Range(1, 100000000));
  demo_cmd->add_option("--rate", demo.rate, "Events per second (0: as fast as possible)")
      ->check(CLI::Range(0.0, 1e7));
  demo_cmd->add_option("--seed", demo.seed, "Generator seed");

  pqa::scorer::RelayOptions relay;
  auto* relay_cmd = app.add_subcommand(
      "relay",
      "Run the CRM fast lane: consume the signals topic and deliver each signal to the "
      "configured webhook and CRM endpoints, signed and retried (until SIGTERM/SIGINT)");
  relay_cmd->add_option("--config", relay.config_path, "Configuration with a relay: section")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" that exit 0; every other parse error is a usage
    // error, which exits 2 as documented (CLI11's own codes are 100 and up).
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (relay_cmd->parsed()) return pqa::scorer::run_relay(relay);
  if (demo_cmd->parsed()) return pqa::scorer::run_demo(demo);
  if (run_cmd->parsed()) {
    if (!run_state_dir.empty()) run.state_dir = run_state_dir;
    return pqa::scorer::run_service(run);
  }
  if (!as_of.empty()) replay.as_of = as_of;
  if (scores_at == "account") replay.scores_at = pqa::scorer::ReplayOptions::ScoresAt::kAccount;
  if (!state_dir.empty()) replay.state_dir = state_dir;
  return pqa::scorer::run_replay(replay);
}
