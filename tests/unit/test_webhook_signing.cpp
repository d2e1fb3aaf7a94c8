// Standard Webhooks signatures: the specification's test vector, key rotation, bad secrets.
// tests/integration/webhook_signature_test.sh checks random cases against the independent
// Python implementation (PyPI `standardwebhooks`).
#include <catch2/catch.hpp>

#include "webhook_signing.h"

using namespace pqa::scorer;

namespace {
// The reference vector of the Standard Webhooks libraries' tests.
constexpr const char* kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char* kId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr std::int64_t kTimestamp = 1614265330;
constexpr const char* kBody = "{\"test\": 2432232314}";
constexpr const char* kSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
}  // namespace

TEST_CASE("webhook signature: the specification's test vector", "[webhook]") {
  CHECK(WebhookSigner({kSecret}).signature(kId, kTimestamp, kBody) == kSignature);
  // The prefix is optional.
  CHECK(WebhookSigner({"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}).signature(kId, kTimestamp, kBody) ==
        kSignature);
}

TEST_CASE("webhook signature: any change to id, time or body changes it", "[webhook]") {
  const WebhookSigner signer({kSecret});
  CHECK(signer.signature("msg_other", kTimestamp, kBody) != kSignature);
  CHECK(signer.signature(kId, kTimestamp + 1, kBody) != kSignature);
  CHECK(signer.signature(kId, kTimestamp, "{\"test\": 2432232315}") != kSignature);
}

TEST_CASE("webhook signature: rotation signs with every secret, in order", "[webhook]") {
  const std::string other = "whsec_" + base64_encode(std::string(32, '\x07'));
  const auto both = WebhookSigner({kSecret, other}).signature(kId, kTimestamp, kBody);
  const auto second = WebhookSigner({other}).signature(kId, kTimestamp, kBody);
  CHECK(both == std::string(kSignature) + " " + second);
}

TEST_CASE("webhook signature: bad secrets are refused by position, not echoed", "[webhook]") {
  CHECK_THROWS_WITH(WebhookSigner({}), Catch::Contains("at least one"));
  CHECK_THROWS_WITH(WebhookSigner({kSecret, "whsec_not*base64"}),
                    Catch::Contains("signing secret #2 is not base64"));
  CHECK_THROWS_WITH(WebhookSigner({"whsec_" + base64_encode("short key")}),
                    Catch::Contains("9-byte key"));
  try {
    WebhookSigner({"whsec_s3cr3t*"});
  } catch (const WebhookSecretError& e) {
    CHECK(std::string(e.what()).find("s3cr3t") == std::string::npos);
  }
}

TEST_CASE("base64 round trip and strict decoding", "[webhook]") {
  for (const std::string s : {"f", "fo", "foo", "foob", "fooba", "foobar"})
    CHECK(base64_decode(base64_encode(s)).value_or("?") == s);
  CHECK_FALSE(base64_decode(""));  // an empty key is no key
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_decode("Zm9vYg==") == "foob");
  CHECK_FALSE(base64_decode("Zm9vYg="));   // length not a multiple of 4
  CHECK_FALSE(base64_decode("Zm9=Yg=="));  // padding inside
  CHECK_FALSE(base64_decode("Zm9vY-=="));  // URL-safe alphabet is not this one
}
