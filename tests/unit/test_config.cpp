// The YAML loader: the shipped config works as is, and every error names its key.
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "config_loader.h"
#include "harness.h"
#include "partitioning.h"
#include "stream_service.h"

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

TEST_CASE("the shipped config is the built-in defaults", "[config]") {
  const auto shipped = scorer::load_config(std::string(PQA_SOURCE_DIR) + "/config/scorer.yaml");
  const auto empty = parse_config("");
  CHECK(rollup::Model(shipped.model).version() == rollup::Model(empty.model).version());
  CHECK(rollup::Model(shipped.model).version() == rollup::Model(rollup::ModelConfig{}).version());
  CHECK(shipped.processor.flush_every_events == empty.processor.flush_every_events);
  CHECK(shipped.processor.max_pending_bytes == empty.processor.max_pending_bytes);
  CHECK(shipped.processor.account_cache_entries == empty.processor.account_cache_entries);
  CHECK(shipped.rocksdb.block_cache_bytes == empty.rocksdb.block_cache_bytes);
  CHECK(shipped.rocksdb.new_key_filter_bytes == empty.rocksdb.new_key_filter_bytes);
  CHECK(parse_config("state: { rocksdb: { new_key_filter_mb: 0 } }").rocksdb.new_key_filter_bytes ==
        0);
  // The decoder's limits are not model parameters (not in the model version): each by hand.
  CHECK(shipped.model.decoder.max_clock_jump_days == empty.model.decoder.max_clock_jump_days);
  CHECK(shipped.model.decoder.max_event_bytes == empty.model.decoder.max_event_bytes);
  CHECK(shipped.model.decoder.max_id_bytes == empty.model.decoder.max_id_bytes);
  CHECK(shipped.processor.allowed_lateness_ms == empty.processor.allowed_lateness_ms);
  CHECK(shipped.processor.user_cache_entries == empty.processor.user_cache_entries);
  CHECK(shipped.processor.identity_cache_entries == empty.processor.identity_cache_entries);
  CHECK(shipped.model.decoder.max_clock_jump_days == 30);
  CHECK(shipped.kafka.catch_up.lag_events == empty.kafka.catch_up.lag_events);
  CHECK(shipped.kafka.catch_up.commit_interval_ms == empty.kafka.catch_up.commit_interval_ms);
  CHECK(shipped.kafka.commit_interval_ms == empty.kafka.commit_interval_ms);
  CHECK(shipped.admin.gauge_refresh_ms == empty.admin.gauge_refresh_ms);
}

TEST_CASE("an unset catch-up interval is never shorter than the commit interval", "[config]") {
  // A config written before kafka.catch_up, with a long interval, keeps working.
  const auto c = parse_config("kafka: {commit_interval_ms: 5000}");
  CHECK(c.kafka.catch_up.commit_interval_ms == 5000);
  CHECK(parse_config("kafka: {commit_interval_ms: 200}").kafka.catch_up.commit_interval_ms == 1000);
}

TEST_CASE("a listed set of fit rules or segments replaces the defaults", "[config]") {
  const auto c = parse_config(R"(
model:
  fit: { rules: [ { trait: plan, equals: Enterprise, weight: 1 } ] }
  decay: { segments: [] }
)");
  REQUIRE(c.model.fit_rules.size() == 1);
  CHECK(c.model.fit_rules[0].values == std::vector<std::string>{"enterprise"});
  CHECK(c.model.decay.segments.empty());
}

TEST_CASE("a list entry has one check: the model's and the YAML loader's problems agree",
          "[config]") {
  const auto error_of = [](const std::string& yaml) -> std::string {
    try {
      parse_config(yaml);
    } catch (const ConfigException& e) {
      return e.what();
    }
    return "(no error)";
  };
  rollup::ModelConfig m;
  m.fit_rules = {{"x", rollup::FitOp::kBetween, {}, 5.0, 1.0, 1.0}};
  m.events.push_back({"X", rollup::EventKind::kUsage, -1.0, "", 0.0});
  m.decay.segments = {{"smb", 0.0, 10.0, 0.0}};
  const auto errors = rollup::validate(m);
  REQUIRE(errors.size() == 3);
  const std::string last_event = std::to_string(m.events.size() - 1);
  CHECK(errors[0].key == "taxonomy.events[" + last_event + "].weight");
  CHECK(errors[1].key == "fit.rules[0].between");
  CHECK(errors[2].key == "decay.segments[0].half_life_days");
  // The loader names the entry's place in the file, with the model's words.
  CHECK(error_of("model: {taxonomy: {events: [{name: X, weight: -1}]}}") ==
        "model.taxonomy.events[0].weight: " + errors[0].problem);
  CHECK(error_of("model: {fit: {rules: [{trait: x, between: [5, 1], weight: 1}]}}") ==
        "model.fit.rules[0].between: " + errors[1].problem);
  CHECK(
      error_of("model: {decay: {segments: [{name: smb, max_employees: 10, half_life_days: 0}]}}") ==
      "model.decay.segments[0].half_life_days: " + errors[2].problem);
}

TEST_CASE("config errors name the key and the problem", "[config]") {
  CHECK(key_of_error("model: {weights: {breadth: 0.5}}") == "model.weights");
  CHECK(key_of_error("model: {weigths: {}}") == "model.weigths");
  // A second YAML document would be dropped by a one-document reader: refused, not ignored.
  CHECK(key_of_error("model: {bands: {nurture: 40}}\n---\ninput: {max_event_bytes: 1}\n") ==
        "(yaml)");
  CHECK(key_of_error("---\nmodel: {bands: {nurture: 40}}\n") == "(no error)");
  // An empty kind is a wrong kind, not an absent one.
  CHECK(key_of_error("model: {taxonomy: {events: [{name: Seat Added, kind: ''}]}}") ==
        "model.taxonomy.events[0].kind");
  // A misspelt fit operator is named as the unknown key it is.
  CHECK(key_of_error("model: {fit: {rules: [{trait: plan, equal: team, weight: 1}]}}") ==
        "model.fit.rules[0].equal");
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
  CHECK(key_of_error("model: {[a, b]: 1}") == "(yaml)");  // a list as a key
  CHECK(key_of_error("model: {taxonomy: {events: [{name: X}, {name: X}]}}") ==
        "model.taxonomy.events[1].name");
  // The entry's place in the file, not in the list merged with the built-in events.
  CHECK(key_of_error("model: {taxonomy: {events: [{name: X, seat_delta: 1e300}]}}") ==
        "model.taxonomy.events[0].seat_delta");
  CHECK(key_of_error("model: {taxonomy: {events: [{name: Query Run, weight: -1}]}}") ==
        "model.taxonomy.events[0].weight");
  CHECK(key_of_error("model: {fit: {rules: [{trait: x, in: [], weight: 1}]}}") ==
        "model.fit.rules[0].in");
  CHECK(key_of_error("model: {fit: {rules: [{trait: x, between: [5, 1], weight: 1}]}}") ==
        "model.fit.rules[0].between");
  CHECK(key_of_error("model: {fit: {rules: [{trait: employees, at_least: .nan, weight: 1}]}}") ==
        "model.fit.rules[0].at_least");
  // A repeated key: yaml-cpp would keep the first value and drop the second silently.
  CHECK(key_of_error("kafka: {commit_interval_ms: 80, commit_interval_ms: 1000}") ==
        "kafka.commit_interval_ms");
  CHECK(key_of_error("kafka: {group_id: a}\nkafka: {group_id: b}") == "kafka");
  // Whole numbers are decimal (YAML 1.2): not octal, not hex.
  CHECK(parse_config("kafka: {commit_interval_ms: 010}").kafka.commit_interval_ms == 10);
  CHECK(key_of_error("kafka: {commit_interval_ms: 0x50}") == "kafka.commit_interval_ms");
  CHECK(key_of_error("kafka: {commit_interval_ms: 1e3}") == "kafka.commit_interval_ms");
  CHECK(key_of_error("kafka: {max_batch_events: 99999999999999999999999}") ==
        "kafka.max_batch_events");
  CHECK(key_of_error("state: {max_pending_mb: 17592186044416}") == "state.max_pending_mb");
  CHECK(key_of_error("state: {rocksdb: {write_buffer_mb: 17592186044417}}") ==
        "state.rocksdb.write_buffer_mb");
  // librdkafka's own check of each property, as a configuration error naming it.
  CHECK(key_of_error("kafka: {properties: {sasl.pasword: x}}") == "kafka.properties.sasl.pasword");
  CHECK(key_of_error("kafka: {producer_properties: {compression.type: zip}}") ==
        "kafka.producer_properties.compression.type");
  CHECK(key_of_error("admin: {bind_address: localhost}") == "admin.bind_address");
  CHECK(key_of_error("kafka: {timeout_ms: 2147483647}") == "kafka.timeout_ms");
  // Each topic has one role.
  CHECK(key_of_error("kafka: {topics: {dead_letter: product-events}}") ==
        "kafka.topics.dead_letter");
  CHECK(key_of_error("kafka: {topics: {changelog: pqa-scores}}") == "kafka.topics.changelog");
  CHECK(key_of_error("relay: {dead_letter_topic: pqa-signals}") == "relay.dead_letter_topic");
  CHECK(key_of_error("relay: {dead_letter_topic: pqa-dead-letter}") == "(no error)");  // harmless
  CHECK(key_of_error("kafka: {properties: {sasl.username: a, sasl.username: b}}") ==
        "kafka.properties.sasl.username");
  CHECK(key_of_error("kafka: {properties: {plugin.library.paths: /nonexistent/plugin.so, "
                     "some.plugin.setting: x}}") == "(no error)");  // the service loads plugins
  // 64-bit counts are decimal too.
  CHECK(parse_config("kafka: {catch_up: {lag_events: 0100000}}").kafka.catch_up.lag_events ==
        100000);
  CHECK(key_of_error("kafka: {catch_up: {lag_events: 0x10000}}") == "kafka.catch_up.lag_events");
  try {  // a secret's value is never quoted, whatever librdkafka's message says
    parse_config("kafka: {properties: {sasl.passwd: hunter2}}");
    FAIL("an unknown property was accepted");
  } catch (const ConfigException& e) {
    CHECK(e.key() == "kafka.properties.sasl.passwd");
    CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
  }
  CHECK(key_of_error("input: {max_clock_jump_days: -1}") == "input.max_clock_jump_days");
  CHECK(key_of_error("admin: {gauge_refresh_ms: 50}") == "admin.gauge_refresh_ms");
  CHECK(key_of_error("kafka: {consumer_properties: {statistics.interval.ms: 0}}") ==
        "kafka.consumer_properties.statistics.interval.ms");
  CHECK(key_of_error("kafka: {restore_consumer_properties: {fetch.wait.max.ms: soon}}") ==
        "kafka.restore_consumer_properties.fetch.wait.max.ms");
  CHECK(parse_config("kafka: {restore_consumer_properties: {client.id: restorer}}")
            .kafka.restore_consumer_properties.at("client.id") == "restorer");
  CHECK(key_of_error("kafka: {properties: {statistics.interval.ms: off}}") ==
        "kafka.properties.statistics.interval.ms");
  CHECK(key_of_error("kafka: {properties: {statistics.interval.ms: 0}, "
                     "consumer_properties: {statistics.interval.ms: 1000}}") == "(no error)");
  CHECK(key_of_error("kafka: {catch_up: {lag_events: -1}}") == "kafka.catch_up.lag_events");
  CHECK(key_of_error("kafka: {catch_up: {lag_events: 999}}") == "kafka.catch_up.lag_events");
  CHECK(key_of_error("kafka: {catch_up: {commit_interval_ms: 50}}") ==
        "kafka.catch_up.commit_interval_ms");  // shorter than kafka.commit_interval_ms
  CHECK(key_of_error("kafka: {catch_up: {commit_interval_ms: 50, lag_events: 0}}") ==
        "(no error)");  // off: its interval is never used
  CHECK(key_of_error("kafka: {catch_up: {lag: 5}}") == "kafka.catch_up.lag");
  // A transaction open longer than transaction.timeout.ms is aborted by the broker.
  CHECK(key_of_error("kafka: {producer_properties: {transaction.timeout.ms: 1500}}") ==
        "kafka.catch_up.commit_interval_ms");
  CHECK(key_of_error("kafka: {commit_interval_ms: 40000, catch_up: {lag_events: 0}}") ==
        "kafka.commit_interval_ms");
  CHECK(key_of_error("kafka: {commit_interval_ms: 40000, catch_up: {lag_events: 0}, "
                     "processing: at_least_once}") == "(no error)");
  CHECK(key_of_error("kafka: {properties: {transaction.timeout.ms: 2000}}") == "(no error)");
  CHECK(key_of_error("kafka: {properties: {transaction.timeout.ms: 90000}, "
                     "producer_properties: {transaction.timeout.ms: 1500}}") ==
        "kafka.catch_up.commit_interval_ms");  // the producer's own value wins
  CHECK(key_of_error("kafka: {properties: {transaction.timeout.ms: 1500}, "
                     "producer_properties: {transaction.timeout.ms: 90000}}") == "(no error)");
  try {
    parse_config("model: {bands: {hot: abc}}");
  } catch (const ConfigException& e) {
    CHECK(std::string(e.what()) == "model.bands.hot: must be a number, got 'abc'");
  }
}

TEST_CASE("settings the model would ignore or overflow on stop start-up", "[config]") {
  // A fit rule without a weight would add nothing; with no positive weight at all, fit is 0
  // for every account and weights.fit is lost from every score.
  CHECK(key_of_error("model: {fit: {rules: [{trait: plan, in: [team]}]}}") ==
        "model.fit.rules[0].weight");
  CHECK(key_of_error("model: {fit: {rules: [{trait: plan, in: [free], weight: -0.5}]}}") ==
        "model.fit.rules");
  CHECK(key_of_error("model: {weights: {breadth: 0.4, depth: 0.35, fabric: 0.25, fit: 0}, "
                     "fit: {rules: [{trait: plan, in: [free], weight: -0.5}]}}") == "(no error)");
  // A usage event feeds engagement only: seats, a quantity or the admin inference on one would
  // be ignored. A built-in fabric event made a usage event drops them.
  CHECK(key_of_error("model: {taxonomy: {events: [{name: Export Run, seat_delta: 1}]}}") ==
        "model.taxonomy.events[0].seat_delta");
  CHECK(key_of_error("model: {taxonomy: {events: [{name: Export Run, quantity_property: n}]}}") ==
        "model.taxonomy.events[0].quantity_property");
  CHECK(key_of_error("model: {taxonomy: {events: [{name: Export Run, infers_admin: true}]}}") ==
        "model.taxonomy.events[0].infers_admin");
  CHECK(key_of_error("model: {taxonomy: {events: [{name: Seat Added, kind: usage, "
                     "seat_delta: 1}]}}") == "model.taxonomy.events[0].seat_delta");
  const auto relabelled =
      parse_config("model: {taxonomy: {events: [{name: Seat Added, kind: usage}]}}");
  const rollup::Model model(relabelled.model);
  REQUIRE(model.rule_for("Seat Added") != nullptr);
  CHECK(model.rule_for("Seat Added")->seat_delta == 0.0);
  CHECK(model.rule_for("Seat Added")->quantity_property.empty());
  // Weights far beyond sense would overflow the fixed-point sums or the decayed doubles.
  CHECK(key_of_error("model: {roles: {admin: 1e10}}") == "model.roles.admin");
  CHECK(key_of_error("model: {roles: {admin: 100}}") == "(no error)");
  CHECK(key_of_error("model: {taxonomy: {events: [{name: Query Run, weight: 1e308}]}}") ==
        "model.taxonomy.events[0].weight");
  CHECK(key_of_error("model: {taxonomy: {default_usage_weight: 1e7}}") ==
        "model.taxonomy.default_usage_weight");
  CHECK(key_of_error("model: {fit: {rules: [{trait: plan, in: [team], weight: 1e9}]}}") ==
        "model.fit.rules[0].weight");
  CHECK(key_of_error("model: {fit: {rules: [{trait: plan, in: [team], weight: 1}, "
                     "{trait: plan, in: [free], weight: -1e9}]}}") == "model.fit.rules[1].weight");
  CHECK(key_of_error("model: {bands: {silence_grace_days: -1}}") ==
        "model.bands.silence_grace_days");
  CHECK(key_of_error("model: {bands: {silence_grace_days: 400}}") ==
        "model.bands.silence_grace_days");
  CHECK(parse_config("model: {bands: {silence_grace_days: 0}}").model.bands.silence_grace_days ==
        0.0);
  try {
    parse_config("model: {roles: {admin: 1e10}}");
    FAIL("no exception");
  } catch (const ConfigException& e) {
    CHECK(std::string(e.what()) == "model.roles.admin: must be at most 100");
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
  CHECK(model.rule_for("Dashboard Viewed") == nullptr);
}

TEST_CASE("the model version changes with any parameter", "[config]") {
  rollup::ModelConfig a, b;
  b.bands.hysteresis = 2.5;
  CHECK(rollup::Model(a).version() != rollup::Model(b).version());
  rollup::ModelConfig no_grace;
  no_grace.bands.silence_grace_days = 0;
  CHECK(rollup::Model(a).version() != rollup::Model(no_grace).version());
  CHECK(rollup::Model(a).version() == rollup::Model(rollup::ModelConfig{}).version());
  // Lists of strings that would read the same joined: a different model, a different version.
  rollup::ModelConfig one_value, two_values;
  one_value.fit_rules = {{"industry", rollup::FitOp::kIn, {"financial services"}, 0, 0, 1}};
  two_values.fit_rules = {{"industry", rollup::FitOp::kIn, {"financial", "services"}, 0, 0, 1}};
  CHECK(rollup::Model(one_value).version() != rollup::Model(two_values).version());
  rollup::ModelConfig other_flag = a;
  other_flag.events.front().infers_admin = !other_flag.events.front().infers_admin;
  CHECK(rollup::Model(a).version() != rollup::Model(other_flag).version());
}

TEST_CASE("kafka settings read environment variables, and an unset one names its key",
          "[config][kafka]") {
  ::setenv("PQA_TEST_BROKERS", "broker-a:9092", 1);
  ::unsetenv("PQA_TEST_UNSET_SECRET");
  const auto config = scorer::parse_config(
      "kafka:\n"
      "  bootstrap_servers: \"${PQA_TEST_BROKERS}\"\n"
      "  group_instance_id: \"${PQA_TEST_UNSET_POD:-pod-0}\"\n"
      "  properties: { sasl.username: scorer }\n");
  CHECK(config.kafka.bootstrap_servers == "broker-a:9092");
  CHECK(config.kafka.group_instance_id == "pod-0");
  CHECK(config.kafka.properties.at("sasl.username") == "scorer");
  try {
    (void)scorer::parse_config(
        "kafka:\n  properties: { sasl.password: \"${PQA_TEST_UNSET_SECRET}\" }\n");
    FAIL("an unset variable was accepted");
  } catch (const scorer::ConfigException& e) {
    CHECK(e.key() == "kafka.properties.sasl.password");
    CHECK(std::string(e.what()).find("PQA_TEST_UNSET_SECRET is not set") != std::string::npos);
  }
  CHECK_THROWS_WITH(scorer::parse_config("kafka: { processing: twice }\n"),
                    Catch::Contains("kafka.processing"));
  CHECK_THROWS_WITH(scorer::parse_config("kafka: { topics: { input: \"\" } }\n"),
                    Catch::Contains("kafka.topics.input"));
  CHECK_THROWS_WITH(scorer::parse_config("input: { allowed_lateness_ms: 999999999999 }\n"),
                    Catch::Contains("input.allowed_lateness_ms"));
}

TEST_CASE(
    "the input consumer's queue bounds are defaults the YAML overrides; the commit "
    "protocol's settings are not",
    "[config][kafka]") {
  auto props = scorer::input_consumer_properties(parse_config("").kafka);
  // A full prefetch queue is looked at again only a second later (librdkafka 2.0): a message
  // count must never be what fills it, and its byte bound must hold over a second of input.
  CHECK(props.at("queued.min.messages") == "10000000");
  CHECK(props.at("queued.max.messages.kbytes") == "131072");
  CHECK(props.at("isolation.level") == "read_committed");

  props = scorer::input_consumer_properties(
      parse_config("kafka: {consumer_properties: {queued.max.messages.kbytes: 16384, "
                   "isolation.level: read_uncommitted, enable.auto.commit: true}}")
          .kafka);
  CHECK(props.at("queued.max.messages.kbytes") == "16384");
  CHECK(props.at("queued.min.messages") == "10000000");
  CHECK(props.at("isolation.level") == "read_committed");
  CHECK(props.at("enable.auto.commit") == "false");
  CHECK(props.at("enable.auto.offset.store") == "false");
  // kafka.properties (every client) also overrides the defaults.
  CHECK(scorer::input_consumer_properties(
            parse_config("kafka: {properties: {queued.max.messages.kbytes: 65536}}").kafka)
            .at("queued.max.messages.kbytes") == "65536");
}

TEST_CASE("Kafka's murmur2 partitioner: the Java client's test vectors", "[kafka][partitioning]") {
  // From Apache Kafka's UtilsTest.testMurmur2.
  CHECK(scorer::kafka_murmur2("21") == -973932308);
  CHECK(scorer::kafka_murmur2("foobar") == -790332482);
  CHECK(scorer::kafka_murmur2("a-little-bit-long-string") == -985981536);
  CHECK(scorer::kafka_murmur2("a-little-bit-longer-string") == -1486304829);
  CHECK(scorer::kafka_murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971);
  CHECK(scorer::kafka_murmur2("abc") == 479470107);
  for (const char* key : {"acme", "acc-000078", ""})
    CHECK(scorer::partition_for_key(key, 4) ==
          static_cast<int>((static_cast<std::uint32_t>(scorer::kafka_murmur2(key)) & 0x7fffffff) %
                           4));
}

TEST_CASE("any key can take its value from the environment", "[config]") {
  ::setenv("PQA_TEST_HOT", "85", 1);
  ::setenv("PQA_TEST_PORT", "eighty", 1);
  const auto config = scorer::parse_config(
      "model: { bands: { hot: \"${PQA_TEST_HOT}\" } }\n"
      "admin: { port: \"${PQA_TEST_UNSET_PORT:-9100}\" }\n"
      "service: { log_level: \"${PQA_TEST_UNSET_LEVEL:-warn}\" }\n");
  CHECK(config.model.bands.hot == 85);
  CHECK(config.admin.server.port == 9100);
  CHECK(config.service.log_level == "warn");
  // A bad value from the environment names the key it landed in.
  CHECK(key_of_error("admin: { port: \"${PQA_TEST_PORT}\" }\n") == "admin.port");
  CHECK(key_of_error("model: { fit: { rules: [ { trait: \"${PQA_TEST_UNSET_T}\" } ] } }\n") ==
        "model.fit.rules[0].trait");
}

namespace {

/// "a.{b,c}.d" -> a.b.d, a.c.d (the notation of the reference tables).
std::vector<std::string> expand_braces(const std::string& key) {
  const auto open = key.find('{');
  if (open == std::string::npos) return {key};
  const auto close = key.find('}', open);
  std::vector<std::string> out;
  std::string alternatives = key.substr(open + 1, close - open - 1) + ",";
  for (std::size_t at = 0, comma; (comma = alternatives.find(',', at)) != std::string::npos;
       at = comma + 1)
    for (auto& rest : expand_braces(key.substr(close + 1)))
      out.push_back(key.substr(0, open) + alternatives.substr(at, comma - at) + rest);
  return out;
}

/// Key paths of the YAML's mappings; a sequence or free-form mapping is one key ("x[]").
void collect_keys(const YAML::Node& node, const std::string& path, std::set<std::string>& out) {
  if (node.IsSequence()) {
    out.insert(path + "[]");
  } else if (node.IsMap() && !path.ends_with("properties")) {
    for (const auto& kv : node)
      collect_keys(kv.second, (path.empty() ? "" : path + ".") + kv.first.as<std::string>(), out);
  } else {
    out.insert(path);
  }
}

}  // namespace

namespace {

/// Keys named in the first cell of a table row of a markdown file (`a`, `b`, `{x,y}.z`).
std::set<std::string> documented_keys(const std::string& doc_path) {
  std::ifstream doc(std::string(PQA_SOURCE_DIR) + "/" + doc_path);
  std::set<std::string> documented;
  for (std::string line; std::getline(doc, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    // The first cell may name several keys: `a`, `b`.
    const auto cell = line.substr(2, line.find(" |", 2) - 2);
    for (std::size_t at = 0; (at = cell.find('`', at)) != std::string::npos;) {
      const auto end = cell.find('`', at + 1);
      for (auto& k : expand_braces(cell.substr(at + 1, end - at - 1))) documented.insert(k);
      at = end + 1;
    }
  }
  return documented;
}

std::vector<std::string> missing_from(const std::set<std::string>& keys,
                                      const std::set<std::string>& documented) {
  std::vector<std::string> missing;
  for (const auto& k : keys)
    if (!documented.count(k)) missing.push_back(k);
  return missing;
}

}  // namespace

TEST_CASE("docs/operations.md documents every key of the shipped config", "[config][docs]") {
  std::set<std::string> keys;
  collect_keys(YAML::LoadFile(std::string(PQA_SOURCE_DIR) + "/config/scorer.yaml"), "", keys);
  REQUIRE(keys.size() > 60);
  const auto missing = missing_from(keys, documented_keys("docs/operations.md"));
  INFO("not in docs/operations.md: " << Catch::Detail::stringify(missing));
  CHECK(missing.empty());
}

TEST_CASE("docs/relay.md documents every key of the shipped relay config", "[config][docs]") {
  const YAML::Node root = YAML::LoadFile(std::string(PQA_SOURCE_DIR) + "/config/relay.yaml");
  std::set<std::string> shared, relay, endpoint;
  for (const char* section : {"kafka", "service", "admin"})
    collect_keys(root[section], section, shared);
  for (const auto& kv : root["relay"]) {
    const auto key = kv.first.as<std::string>();
    if (key == "endpoints") continue;
    collect_keys(kv.second, "relay." + key, relay);
  }
  for (const auto& e : root["relay"]["endpoints"])
    for (const auto& kv : e) {
      const auto key = kv.first.as<std::string>();
      if (key == "headers")  // names of HTTP headers, not keys
        endpoint.insert(key);
      else
        collect_keys(kv.second, key, endpoint);
    }
  REQUIRE(endpoint.size() > 15);
  const auto in_operations = missing_from(shared, documented_keys("docs/operations.md"));
  INFO("not in docs/operations.md: " << Catch::Detail::stringify(in_operations));
  CHECK(in_operations.empty());
  const auto relay_doc = documented_keys("docs/relay.md");
  auto in_relay = missing_from(relay, relay_doc);
  for (auto& k : missing_from(endpoint, relay_doc)) in_relay.push_back("endpoints[]." + k);
  INFO("not in docs/relay.md: " << Catch::Detail::stringify(in_relay));
  CHECK(in_relay.empty());
}
