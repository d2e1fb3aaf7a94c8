// The YAML loader: the shipped config works as is, and every error names its key.
#include <catch2/catch.hpp>

#include "config_loader.h"
#include "harness.h"

using namespace pqa;
using scorer::ConfigException;
using scorer::parse_config;

namespace {
std::string key_of_error(const std::string& yaml) {
  try {
    parse_config(yaml);
  } catch (const ConfigException& e) {
    return e.key();
  }
  return "(no error)";
}
}  // namespace

TEST_CASE("the shipped config loads and matches the documented defaults", "[config]") {
  const auto config = scorer::load_config(std::string(PQA_SOURCE_DIR) + "/config/scorer.yaml");
  auto expected = test::shipped_model_config();
  expected.decay.segments = {
      {"smb", 0, 99, 10.0}, {"mid_market", 100, 999, 14.0}, {"enterprise", 1000, 1e18, 30.0}};
  CHECK(rollup::Model(config.model).version() == rollup::Model(expected).version());
  CHECK(config.processor.flush_every_events == 1000000);
  CHECK(config.processor.max_pending_bytes == 64u << 20);
  CHECK(config.rocksdb.block_cache_bytes == 256u << 20);
}

TEST_CASE("an empty config means every default", "[config]") {
  const auto config = parse_config("");
  CHECK(rollup::Model(config.model).version() == rollup::Model(rollup::ModelConfig{}).version());
}

TEST_CASE("config errors name the key and the problem", "[config]") {
  CHECK(key_of_error("model: {weights: {breadth: 0.5}}") == "model.weights");
  CHECK(key_of_error("model: {weigths: {}}") == "model.weigths");
  CHECK(key_of_error("model: {bands: {hot: abc}}") == "model.bands.hot");
  CHECK(key_of_error("model: {bands: {hot: 50}}") == "model.bands");
  CHECK(key_of_error("model: {engagement: {half_life_days: -1}}") ==
        "model.engagement.half_life_days");
  CHECK(key_of_error("model: {taxonomy: {events: [{name: X, kind: sales}]}}") ==
        "model.taxonomy.events[0].kind");
  CHECK(key_of_error("model: {fit: {rules: [{trait: x, weight: 1}]}}") == "model.fit.rules[0]");
  CHECK(key_of_error("model: {fit: {rules: [{trait: x, between: [1], weight: 1}]}}") ==
        "model.fit.rules[0].between");
  CHECK(key_of_error("input: {max_event_bytes: 10}") == "input.max_event_bytes");
  CHECK(key_of_error("state: {cache: {accounts: -5}}") == "state.cache.accounts");
  CHECK(key_of_error("state: {rocksdb: {disable_wal: maybe}}") == "state.rocksdb.disable_wal");
  CHECK(key_of_error("model: [1, 2]") == "model");
  CHECK(key_of_error("model: {weights: {breadth: 0.5\n") == "(yaml)");
  try {
    parse_config("model: {bands: {hot: abc}}");
  } catch (const ConfigException& e) {
    CHECK(std::string(e.what()) == "model.bands.hot: must be a number, got 'abc'");
  }
}

TEST_CASE("taxonomy entries override defaults by name and add new events", "[config]") {
  const auto config = parse_config(R"(
model:
  taxonomy:
    events:
      - { name: Seat Added, weight: 2 }
      - { name: Deal Room Opened, kind: commercial_intent }
)");
  const rollup::Model model(config.model);
  REQUIRE(model.rule_for("Seat Added") != nullptr);
  CHECK(model.rule_for("Seat Added")->weight == 2.0);
  CHECK(model.rule_for("Seat Added")->quantity_property == "seats");  // kept from the default
  REQUIRE(model.rule_for("Deal Room Opened") != nullptr);
  CHECK(model.rule_for("Deal Room Opened")->kind == rollup::EventKind::kCommercialIntent);
  CHECK(model.rule_for("Report Created") == nullptr);
}

TEST_CASE("the model version changes with any parameter", "[config]") {
  rollup::ModelConfig a, b;
  b.bands.hysteresis = 2.5;
  CHECK(rollup::Model(a).version() != rollup::Model(b).version());
  CHECK(rollup::Model(a).version() == rollup::Model(rollup::ModelConfig{}).version());
}
