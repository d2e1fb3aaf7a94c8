#include "webhook_signing.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

namespace pqa::scorer {

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '+' || c == '/';
    // '=' only as the last one or two characters.
    const bool padding =
        c == '=' && i + 2 >= text.size() && (i + 1 == text.size() || text[i + 1] == '=');
    if (!alphabet && !padding) return std::nullopt;
  }
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes: drop them.
  std::size_t size = static_cast<std::size_t>(n);
  if (text.back() == '=') --size;
  if (text[text.size() - 2] == '=') --size;
  out.resize(size);
  return out;
}

WebhookSigner::WebhookSigner(const std::vector<std::string>& secrets) {
  if (secrets.empty()) throw WebhookSecretError("at least one signing secret is required");
  constexpr std::string_view kPrefix = "whsec_";
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    std::string_view text = secrets[i];
    if (text.substr(0, kPrefix.size()) == kPrefix) text.remove_prefix(kPrefix.size());
    auto key = base64_decode(text);
    const std::string which = "signing secret #" + std::to_string(i + 1);
    if (!key) throw WebhookSecretError(which + " is not base64 (expected whsec_<base64>)");
    if (key->size() < kMinKeyBytes)
      throw WebhookSecretError(which + " has a " + std::to_string(key->size()) +
                               "-byte key; at least " + std::to_string(kMinKeyBytes) +
                               " bytes are required");
    keys_.push_back(std::move(*key));
  }
}

std::string WebhookSigner::signature(std::string_view webhook_id, std::int64_t timestamp_seconds,
                                     std::string_view body) const {
  std::string content;
  content.reserve(webhook_id.size() + body.size() + 24);
  content.append(webhook_id).append(".").append(std::to_string(timestamp_seconds)).append(".");
  content.append(body);
  std::string header;
  for (const auto& key : keys_) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int mac_size = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac.data(),
         &mac_size);
    if (!header.empty()) header += ' ';
    header += "v1,";
    header += base64_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac_size));
  }
  return header;
}

}  // namespace pqa::scorer
