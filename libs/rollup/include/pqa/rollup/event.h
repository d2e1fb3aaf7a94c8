// A decoded Segment-spec call, and the decoder that makes one from JSON.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "pqa/rollup/config.h"
#include "pqa/rollup/types.h"

namespace pqa::rollup {

enum class CallType : std::uint8_t { kTrack, kIdentify, kGroup, kIgnored };

/// A scalar account trait from a `group` call (string, number or boolean).
struct Trait {
  std::string name;
  std::variant<std::string, double, bool> value;
  /// In an account's state: the time of the call the value comes from (each trait follows
  /// its own latest call). kNoTime in a decoded event, whose timestamp it is.
  TimeMs as_of = kNoTime;
  auto operator<=>(const Trait&) const = default;
};

/// One Segment call reduced to what the model reads. Owns its strings.
struct Event {
  CallType type = CallType::kIgnored;
  std::string message_id;      ///< `messageId`; may be empty
  UserId user;                 ///< `userId`, else `anonymousId`
  AccountId explicit_account;  ///< `context.groupId`, else `groupId` of a group call; may be empty
  std::string name;            ///< `event` of a track call
  TimeMs timestamp = 0;        ///< `timestamp` (else `originalTimestamp`), event time
  const EventRule* rule = nullptr;        ///< taxonomy rule of a track event; nullptr: usage
  double quantity = 1.0;                  ///< the rule's quantity property (default 1)
  std::optional<std::string> role;        ///< user trait (identify traits or context.traits)
  std::optional<std::string> department;  ///< user trait
  std::vector<Trait> account_traits;      ///< group traits the model reads

  /// Back to a default event, keeping the strings' capacity for the next decode.
  void reset();
};

enum class DecodeError : std::uint8_t {
  kOversized,
  kMalformedJson,
  kNotAnObject,
  kMissingType,
  kUnknownType,
  kMissingUserId,
  kMissingTimestamp,
  kBadTimestamp,
  kMissingEventName,
  kMissingGroupId,
  kInvalidType,
  kInvalidValue,
  kIdTooLong,
  /// Decoded fine, but no account: no groupId and the user was never tied to one by a group call.
  kUnresolvedAccount,
  /// Decoded fine, but its time is further ahead of the stream's clock than allowed.
  kTooFarAhead,
};
inline constexpr std::size_t kDecodeErrorCount = 15;

/// Stable snake_case reason, used in logs, metrics labels and dead-letter headers.
std::string_view to_string(DecodeError e);

struct DecodeFailure {
  DecodeError code;
  std::string detail;  ///< e.g. "field 'userId' must be a string"
  std::string message() const;
};

/// An input value as quoted in an error: at most `max_bytes` of it, cut on a UTF-8 character
/// boundary, control bytes written as \xNN, so that a value cannot end a log line, forge the
/// next one, or cut a message short at a NUL (the text also goes into a dead letter's header).
std::string quote_input(std::string_view value, std::size_t max_bytes = 64);

/// Result of decoding one message: the event, or why it was rejected.
class DecodeResult {
 public:
  DecodeResult(Event e) : value_(std::move(e)) {}          // NOLINT: implicit by design
  DecodeResult(DecodeFailure f) : value_(std::move(f)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<Event>(value_); }
  Event& event() { return std::get<Event>(value_); }
  const DecodeFailure& failure() const { return std::get<DecodeFailure>(value_); }

 private:
  std::variant<Event, DecodeFailure> value_;
};

/// Whether the bytes of a message are followed in memory by at least kInputPadding readable
/// bytes (of any content): true of lines in a file buffer, not of a Kafka payload.
enum class Padding { kNone, kReadable };
inline constexpr std::size_t kInputPadding = 64;

/// The one event decoder. Holds a reusable simdjson parser, so one instance per thread.
/// Never throws on input; every rejection is a DecodeFailure.
class EventDecoder {
 public:
  explicit EventDecoder(const Model& model);
  ~EventDecoder();
  EventDecoder(const EventDecoder&) = delete;
  EventDecoder& operator=(const EventDecoder&) = delete;

  /// Decodes into `out` (reset first; its buffers are reused, so a long-lived Event makes the
  /// hot path allocation-free). Returns why the message was rejected, if it was; after a
  /// rejection the content of `out` is unspecified. With Padding::kReadable the message is
  /// parsed where it lies (the parser reads past its end, never beyond the padding, and the
  /// bytes there do not change the result); otherwise it is first copied into a padded buffer.
  [[nodiscard]] std::optional<DecodeFailure> decode_into(std::string_view json, Event& out,
                                                         Padding padding = Padding::kNone);
  /// Convenience for tests and tools: the same, returning a fresh Event or the failure.
  [[nodiscard]] DecodeResult decode(std::string_view json);

 private:
  struct Impl;
  const Model& model_;
  std::unique_ptr<Impl> impl_;
};

/// Parses an ISO-8601 / RFC 3339 timestamp ("2026-01-05T10:00:00.123Z"; offsets "Z", "+02:00",
/// "+0200", "+02"; fractional seconds to nanoseconds, truncated to milliseconds). Accepts years
/// 2000..2099 only.
std::optional<TimeMs> parse_timestamp(std::string_view s);
/// Formats as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string format_timestamp(TimeMs t);

}  // namespace pqa::rollup
