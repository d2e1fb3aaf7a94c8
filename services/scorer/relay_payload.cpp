#include "relay_payload.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "json_output.h"
#include "pqa/rollup/event.h"
#include "pqa/rollup/scoring.h"

namespace pqa::scorer {
namespace {

using simdjson::dom::element;

std::string string_member(const simdjson::dom::object& obj, std::string_view key) {
  std::string_view v;
  if (obj[key].get_string().get(v) == simdjson::SUCCESS) return std::string(v);
  return {};
}

bool is_one_of(std::string_view v, std::initializer_list<std::string_view> allowed) {
  for (auto a : allowed)
    if (v == a) return true;
  return false;
}

}  // namespace

std::variant<RelaySignal, std::string> decode_signal(std::string_view json) {
  // One parser per thread: the relay decodes on its loop thread only, tests on theirs.
  thread_local simdjson::dom::parser parser;
  element doc;
  if (auto err = parser.parse(json.data(), json.size()).get(doc))
    return std::string("not JSON: ") + simdjson::error_message(err);
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) return std::string("not a JSON object");
  RelaySignal s;
  s.signal_id = string_member(obj, "signal_id");
  s.kind = string_member(obj, "kind");
  s.account_id = string_member(obj, "account_id");
  s.band = string_member(obj, "band");
  if (s.signal_id.empty()) return std::string("signal_id is missing or not a string");
  // It becomes the webhook-id header: printable ASCII only, so it cannot split the request.
  if (s.signal_id.size() > 256 || !std::all_of(s.signal_id.begin(), s.signal_id.end(),
                                               [](char c) { return c > ' ' && c < 127; }))
    return std::string("signal_id must be 1 to 256 printable ASCII characters");
  if (s.account_id.empty()) return std::string("account_id is missing or not a string");
  if (std::ranges::find(rollup::signal_kind_names(), s.kind) == rollup::signal_kind_names().end())
    return "kind '" + rollup::quote_input(s.kind) + "' is not a signal kind";
  if (!is_one_of(s.band, {"cold", "nurture", "qualified", "hot"}))
    return "band '" + rollup::quote_input(s.band) + "' is not a band";
  if (obj["score"].get_double().get(s.score) != simdjson::SUCCESS)
    return std::string("score is missing or not a number");
  s.previous_band = string_member(obj, "previous_band");
  s.direction = string_member(obj, "direction");
  s.routing = string_member(obj, "routing");
  s.previous_routing = string_member(obj, "previous_routing");
  s.event_time = string_member(obj, "event_time");
  s.model_version = string_member(obj, "model_version");
  s.pattern = string_member(obj, "pattern");
  s.department = string_member(obj, "department");
  simdjson::dom::array drivers;
  if (obj["drivers"].get_array().get(drivers) == simdjson::SUCCESS) {
    for (element d : drivers) {
      std::string_view name;
      double points = 0;
      if (d["name"].get_string().get(name) != simdjson::SUCCESS) continue;
      if (d["points"].get_double().get(points) != simdjson::SUCCESS) points = 0;
      s.drivers.emplace_back(std::string(name), points);
    }
  }
  s.json.assign(json);
  return s;
}

namespace {

bool in_set_or_any(const std::set<std::string>& set, const std::string& value) {
  return set.empty() || set.count(value) > 0;
}

}  // namespace

bool route_matches(const std::vector<RelayRoute>& routes, const RelaySignal& s) {
  if (routes.empty()) return true;
  for (const RelayRoute& r : routes) {
    if (in_set_or_any(r.kinds, s.kind) && in_set_or_any(r.bands, s.band) &&
        in_set_or_any(r.directions, s.direction) && in_set_or_any(r.routings, s.routing))
      return true;
  }
  return false;
}

std::string standard_webhooks_body(const RelaySignal& s) {
  std::string out;
  out.reserve(s.json.size() + 96);
  out += "{\"type\":";
  append_json_string(out, "pqa." + s.kind);
  out += ",\"timestamp\":";
  append_json_string(out, s.event_time);
  out += ",\"data\":";
  out += s.json;
  out += '}';
  return out;
}

// --- Templates ----------------------------------------------------------------------------

namespace {

enum Placeholder : int {
  kSignalId,
  kKind,
  kAccountId,
  kScore,
  kBand,
  kPreviousBand,
  kDirection,
  kRouting,
  kPreviousRouting,
  kEventTime,
  kModelVersion,
  kPattern,
  kDepartment,
  kDriver1,
  kDriver2,
  kDriver3,
  kDriver1Name,
  kDriver2Name,
  kDriver3Name,
  kDriver1Points,
  kDriver2Points,
  kDriver3Points,
  kDrivers,
  kSignal,
  kRecords,  // body only
};

void append_points(std::string& out, double v) {
  if (!std::isfinite(v)) v = 0;  // cannot come from JSON; never written as nan (not JSON)
  char buf[64];
  if (std::abs(v) >= 1e15) {  // beyond any score: shortest exact form, e.g. 1e+300
    const auto written = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, written.ptr);
    return;
  }
  const int n = std::snprintf(buf, sizeof buf, "%.2f", v);  // at most 20 characters here
  std::string_view s(buf, std::clamp<std::size_t>(n > 0 ? n : 0, 0, sizeof buf - 1));
  while (s.size() > 1 && s.back() == '0') s.remove_suffix(1);
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  out.append(s.empty() ? std::string_view("0") : s);
}

/// "name (+12.5)": the driver as a CRM text field shows it; "" when there is no such driver.
std::string driver_text(const RelaySignal& s, std::size_t i) {
  if (i >= s.drivers.size()) return {};
  std::string t = s.drivers[i].first + " (" + (s.drivers[i].second >= 0 ? "+" : "");
  append_points(t, s.drivers[i].second);
  return t + ")";
}

void append_placeholder(std::string& out, int p, const RelaySignal& s) {
  auto str = [&](const std::string& v) { append_json_string(out, v); };
  auto driver_name = [&](std::size_t i) {
    str(i < s.drivers.size() ? s.drivers[i].first : std::string());
  };
  auto driver_points = [&](std::size_t i) {
    append_points(out, i < s.drivers.size() ? s.drivers[i].second : 0.0);
  };
  switch (static_cast<Placeholder>(p)) {
    case kSignalId:
      return str(s.signal_id);
    case kKind:
      return str(s.kind);
    case kAccountId:
      return str(s.account_id);
    case kScore:
      return append_points(out, s.score);
    case kBand:
      return str(s.band);
    case kPreviousBand:
      return str(s.previous_band);
    case kDirection:
      return str(s.direction);
    case kRouting:
      return str(s.routing);
    case kPreviousRouting:
      return str(s.previous_routing);
    case kEventTime:
      return str(s.event_time);
    case kModelVersion:
      return str(s.model_version);
    case kPattern:
      return str(s.pattern);
    case kDepartment:
      return str(s.department);
    case kDriver1:
      return str(driver_text(s, 0));
    case kDriver2:
      return str(driver_text(s, 1));
    case kDriver3:
      return str(driver_text(s, 2));
    case kDriver1Name:
      return driver_name(0);
    case kDriver2Name:
      return driver_name(1);
    case kDriver3Name:
      return driver_name(2);
    case kDriver1Points:
      return driver_points(0);
    case kDriver2Points:
      return driver_points(1);
    case kDriver3Points:
      return driver_points(2);
    case kDrivers: {
      std::string joined;
      for (std::size_t i = 0; i < s.drivers.size(); ++i)
        joined += (i ? "; " : "") + driver_text(s, i);
      return str(joined);
    }
    case kSignal:
      out += s.json;
      return;
    case kRecords:
      return;  // handled by render()
  }
}

}  // namespace

const std::vector<std::string>& PayloadTemplate::placeholders() {
  static const std::vector<std::string> names{"signal_id",
                                              "kind",
                                              "account_id",
                                              "score",
                                              "band",
                                              "previous_band",
                                              "direction",
                                              "routing",
                                              "previous_routing",
                                              "event_time",
                                              "model_version",
                                              "pattern",
                                              "department",
                                              "driver_1",
                                              "driver_2",
                                              "driver_3",
                                              "driver_1_name",
                                              "driver_2_name",
                                              "driver_3_name",
                                              "driver_1_points",
                                              "driver_2_points",
                                              "driver_3_points",
                                              "drivers",
                                              "signal",
                                              "records"};
  return names;
}

std::vector<PayloadTemplate::Part> PayloadTemplate::compile(const std::string& text,
                                                            bool allow_records) {
  std::vector<Part> parts;
  std::size_t i = 0;
  Part current;
  while (i < text.size()) {
    const std::size_t open = text.find("{{", i);
    if (open == std::string::npos) {
      current.literal.append(text, i, std::string::npos);
      break;
    }
    const std::size_t close = text.find("}}", open + 2);
    if (close == std::string::npos)
      throw std::invalid_argument("unterminated '{{' at offset " + std::to_string(open));
    current.literal.append(text, i, open - i);
    const std::string name = text.substr(open + 2, close - open - 2);
    const auto& names = placeholders();
    int index = -1;
    for (std::size_t k = 0; k < names.size(); ++k)
      if (names[k] == name) index = static_cast<int>(k);
    if (index < 0) throw std::invalid_argument("unknown placeholder {{" + name + "}}");
    if ((index == kRecords) != allow_records)
      throw std::invalid_argument(allow_records ? "the body may only use {{records}}"
                                                : "{{records}} belongs in the body");
    current.placeholder = index;
    parts.push_back(std::move(current));
    current = Part{};
    i = close + 2;
  }
  if (!current.literal.empty()) parts.push_back(std::move(current));
  return parts;
}

PayloadTemplate::PayloadTemplate(const std::string& body, const std::string& record)
    : body_(compile(body, true)), record_(compile(record, false)) {
  int records = 0;
  for (const Part& p : body_) records += p.placeholder == kRecords;
  if (records != 1) throw std::invalid_argument("the body must use {{records}} exactly once");
  RelaySignal sample;
  sample.signal_id = "sig_sample";
  sample.kind = "threshold_crossed";
  sample.account_id = "acme \"quoted\"";
  sample.band = "hot";
  sample.score = 81.5;
  sample.drivers = {{"breadth", 30.25}, {"fabric", 20}};
  sample.json = R"({"signal_id":"sig_sample"})";
  auto one = std::make_shared<RelaySignal>(sample);
  const std::string rendered = render({one, one});
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(rendered).get(doc) != simdjson::SUCCESS)
    throw std::invalid_argument("does not make JSON (two sample records give: " + rendered + ")");
}

void PayloadTemplate::render_record(std::string& out, const RelaySignal& s) const {
  for (const Part& p : record_) {
    out += p.literal;
    if (p.placeholder >= 0) append_placeholder(out, p.placeholder, s);
  }
}

std::string PayloadTemplate::render(const std::vector<SignalPtr>& signals) const {
  std::string out;
  out.reserve(64 + signals.size() * 320);
  for (const Part& p : body_) {
    out += p.literal;
    if (p.placeholder != kRecords) continue;
    for (std::size_t i = 0; i < signals.size(); ++i) {
      if (i) out += ',';
      render_record(out, *signals[i]);
    }
  }
  return out;
}

const PayloadPreset* find_payload_preset(std::string_view name) {
  // HubSpot: POST /crm/v3/objects/companies/batch/update, companies found by a unique
  // property holding our account id; at most 100 inputs per call.
  static const PayloadPreset hubspot{
      R"({"inputs":[{{records}}]})",
      R"({"idProperty":"pqa_account_id","id":{{account_id}},"properties":{)"
      R"("pqa_score":{{score}},"pqa_band":{{band}},"pqa_routing":{{routing}},)"
      R"("pqa_top_driver_1":{{driver_1}},"pqa_top_driver_2":{{driver_2}},)"
      R"("pqa_top_driver_3":{{driver_3}},"pqa_signal_id":{{signal_id}},)"
      R"("pqa_scored_at":{{event_time}}}})",
      "POST", 100};
  // Salesforce: PATCH /services/data/vXX.X/composite/sobjects/Account/PQA_Account_Id__c
  // (sObject Collections upsert on an external id); at most 200 records per call.
  static const PayloadPreset salesforce{
      R"({"allOrNone":false,"records":[{{records}}]})",
      R"({"attributes":{"type":"Account"},"PQA_Account_Id__c":{{account_id}},)"
      R"("PQA_Score__c":{{score}},"PQA_Band__c":{{band}},"PQA_Routing__c":{{routing}},)"
      R"("PQA_Top_Driver_1__c":{{driver_1}},"PQA_Top_Driver_2__c":{{driver_2}},)"
      R"("PQA_Top_Driver_3__c":{{driver_3}},"PQA_Signal_Id__c":{{signal_id}}})",
      "PATCH", 200};
  if (name == "hubspot") return &hubspot;
  if (name == "salesforce") return &salesforce;
  return nullptr;
}

std::optional<std::string> crm_partial_failure(std::string_view preset, int status,
                                               std::string_view body) {
  constexpr std::size_t kExcerpt = 200;
  const auto excerpt = [&] { return rollup::quote_input(body, kExcerpt); };
  if (preset == "hubspot") {
    if (status != 207) return std::nullopt;
    return "HTTP 207: some records failed: " + excerpt();
  }
  if (preset != "salesforce" || body.empty()) return std::nullopt;
  thread_local simdjson::dom::parser parser;  // the relay's loop thread, or a test's
  simdjson::dom::element doc;
  simdjson::dom::array results;
  if (parser.parse(body.data(), body.size()).get(doc) || doc.get_array().get(results))
    return std::nullopt;
  std::size_t failed = 0, total = 0;
  for (simdjson::dom::element result : results) {
    ++total;
    bool success = true;
    if (result["success"].get_bool().get(success) == simdjson::SUCCESS && !success) ++failed;
  }
  if (failed == 0) return std::nullopt;
  return "HTTP " + std::to_string(status) + ": " + std::to_string(failed) + " of " +
         std::to_string(total) + " records failed: " + excerpt();
}

}  // namespace pqa::scorer
