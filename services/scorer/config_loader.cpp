#include "config_loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <tuple>
#include <vector>

#include "kafka.h"
#include "output_producer.h"
#include "pqa/rollup/scoring.h"
#include "relay_payload.h"
#include "webhook_signing.h"

namespace pqa::scorer {
namespace {

using rollup::EventKind;
using rollup::EventRule;
using rollup::FitOp;
using rollup::FitRule;

/// One YAML mapping being read; remembers which keys were used so the rest can be reported.
class Section {
 public:
  Section(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {
    if (node_ && !node_.IsNull() && !node_.IsMap())
      throw ConfigException(path_.empty() ? "(top level)" : path_, "must be a mapping");
    reject_repeated_keys();
  }

  const std::string& path() const { return path_; }

  std::string key_path(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }

  YAML::Node get(const std::string& key) {
    seen_.insert(key);
    if (!node_ || node_.IsNull()) return YAML::Node();
    return node_[key];
  }

  template <typename T>
  void read(const std::string& key, T& out) {
    YAML::Node n = get(key);
    if (!n || n.IsNull()) return;
    out = convert<T>(n, key_path(key));
  }

  Section child(const std::string& key) { return Section(get(key), key_path(key)); }

  /// Reports keys that no reader asked for.
  void finish() const {
    if (!node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      const auto key = kv.first.as<std::string>();
      if (!seen_.count(key)) throw ConfigException(key_path(key), "unknown key");
    }
  }

  template <typename T>
  static T convert(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) throw ConfigException(path, "must be a " + type_name<T>());
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      return whole_number<T>(n.Scalar(), path);
    } else {
      T value{};
      try {
        value = n.as<T>();
      } catch (const YAML::Exception&) {
        throw ConfigException(path, "must be a " + type_name<T>() + ", got '" + n.Scalar() + "'");
      }
      if constexpr (std::is_same_v<T, double>)
        if (!std::isfinite(value)) throw ConfigException(path, "must be a finite number");
      return value;
    }
  }

 private:
  /// Whole numbers are decimal, as YAML 1.2 reads them: yaml-cpp alone would take "010" as
  /// octal 8 and "0x50" as 80.
  template <typename T>
  static T whole_number(const std::string& text, const std::string& path) {
    std::string_view digits(text);
    const bool negative = !digits.empty() && digits.front() == '-';
    if (!digits.empty() && (negative || digits.front() == '+')) digits.remove_prefix(1);
    const bool decimal =
        !digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos;
    if (!decimal)
      throw ConfigException(path, "must be a " + type_name<T>() + ", got '" + text + "'");
    if (negative) throw ConfigException(path, "must be a non-negative whole number");
    unsigned long long v = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc() || v > static_cast<unsigned long long>(std::numeric_limits<T>::max()))
      throw ConfigException(path,
                            "must be at most " + std::to_string(std::numeric_limits<T>::max()));
    return static_cast<T>(v);
  }

  /// yaml-cpp keeps a mapping's repeated key, and a lookup finds only its first value: a
  /// second `kafka:` block would be dropped without a word.
  void reject_repeated_keys() const {
    if (!node_ || !node_.IsMap()) return;
    std::set<std::string> keys;
    for (const auto& kv : node_) {
      const auto key = kv.first.as<std::string>();
      if (!keys.insert(key).second) throw ConfigException(key_path(key), "is given twice");
    }
  }

  template <typename T>
  static std::string type_name() {
    if constexpr (std::is_same_v<T, bool>) return "boolean (true/false)";
    if constexpr (std::is_same_v<T, std::string>) return "string";
    if constexpr (std::is_same_v<T, double>) return "number";
    return "whole number";
  }

  YAML::Node node_;
  std::string path_;
  std::set<std::string> seen_;
};

EventKind parse_kind(const std::string& s, const std::string& path) {
  static const std::pair<const char*, EventKind> kKinds[] = {
      {"usage", EventKind::kUsage},
      {"provisioning", EventKind::kProvisioning},
      {"administration", EventKind::kAdministration},
      {"commercial_intent", EventKind::kCommercialIntent},
      {"collaboration", EventKind::kCollaboration},
      {"shared_asset", EventKind::kSharedAsset}};
  for (const auto& [name, kind] : kKinds)
    if (s == name) return kind;
  throw ConfigException(path, "unknown kind '" + s +
                                  "' (usage, provisioning, administration, commercial_intent, "
                                  "collaboration, shared_asset)");
}

template <typename Fn>
void for_each_item(const YAML::Node& list, const std::string& path, Fn fn) {
  if (!list || list.IsNull()) return;
  if (!list.IsSequence()) throw ConfigException(path, "must be a list");
  for (std::size_t i = 0; i < list.size(); ++i)
    fn(Section(list[i], path + "[" + std::to_string(i) + "]"));
}

/// The model's own check of one list entry, named where the entry is in the file.
template <typename Entry>
void check_entry(const Section& item, const Entry& entry) {
  const auto errors = rollup::check_entry(entry);
  if (!errors.empty())
    throw ConfigException(item.key_path(errors.front().key), errors.front().problem);
}

void read_taxonomy(Section s, rollup::ModelConfig& m) {
  s.read("default_usage_weight", m.default_usage_weight);
  std::set<std::string> listed;
  for_each_item(s.get("events"), s.key_path("events"), [&](Section item) {
    EventRule rule;
    item.read("name", rule.name);
    if (!listed.insert(rule.name).second)
      throw ConfigException(item.key_path("name"), "event '" + rule.name + "' is listed twice");
    auto existing = std::find_if(m.events.begin(), m.events.end(),
                                 [&](const EventRule& r) { return r.name == rule.name; });
    if (existing != m.events.end()) rule = *existing;  // override the default field by field
    // Given at all, even empty (`kind: ""`), a kind must be one of the kinds.
    const YAML::Node kind = item.get("kind");
    const bool kind_given = kind && !kind.IsNull();
    if (kind_given)
      rule.kind = parse_kind(Section::convert<std::string>(kind, item.key_path("kind")),
                             item.key_path("kind"));
    // A built-in event made a usage event drops what only other kinds use (seats, the
    // quantity, the admin inference), which check_entry refuses on a usage event if set here.
    if (kind_given && rule.kind == EventKind::kUsage && existing != m.events.end()) {
      rule.quantity_property.clear();
      rule.seat_delta = 0.0;
      rule.infers_admin = false;
    }
    // A new event infers an admin when it is an administration event, unless it says.
    if (existing == m.events.end()) rule.infers_admin = rule.kind == EventKind::kAdministration;
    item.read("infers_admin", rule.infers_admin);
    item.read("weight", rule.weight);
    item.read("quantity_property", rule.quantity_property);
    item.read("seat_delta", rule.seat_delta);
    item.finish();
    check_entry(item, rule);
    if (existing != m.events.end())
      *existing = rule;
    else
      m.events.push_back(rule);
  });
  s.finish();
}

void read_fit(Section s, rollup::ModelConfig& m) {
  const YAML::Node rules = s.get("rules");
  if (rules && !rules.IsNull()) m.fit_rules.clear();  // a listed set replaces the defaults
  for_each_item(rules, s.key_path("rules"), [&](Section item) {
    FitRule rule;
    item.read("trait", rule.trait);
    // No default: a rule without a weight would add nothing, silently.
    if (YAML::Node weight = item.get("weight"); !weight || weight.IsNull())
      throw ConfigException(item.key_path("weight"), "is required");
    item.read("weight", rule.weight);
    int ops = 0;
    if (YAML::Node eq = item.get("equals"); eq && !eq.IsNull()) {
      rule.op = FitOp::kEquals;
      rule.values = {Section::convert<std::string>(eq, item.key_path("equals"))};
      ++ops;
    }
    if (YAML::Node in = item.get("in"); in && !in.IsNull()) {
      if (!in.IsSequence()) throw ConfigException(item.key_path("in"), "must be a list");
      rule.op = FitOp::kIn;
      for (const auto& v : in)
        rule.values.push_back(Section::convert<std::string>(v, item.key_path("in")));
      ++ops;
    }
    if (YAML::Node b = item.get("between"); b && !b.IsNull()) {
      if (!b.IsSequence() || b.size() != 2)
        throw ConfigException(item.key_path("between"), "must be a list [min, max]");
      rule.op = FitOp::kBetween;
      rule.min = Section::convert<double>(b[0], item.key_path("between"));
      rule.max = Section::convert<double>(b[1], item.key_path("between"));
      ++ops;
    }
    if (YAML::Node v = item.get("at_least"); v && !v.IsNull()) {
      rule.op = FitOp::kAtLeast;
      rule.min = Section::convert<double>(v, item.key_path("at_least"));
      ++ops;
    }
    if (YAML::Node v = item.get("at_most"); v && !v.IsNull()) {
      rule.op = FitOp::kAtMost;
      rule.max = Section::convert<double>(v, item.key_path("at_most"));
      ++ops;
    }
    bool exists = false;
    item.read("exists", exists);
    if (exists) {
      rule.op = FitOp::kExists;
      ++ops;
    }
    // A misspelt operator (`equal:`) is named as the unknown key it is, not as a missing one.
    item.finish();
    if (ops != 1)
      throw ConfigException(item.path(),
                            "needs exactly one of equals, in, between, at_least, at_most, exists");
    check_entry(item, rule);
    for (auto& v : rule.values)
      std::transform(v.begin(), v.end(), v.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    m.fit_rules.push_back(std::move(rule));
  });
  s.finish();
}

void read_decay(Section s, rollup::ModelConfig& m) {
  s.read("default_half_life_days", m.decay.default_half_life_days);
  const YAML::Node segments = s.get("segments");
  if (segments && !segments.IsNull()) m.decay.segments.clear();  // replaces the defaults
  for_each_item(segments, s.key_path("segments"), [&](Section item) {
    rollup::SegmentRule seg;
    item.read("name", seg.name);
    item.read("min_employees", seg.min_employees);
    item.read("max_employees", seg.max_employees);
    item.read("half_life_days", seg.half_life_days);
    item.finish();
    check_entry(item, seg);
    m.decay.segments.push_back(std::move(seg));
  });
  s.finish();
}

void read_model(Section s, rollup::ModelConfig& m) {
  {
    Section w = s.child("weights");
    w.read("breadth", m.weights.breadth);
    w.read("depth", m.weights.depth);
    w.read("fabric", m.weights.fabric);
    w.read("fit", m.weights.fit);
    w.finish();
  }
  {
    Section r = s.child("roles");
    r.read("admin", m.roles.admin);
    r.read("billing_owner", m.roles.billing_owner);
    r.read("champion", m.roles.champion);
    r.read("member", m.roles.member);
    r.read("invited_inactive", m.roles.invited_inactive);
    r.read("champion_engagement", m.roles.champion_engagement);
    r.finish();
  }
  {
    Section e = s.child("engagement");
    e.read("half_life_days", m.engagement.half_life_days);
    e.read("scale", m.engagement.scale);
    e.finish();
  }
  {
    Section b = s.child("breadth");
    b.read("users_weight", m.breadth.users_weight);
    b.read("departments_weight", m.breadth.departments_weight);
    b.read("assets_weight", m.breadth.assets_weight);
    b.read("user_cap", m.breadth.user_cap);
    b.read("department_target", m.breadth.department_target);
    b.read("asset_cap", m.breadth.asset_cap);
    b.finish();
  }
  {
    Section f = s.child("fabric");
    f.read("scale", m.fabric.scale);
    Section strengths = f.child("strengths");
    for (std::size_t i = 0; i < rollup::kFabricCategoryCount; ++i)
      strengths.read(std::string(rollup::to_string(static_cast<rollup::FabricCategory>(i))),
                     m.fabric.strengths[i]);
    strengths.finish();
    f.finish();
  }
  read_decay(s.child("decay"), m);
  {
    Section b = s.child("bands");
    b.read("nurture", m.bands.nurture);
    b.read("qualified", m.bands.qualified);
    b.read("hot", m.bands.hot);
    b.read("hysteresis", m.bands.hysteresis);
    b.read("silence_grace_days", m.bands.silence_grace_days);
    b.finish();
  }
  {
    Section r = s.child("routing");
    r.read("full_sales_expansion_potential", m.routing.full_sales_expansion_potential);
    r.read("full_sales_hysteresis", m.routing.full_sales_hysteresis);
    r.finish();
  }
  {
    Section seats = s.child("seats");
    seats.read("velocity_window_days", m.seats.velocity_window_days);
    seats.read("fill_high", m.seats.fill_high);
    seats.read("fill_low", m.seats.fill_low);
    seats.read("proximity_approaching", m.seats.proximity_approaching);
    seats.read("proximity_at_limit", m.seats.proximity_at_limit);
    seats.read("pattern_hysteresis", m.seats.pattern_hysteresis);
    seats.finish();
  }
  {
    Section a = s.child("activity");
    a.read("active_window_days", m.activity.active_window_days);
    a.read("max_departments", m.activity.max_departments);
    a.finish();
  }
  read_taxonomy(s.child("taxonomy"), m);
  read_fit(s.child("fit"), m);
  s.finish();
}

/// Reads a size given in MB into `bytes`, which keeps its value when the key is absent. Up to
/// 1 TiB: far above any memory or disk budget, and far from overflowing the conversion.
void read_megabytes(Section& s, const std::string& key, std::size_t& bytes) {
  constexpr std::size_t kMaxMegabytes = 1u << 20;
  std::size_t mb = bytes >> 20;
  s.read(key, mb);
  if (mb > kMaxMegabytes)
    throw ConfigException(s.key_path(key),
                          "must be at most " + std::to_string(kMaxMegabytes) + " (1 TiB)");
  bytes = mb << 20;
}

void read_state(Section s, ServiceConfig& c) {
  {
    Section cache = s.child("cache");
    cache.read("accounts", c.processor.account_cache_entries);
    cache.read("users", c.processor.user_cache_entries);
    cache.read("identities", c.processor.identity_cache_entries);
    cache.finish();
  }
  s.read("flush_every_events", c.processor.flush_every_events);
  read_megabytes(s, "max_pending_mb", c.processor.max_pending_bytes);
  {
    Section r = s.child("rocksdb");
    read_megabytes(r, "block_cache_mb", c.rocksdb.block_cache_bytes);
    read_megabytes(r, "write_buffer_mb", c.rocksdb.write_buffer_bytes);
    read_megabytes(r, "new_key_filter_mb", c.rocksdb.new_key_filter_bytes);
    r.read("disable_wal", c.rocksdb.disable_wal);
    r.read("ingest_min_records", c.rocksdb.ingest_min_records);
    r.finish();
  }
  s.finish();
  if (c.processor.flush_every_events < 1)
    throw ConfigException("state.flush_every_events", "must be at least 1");
  if (c.processor.account_cache_entries < 1)
    throw ConfigException("state.cache.accounts", "must be at least 1");
  if (c.processor.user_cache_entries < 1)
    throw ConfigException("state.cache.users", "must be at least 1");
  if (c.processor.identity_cache_entries < 1)
    throw ConfigException("state.cache.identities", "must be at least 1");
  if (c.rocksdb.write_buffer_bytes < (1u << 20))
    throw ConfigException("state.rocksdb.write_buffer_mb", "must be at least 1");
}

/// Expands ${NAME} and ${NAME:-default} from the environment.
std::string expand_env(const std::string& text, const std::string& key) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t start = text.find("${", i);
    if (start == std::string::npos) {
      out.append(text, i, std::string::npos);
      break;
    }
    out.append(text, i, start - i);
    const std::size_t end = text.find('}', start);
    if (end == std::string::npos) throw ConfigException(key, "unterminated '${' in value");
    std::string name = text.substr(start + 2, end - start - 2);
    std::optional<std::string> fallback;
    if (auto dash = name.find(":-"); dash != std::string::npos) {
      fallback = name.substr(dash + 2);
      name.resize(dash);
    }
    if (name.empty()) throw ConfigException(key, "empty environment variable name in '${}'");
    const char* value = std::getenv(name.c_str());
    if (value != nullptr && *value != '\0')
      out.append(value);
    else if (fallback)
      out.append(*fallback);
    else
      throw ConfigException(key, "environment variable " + name + " is not set");
    i = end + 1;
  }
  return out;
}

/// librdkafka's own check of each property (its name, and a value of the right form), here so
/// that a typo stops start-up as a configuration error naming the key.
void check_properties(const std::map<std::string, std::string>& properties,
                      const std::string& path) {
  kafka::Conf scratch(rd_kafka_conf_new());
  if (const auto rejected = kafka::set_properties(scratch.get(), properties))
    throw ConfigException(path + "." + rejected->name, rejected->reason);
}

/// A mapping of names to scalar values (librdkafka properties, HTTP headers).
std::map<std::string, std::string> read_properties(Section& parent, const std::string& key) {
  std::map<std::string, std::string> out;
  YAML::Node n = parent.get(key);
  if (!n || n.IsNull()) return out;
  const std::string path = parent.key_path(key);
  if (!n.IsMap()) throw ConfigException(path, "must be a mapping of librdkafka properties");
  for (const auto& kv : n) {
    const auto name = kv.first.as<std::string>();
    const std::string item = path + "." + name;
    if (!kv.second.IsScalar()) throw ConfigException(item, "must be a scalar value");
    if (!out.emplace(name, kv.second.Scalar()).second)
      throw ConfigException(item, "is given twice");
  }
  return out;
}

/// The maps of librdkafka properties, each checked by librdkafka. Not with a plugin:
/// setting its path loads it (a file that may exist only where the service runs, not where
/// `replay` reads the same file), and it adds properties of its own, set in any of the maps.
void read_kafka_properties(Section& s, KafkaConfig& k) {
  k.properties = read_properties(s, "properties");
  k.consumer_properties = read_properties(s, "consumer_properties");
  k.producer_properties = read_properties(s, "producer_properties");
  k.restore_consumer_properties = read_properties(s, "restore_consumer_properties");
  for (const auto* map : {&k.properties, &k.consumer_properties, &k.producer_properties,
                          &k.restore_consumer_properties})
    if (map->count("plugin.library.paths") > 0) return;
  check_properties(k.properties, s.key_path("properties"));
  check_properties(k.consumer_properties, s.key_path("consumer_properties"));
  check_properties(k.producer_properties, s.key_path("producer_properties"));
  check_properties(k.restore_consumer_properties, s.key_path("restore_consumer_properties"));
}

/// A transaction open longer than the producer's transaction.timeout.ms is aborted by the
/// broker, so an interval must leave room within it for the commit (and a slow turn): at most
/// half of it.
void check_within_transaction_timeout(const KafkaConfig& k) {
  if (k.processing != Processing::kExactlyOnce) return;
  const long long timeout_ms = transaction_timeout_ms(k);
  const auto check = [timeout_ms](const std::string& key, int interval_ms) {
    if (2LL * interval_ms > timeout_ms)
      throw ConfigException(key, "must be at most half of the producer's transaction.timeout.ms (" +
                                     std::to_string(timeout_ms) +
                                     " ms): a transaction open longer is aborted by the broker");
  };
  check("kafka.commit_interval_ms", k.commit_interval_ms);
  if (k.catch_up.lag_events > 0)
    check("kafka.catch_up.commit_interval_ms", k.catch_up.commit_interval_ms);
}

/// The service follows the brokers' state (readiness, the idle advance) and the partitions'
/// lag from the consumer's statistics: they must not be turned off.
void check_consumer_statistics(const KafkaConfig& k) {
  for (const auto& [key, properties] :
       {std::pair{"kafka.consumer_properties", &k.consumer_properties},
        std::pair{"kafka.properties", &k.properties}}) {
    const auto it = properties->find("statistics.interval.ms");
    if (it == properties->end()) continue;
    long long ms = 0;
    const auto [end, ec] =
        std::from_chars(it->second.data(), it->second.data() + it->second.size(), ms);
    if (ec != std::errc() || end != it->second.data() + it->second.size() || ms < 1)
      throw ConfigException(std::string(key) + ".statistics.interval.ms",
                            "must be at least 1: readiness, the idle advance and the consumer-lag "
                            "gauge follow the consumer's statistics");
    return;  // the consumer's own setting wins over the shared one
  }
}

void read_kafka(Section s, KafkaConfig& k) {
  auto read_string = [&](const std::string& key, std::string& out) { s.read(key, out); };
  read_string("bootstrap_servers", k.bootstrap_servers);
  read_string("group_id", k.group_id);
  read_string("group_instance_id", k.group_instance_id);
  read_string("transactional_id", k.transactional_id);
  {
    Section t = s.child("topics");
    auto topic = [&](const std::string& key, std::string& out) {
      t.read(key, out);
      if (out.empty()) throw ConfigException(t.key_path(key), "must name a topic");
    };
    topic("input", k.input_topic);
    topic("signals", k.signals_topic);
    topic("scores", k.scores_topic);
    topic("changelog", k.changelog_topic);
    topic("dead_letter", k.dead_letter_topic);
    t.read("create", k.create_topics);
    t.read("replication_factor", k.replication_factor);
    t.finish();
    if (k.replication_factor < 1)
      throw ConfigException("kafka.topics.replication_factor", "must be at least 1");
  }
  std::string processing =
      k.processing == Processing::kExactlyOnce ? "exactly_once" : "at_least_once";
  s.read("processing", processing);
  if (processing == "exactly_once")
    k.processing = Processing::kExactlyOnce;
  else if (processing == "at_least_once")
    k.processing = Processing::kAtLeastOnce;
  else
    throw ConfigException("kafka.processing",
                          "must be exactly_once or at_least_once, got '" + processing + "'");
  s.read("commit_interval_ms", k.commit_interval_ms);
  {
    Section c = s.child("catch_up");
    c.read("lag_events", k.catch_up.lag_events);
    const YAML::Node interval = c.get("commit_interval_ms");
    if (interval && !interval.IsNull())
      c.read("commit_interval_ms", k.catch_up.commit_interval_ms);
    else  // never shorter than the interval it stands in for (configs older than the key)
      k.catch_up.commit_interval_ms = std::max(k.catch_up.commit_interval_ms, k.commit_interval_ms);
    c.finish();
    if (k.catch_up.lag_events != 0 && k.catch_up.lag_events < CatchUpOptions::kMinLagEvents)
      throw ConfigException(c.key_path("lag_events"),
                            "must be 0 (off) or at least " +
                                std::to_string(CatchUpOptions::kMinLagEvents) +
                                ": a smaller lag is no backlog");
    if (k.catch_up.commit_interval_ms < 1)
      throw ConfigException(c.key_path("commit_interval_ms"), "must be at least 1");
  }
  s.read("max_batch_events", k.max_batch_events);
  s.read("timeout_ms", k.timeout_ms);
  read_kafka_properties(s, k);
  s.finish();
  if (k.commit_interval_ms < 1)
    throw ConfigException("kafka.commit_interval_ms", "must be at least 1");
  if (k.catch_up.lag_events > 0 && k.catch_up.commit_interval_ms < k.commit_interval_ms)
    throw ConfigException("kafka.catch_up.commit_interval_ms",
                          "must not be shorter than kafka.commit_interval_ms (" +
                              std::to_string(k.commit_interval_ms) + ")");
  check_within_transaction_timeout(k);
  check_consumer_statistics(k);
  if (k.max_batch_events < 1) throw ConfigException("kafka.max_batch_events", "must be at least 1");
  if (k.timeout_ms < 1000) throw ConfigException("kafka.timeout_ms", "must be at least 1000");
  if (k.timeout_ms > 3'600'000)  // librdkafka takes int milliseconds, with a margin added
    throw ConfigException("kafka.timeout_ms", "must be at most 3600000 (an hour)");
  if (k.group_id.empty()) throw ConfigException("kafka.group_id", "must not be empty");
}

void read_service(Section s, ServiceOptions& o) {
  s.read("state_dir", o.state_dir);
  s.read("idle_advance_ms", o.idle_advance_ms);
  s.read("log_level", o.log_level);
  s.finish();
  if (o.log_level != "debug" && o.log_level != "info" && o.log_level != "warn" &&
      o.log_level != "error")
    throw ConfigException("service.log_level",
                          "must be debug, info, warn or error, got '" + o.log_level + "'");
  if (o.state_dir.empty()) throw ConfigException("service.state_dir", "must not be empty");
}

void read_admin(Section s, AdminConfig& a) {
  AdminServerOptions& o = a.server;
  s.read("enabled", a.enabled);
  s.read("bind_address", o.bind_address);
  s.read("port", o.port);
  s.read("max_connections", o.max_connections);
  s.read("request_timeout_ms", o.request_timeout_ms);
  s.read("max_header_bytes", o.max_header_bytes);
  s.read("gauge_refresh_ms", a.gauge_refresh_ms);
  s.finish();
  if (o.bind_address.empty()) throw ConfigException("admin.bind_address", "must not be empty");
  boost::system::error_code ec;
  boost::asio::ip::make_address(o.bind_address, ec);
  if (ec)
    throw ConfigException("admin.bind_address",
                          "'" + o.bind_address + "' is not an IP address (e.g. 0.0.0.0, ::)");
  if (o.port < 0 || o.port > 65535)
    throw ConfigException("admin.port", "must be between 0 and 65535 (0: any free port)");
  if (o.max_connections < 1) throw ConfigException("admin.max_connections", "must be at least 1");
  if (o.request_timeout_ms < 100)
    throw ConfigException("admin.request_timeout_ms", "must be at least 100");
  if (o.max_header_bytes < 1024)
    throw ConfigException("admin.max_header_bytes", "must be at least 1024");
  if (a.gauge_refresh_ms < 100)
    throw ConfigException("admin.gauge_refresh_ms", "must be at least 100");
}

std::set<std::string> read_string_set(Section& s, const std::string& key,
                                      const std::vector<std::string_view>& allowed) {
  std::set<std::string> out;
  YAML::Node n = s.get(key);
  if (!n || n.IsNull()) return out;
  const std::string path = s.key_path(key);
  auto add = [&](const YAML::Node& item, const std::string& item_path) {
    if (!item.IsScalar()) throw ConfigException(item_path, "must be a string");
    const std::string v = item.Scalar();
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      throw ConfigException(item_path, "unknown value '" + v + "' (" + list + ")");
    }
    out.insert(v);
  };
  if (n.IsScalar()) {
    add(n, path);
  } else if (n.IsSequence()) {
    for (std::size_t i = 0; i < n.size(); ++i) add(n[i], path + "[" + std::to_string(i) + "]");
  } else {
    throw ConfigException(path, "must be a string or a list of strings");
  }
  return out;
}

void read_route(Section s, RelayRoute& r) {
  r.kinds = read_string_set(s, "kinds", rollup::signal_kind_names());
  r.bands = read_string_set(s, "bands", {"cold", "nurture", "qualified", "hot"});
  r.directions = read_string_set(s, "directions", {"up", "down"});
  r.routings = read_string_set(s, "routings",
                               {"none", "self_serve", "pls_assist", "full_sales", "enablement"});
  s.finish();
}

/// Durations of the relay are added to clock readings: a year bounds them far from overflow.
constexpr std::size_t kMaxDurationMs = 365ull * 24 * 3600 * 1000;

std::int64_t checked_duration_ms(std::size_t ms, const std::string& path) {
  if (ms > kMaxDurationMs)
    throw ConfigException(path, "must be at most " + std::to_string(kMaxDurationMs) + " (a year)");
  return static_cast<std::int64_t>(ms);
}

/// Reads a duration in milliseconds into `out`, which keeps its value when the key is absent.
void read_duration_ms(Section& s, const std::string& key, std::int64_t& out) {
  auto ms = static_cast<std::size_t>(out);
  s.read(key, ms);
  out = checked_duration_ms(ms, s.key_path(key));
}

void read_retry(Section s, RetryPolicy& r) {
  YAML::Node schedule = s.get("schedule_ms");
  if (schedule && !schedule.IsNull()) {
    if (!schedule.IsSequence() || schedule.size() == 0)
      throw ConfigException(s.key_path("schedule_ms"), "must be a non-empty list of delays");
    r.schedule_ms.clear();
    for (std::size_t i = 0; i < schedule.size(); ++i) {
      const std::string path = s.key_path("schedule_ms") + "[" + std::to_string(i) + "]";
      r.schedule_ms.push_back(
          checked_duration_ms(Section::convert<std::size_t>(schedule[i], path), path));
    }
  }
  s.read("jitter", r.jitter);
  s.read("max_attempts", r.max_attempts);
  read_duration_ms(s, "max_age_ms", r.max_age_ms);
  s.finish();
  if (r.jitter < 0 || r.jitter > 1) throw ConfigException(s.key_path("jitter"), "must be 0..1");
  if (r.max_attempts < 1) throw ConfigException(s.key_path("max_attempts"), "must be at least 1");
  if (r.max_age_ms < 1) throw ConfigException(s.key_path("max_age_ms"), "must be at least 1");
}

void read_payload(Section& s, EndpointConfig& e) {
  std::string format = "standard_webhooks";
  s.read("format", format);
  e.payload.preset = format;
  const std::string path = s.key_path("format");
  if (format == "standard_webhooks") {
    e.payload.kind = PayloadFormat::Kind::kStandardWebhooks;
  } else if (const PayloadPreset* preset = find_payload_preset(format)) {
    e.payload.kind = PayloadFormat::Kind::kTemplate;
    e.payload.body = preset->body;
    e.payload.record = preset->record;
    e.payload.max_records = preset->max_records;
    e.method = preset->method;
  } else if (format == "template") {
    e.payload.kind = PayloadFormat::Kind::kTemplate;
  } else {
    throw ConfigException(
        path, "unknown format '" + format + "' (standard_webhooks, hubspot, salesforce, template)");
  }
  Section t = s.child("template");
  t.read("body", e.payload.body);
  t.read("record", e.payload.record);
  t.read("max_records", e.payload.max_records);
  t.finish();
  if (e.payload.kind == PayloadFormat::Kind::kStandardWebhooks) {
    if (!e.payload.body.empty() || !e.payload.record.empty())
      throw ConfigException(t.path(), "only template, hubspot and salesforce formats use one");
    return;
  }
  if (e.payload.record.empty())
    throw ConfigException(t.key_path("record"), "is required by the template format");
  if (e.payload.body.empty()) e.payload.body = "[{{records}}]";
  if (e.payload.max_records < 1 || e.payload.max_records > 10'000)
    throw ConfigException(t.key_path("max_records"), "must be 1..10000");
  try {
    PayloadTemplate check(e.payload.body, e.payload.record);
  } catch (const std::invalid_argument& err) {
    throw ConfigException(t.path(), err.what());
  }
}

void read_endpoint(Section s, EndpointConfig& e, std::set<std::string>& names) {
  s.read("name", e.name);
  if (e.name.empty()) throw ConfigException(s.key_path("name"), "is required");
  if (!names.insert(e.name).second)
    throw ConfigException(s.key_path("name"), "endpoint '" + e.name + "' is listed twice");
  s.read("url", e.url);
  try {
    e.parsed = parse_url(e.url);
  } catch (const std::invalid_argument& err) {
    throw ConfigException(s.key_path("url"), err.what());
  }
  read_payload(s, e);
  s.read("method", e.method);
  if (e.method != "POST" && e.method != "PUT" && e.method != "PATCH")
    throw ConfigException(s.key_path("method"), "must be POST, PUT or PATCH");
  for_each_item(s.get("routes"), s.key_path("routes"), [&](Section item) {
    e.routes.emplace_back();
    read_route(std::move(item), e.routes.back());
  });
  {
    YAML::Node n = s.get("secrets");
    const std::string path = s.key_path("secrets");
    std::vector<std::string> secrets;
    auto split = [&](const std::string& text) {
      std::istringstream words(text);
      for (std::string w; words >> w;) secrets.push_back(w);
    };
    if (n && n.IsScalar()) {
      split(n.Scalar());
    } else if (n && n.IsSequence()) {
      for (std::size_t i = 0; i < n.size(); ++i)
        split(Section::convert<std::string>(n[i], path + "[" + std::to_string(i) + "]"));
    } else if (n && !n.IsNull()) {
      throw ConfigException(path, "must be a string (space-separated secrets) or a list");
    }
    try {
      if (!secrets.empty()) WebhookSigner check(secrets);
    } catch (const WebhookSecretError& err) {
      throw ConfigException(path, err.what());
    }
    e.secrets = std::move(secrets);
  }
  s.read("allow_unsigned", e.allow_unsigned);
  for (const auto& [name, value] : read_properties(s, "headers")) {
    // A name is an RFC 9110 token; a value has no line break, or it would smuggle headers.
    const bool token = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) ||
             std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
    if (!token)
      throw ConfigException(s.key_path("headers") + "." + name, "is not a valid header name");
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      throw ConfigException(s.key_path("headers") + "." + name,
                            "must not contain a line break or NUL");
    for (const char* reserved : {"webhook-id", "webhook-timestamp", "webhook-signature",
                                 "content-length", "host", "content-type"}) {
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (lower == reserved)
        throw ConfigException(s.key_path("headers") + "." + name, "is set by the relay");
    }
    e.headers.emplace_back(name, value);
  }
  s.read("timeout_ms", e.timeout_ms);
  s.read("max_in_flight", e.max_in_flight);
  {
    Section r = s.child("rate_limit");
    r.read("requests", e.rate_limit.requests);
    read_duration_ms(r, "per_ms", e.rate_limit.per_ms);
    r.finish();
    if (e.rate_limit.requests < 0)
      throw ConfigException(r.key_path("requests"), "must be 0 (unlimited) or more");
    if (e.rate_limit.per_ms < 1) throw ConfigException(r.key_path("per_ms"), "must be at least 1");
  }
  read_retry(s.child("retry"), e.retry);
  {
    Section b = s.child("breaker");
    b.read("failure_threshold", e.breaker.failure_threshold);
    read_duration_ms(b, "open_ms", e.breaker.open_ms);
    b.finish();
    if (e.breaker.failure_threshold < 1)
      throw ConfigException(b.key_path("failure_threshold"), "must be at least 1");
  }
  {
    Section t = s.child("tls");
    t.read("verify", e.tls_verify);
    t.read("ca_file", e.ca_file);
    t.finish();
    if (!e.ca_file.empty() && !std::ifstream(e.ca_file))
      throw ConfigException(t.key_path("ca_file"), "cannot read '" + e.ca_file + "'");
  }
  s.finish();
  if (e.timeout_ms < 100) throw ConfigException(s.key_path("timeout_ms"), "must be at least 100");
  if (e.max_in_flight < 1 || e.max_in_flight > 1024)
    throw ConfigException(s.key_path("max_in_flight"), "must be 1..1024");
}

void read_relay(Section s, RelayConfig& r) {
  s.read("group_id", r.group_id);
  s.read("dead_letter_topic", r.dead_letter_topic);
  s.read("max_pending_signals", r.max_pending_signals);
  s.read("commit_interval_ms", r.commit_interval_ms);
  s.read("drain_timeout_ms", r.drain_timeout_ms);
  std::size_t seed = 0;
  s.read("jitter_seed", seed);
  r.jitter_seed = seed;
  std::set<std::string> names;
  for_each_item(s.get("endpoints"), s.key_path("endpoints"), [&](Section item) {
    bool enabled = true;
    item.read("enabled", enabled);
    const std::string secrets_path = item.key_path("secrets");
    EndpointConfig endpoint;
    read_endpoint(std::move(item), endpoint, names);
    if (!enabled) return;
    // Fail closed: an empty secrets value is most often a Secret or variable that is missing,
    // and receivers that check signatures would refuse every request, those that do not would
    // accept forged ones.
    if (endpoint.payload.kind == PayloadFormat::Kind::kStandardWebhooks &&
        endpoint.secrets.empty() && !endpoint.allow_unsigned)
      throw ConfigException(secrets_path,
                            "is empty: a standard_webhooks endpoint signs its requests (set "
                            "whsec_ keys, e.g. from ${PQA_WEBHOOK_SECRETS}), or set "
                            "allow_unsigned: true for a receiver that checks no signature");
    r.endpoints.push_back(std::move(endpoint));
  });
  s.finish();
  if (r.group_id.empty()) throw ConfigException("relay.group_id", "must not be empty");
  if (r.dead_letter_topic.empty())
    throw ConfigException("relay.dead_letter_topic", "must name a topic");
  if (r.max_pending_signals < 1)
    throw ConfigException("relay.max_pending_signals", "must be at least 1");
  if (r.commit_interval_ms < 1)
    throw ConfigException("relay.commit_interval_ms", "must be at least 1");
}

/// Topics that must differ: a dead-letter topic that is also the input would feed every
/// rejected event back in for ever; a changelog that is also another output or the input would
/// restore foreign records as state; scores among the signals would reach the relay as
/// signals; the relay's dead letters must not land among the signals it reads.
void check_distinct_topics(const ServiceConfig& c) {
  const KafkaConfig& k = c.kafka;
  const std::vector<std::tuple<const char*, const std::string*, const char*, const std::string*>>
      pairs = {
          {"kafka.topics.dead_letter", &k.dead_letter_topic, "kafka.topics.input", &k.input_topic},
          {"kafka.topics.changelog", &k.changelog_topic, "kafka.topics.input", &k.input_topic},
          {"kafka.topics.changelog", &k.changelog_topic, "kafka.topics.signals", &k.signals_topic},
          {"kafka.topics.changelog", &k.changelog_topic, "kafka.topics.scores", &k.scores_topic},
          {"kafka.topics.changelog", &k.changelog_topic, "kafka.topics.dead_letter",
           &k.dead_letter_topic},
          {"kafka.topics.signals", &k.signals_topic, "kafka.topics.input", &k.input_topic},
          {"kafka.topics.scores", &k.scores_topic, "kafka.topics.signals", &k.signals_topic},
          {"kafka.topics.scores", &k.scores_topic, "kafka.topics.input", &k.input_topic},
          {"relay.dead_letter_topic", &c.relay.dead_letter_topic, "kafka.topics.signals",
           &k.signals_topic},
      };
  for (const auto& [key, topic, other_key, other] : pairs)
    if (*topic == *other)
      throw ConfigException(
          key, "names topic '" + *topic + "', as " + other_key + " does: each needs its own");
}

ServiceConfig parse_config_node(const YAML::Node& root) {
  ServiceConfig c;
  Section top(root, "");
  read_model(top.child("model"), c.model);
  {
    Section input = top.child("input");
    input.read("max_event_bytes", c.model.decoder.max_event_bytes);
    input.read("max_id_bytes", c.model.decoder.max_id_bytes);
    input.read("max_clock_jump_days", c.model.decoder.max_clock_jump_days);
    std::size_t lateness_ms = 0;
    input.read("allowed_lateness_ms", lateness_ms);
    if (lateness_ms > 7 * static_cast<std::size_t>(rollup::kMsPerDay))
      throw ConfigException("input.allowed_lateness_ms", "must be at most 7 days");
    c.processor.allowed_lateness_ms = static_cast<rollup::TimeMs>(lateness_ms);
    input.finish();
  }
  read_state(top.child("state"), c);
  read_kafka(top.child("kafka"), c.kafka);
  read_service(top.child("service"), c.service);
  read_admin(top.child("admin"), c.admin);
  read_relay(top.child("relay"), c.relay);
  top.finish();
  check_distinct_topics(c);
  const auto errors = rollup::validate(c.model);
  if (!errors.empty()) {
    // validate() names keys relative to the model; map them back to where the YAML has them.
    const std::string& key = errors.front().key;
    const std::string_view decoder = "decoder.";
    throw ConfigException(
        key.rfind(decoder, 0) == 0 ? "input." + key.substr(decoder.size()) : "model." + key,
        errors.front().problem);
  }
  return c;
}

/// Every scalar may take its value from the environment: `${NAME}` or `${NAME:-default}`.
void expand_env_everywhere(YAML::Node node, const std::string& path) {
  if (node.IsScalar()) {
    if (node.Scalar().find("${") != std::string::npos)
      node = expand_env(node.Scalar(), path.empty() ? "(top level)" : path);
  } else if (node.IsMap()) {
    for (auto kv : node)
      expand_env_everywhere(kv.second, (path.empty() ? "" : path + ".") + kv.first.Scalar());
  } else if (node.IsSequence()) {
    for (std::size_t i = 0; i < node.size(); ++i)
      expand_env_everywhere(node[i], path + "[" + std::to_string(i) + "]");
  }
}

}  // namespace

ParsedUrl parse_url(const std::string& url) {
  ParsedUrl out;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    out.tls = true;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    // The URL itself is not quoted: its path or query may carry a token.
    throw std::invalid_argument("must start with https:// or http://");
  }
  const std::size_t slash = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, slash);
  out.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (const auto hash = out.target.find('#'); hash != std::string::npos) out.target.resize(hash);
  if (out.target.empty() || out.target[0] != '/') out.target = "/" + out.target;
  if (authority.find('@') != std::string::npos)
    throw std::invalid_argument("must not carry credentials (use headers)");
  out.port = out.tls ? "443" : "80";
  if (!authority.empty() && authority[0] == '[') {  // [IPv6]:port
    const auto close = authority.find(']');
    if (close == std::string::npos) throw std::invalid_argument("has an unclosed '['");
    out.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') throw std::invalid_argument("has junk after ']'");
      out.port = authority.substr(close + 2);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string::npos) {
    out.host = authority.substr(0, colon);
    out.port = authority.substr(colon + 1);
  } else {
    out.host = authority;
  }
  if (out.host.empty()) throw std::invalid_argument("has no host");
  int port = 0;
  auto [ptr, ec] = std::from_chars(out.port.data(), out.port.data() + out.port.size(), port);
  if (ec != std::errc() || ptr != out.port.data() + out.port.size() || port < 1 || port > 65535)
    throw std::invalid_argument("has an invalid port '" + out.port + "'");
  return out;
}

ServiceConfig parse_config(const std::string& yaml_text) {
  try {
    // YAML::Load reads the first document only: settings after a `---` would be dropped.
    const std::vector<YAML::Node> documents = YAML::LoadAll(yaml_text);
    if (documents.size() > 1)
      throw ConfigException("(yaml)", "holds " + std::to_string(documents.size()) +
                                          " documents (separated by ---); a config is one");
    YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
    expand_env_everywhere(root, "");
    return parse_config_node(root);
  } catch (const YAML::Exception& e) {  // syntax errors, and odd shapes such as a list as a key
    throw ConfigException(
        "(yaml)", "not valid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

ServiceConfig load_config(const std::string& path) {
  std::ifstream in(path);
  // A directory opens on Linux and reads as nothing: every default, without a word.
  if (!in || std::filesystem::is_directory(path))
    throw ConfigException(path, "cannot be read as a file");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigException(path, "cannot be read as a file");
  try {
    return parse_config(text.str());
  } catch (const ConfigException& e) {
    throw ConfigException(e.key(),
                          std::string(e.what()).substr(e.key().size() + 2) + " (in " + path + ")");
  }
}

}  // namespace pqa::scorer
