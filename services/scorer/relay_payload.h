// What the relay reads and what it sends: signals decoded from the signals topic, and request
// bodies made from them (the Standard Webhooks envelope, or a field-update template such as
// HubSpot's batch update or Salesforce's sObject Collections upsert). Pure: no I/O.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "relay_config.h"

namespace pqa::scorer {

/// One signal as the scorer published it (json_output.h), and where it was read.
struct RelaySignal {
  std::string signal_id;  ///< the idempotency key: webhook-id of single-signal deliveries
  std::string kind, account_id, band, previous_band, direction, routing, previous_routing,
      event_time, model_version, pattern, department;
  double score = 0;
  std::vector<std::pair<std::string, double>> drivers;  ///< top three, largest first
  std::string json;  ///< the record's value as read: the envelope's `data`

  int partition = -1;
  std::int64_t offset = -1;
  std::int64_t timestamp_ms = 0;      ///< the record's timestamp: when the scorer emitted it
  std::int64_t age_when_read_ms = 0;  ///< how old the record was when the relay read it
  std::uint64_t generation = 0;       ///< the partition assignment it was read under
};
using SignalPtr = std::shared_ptr<const RelaySignal>;

/// Decodes a signals-topic value; a string naming the problem when it is not a signal.
std::variant<RelaySignal, std::string> decode_signal(std::string_view json);

/// Whether `signal` goes to an endpoint with these routes (empty: every signal).
bool route_matches(const std::vector<RelayRoute>& routes, const RelaySignal& signal);

/// {"type":"pqa.<kind>","timestamp":"<event_time>","data":<signal>}
std::string standard_webhooks_body(const RelaySignal& signal);

/// A field-update template compiled once: literal text and placeholders.
class PayloadTemplate {
 public:
  /// Throws std::invalid_argument naming an unknown placeholder or a template whose output
  /// is not JSON (checked by rendering a sample signal).
  PayloadTemplate(const std::string& body, const std::string& record);

  /// The body for these signals (one record each, in order).
  std::string render(const std::vector<SignalPtr>& signals) const;

  /// Every placeholder a record may use.
  static const std::vector<std::string>& placeholders();

 private:
  struct Part {
    std::string literal;
    int placeholder = -1;  ///< index into placeholders(); -1: literal only
  };
  static std::vector<Part> compile(const std::string& text, bool allow_records);
  void render_record(std::string& out, const RelaySignal& signal) const;

  std::vector<Part> body_, record_;
};

/// The built-in payload presets: hubspot, salesforce (body, record, max_records, method).
struct PayloadPreset {
  std::string body, record, method;
  std::size_t max_records;
};
/// nullptr for an unknown name.
const PayloadPreset* find_payload_preset(std::string_view name);

/// Why a 2xx answer of a CRM preset still failed some of its records, if it did: HubSpot's
/// batch update answers 207 Multi-Status with an `errors` list; Salesforce's sObject
/// Collections (allOrNone false) answer 200 with `"success": false` per failed record.
/// nullopt for other presets, whole successes, and bodies that are not such results.
std::optional<std::string> crm_partial_failure(std::string_view preset, int status,
                                               std::string_view body);

}  // namespace pqa::scorer
