// Standard Webhooks signatures (https://www.standardwebhooks.com): what the CRM relay puts in
// `webhook-signature` so that a receiver can check a delivery came from us, unaltered.
//
//   signed content = "<webhook-id>.<webhook-timestamp>.<body>"
//   signature      = "v1," + base64(HMAC-SHA256(secret key, signed content))
//
// Secrets are "whsec_" + base64 of the key (the prefix is optional). Several secrets sign at
// once (space-separated signatures), so a key can be rotated without a window in which the
// receiver rejects deliveries.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pqa::scorer {

/// Raised for a secret that is not base64 or whose key is too short to be safe.
class WebhookSecretError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class WebhookSigner {
 public:
  /// Keys shorter than this are refused (the specification recommends 24 to 64 bytes).
  static constexpr std::size_t kMinKeyBytes = 24;

  /// Throws WebhookSecretError naming which secret (by position, never by value) is bad.
  explicit WebhookSigner(const std::vector<std::string>& secrets);

  /// The `webhook-signature` header value: one "v1,<base64>" per secret, space-separated.
  std::string signature(std::string_view webhook_id, std::int64_t timestamp_seconds,
                        std::string_view body) const;

 private:
  std::vector<std::string> keys_;  ///< raw key bytes
};

std::string base64_encode(std::string_view bytes);
/// Standard alphabet with padding; nullopt for anything else.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace pqa::scorer
