// Prints random signing cases as JSON lines for webhook_signature_test.sh, which verifies each
// with the independent Python implementation of Standard Webhooks.
// Usage: webhook_sign_cases N NOW (unix seconds: the timestamps fall within 200 s before it,
// inside the receiver's 5-minute tolerance)
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "json_output.h"
#include "webhook_signing.h"

int main(int argc, char** argv) {
  using namespace pqa::scorer;
  if (argc != 3) {
    std::fputs("usage: webhook_sign_cases N NOW\n", stderr);
    return 2;
  }
  const int cases = std::stoi(argv[1]);
  const std::int64_t now = std::stoll(argv[2]);
  std::mt19937_64 rng(20261123);
  const auto bytes = [&](std::size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  for (int i = 0; i < cases; ++i) {
    std::vector<std::string> secrets;
    for (std::size_t k = 0; k < 1 + rng() % 3; ++k)
      secrets.push_back("whsec_" + base64_encode(bytes(24 + rng() % 41)));
    const std::string id = "msg_" + base64_encode(bytes(12));
    const std::int64_t timestamp = now - static_cast<std::int64_t>(rng() % 200);
    // Bodies with unicode, escapes and JSON-looking text, as signal payloads have.
    std::string body = "{\"account\":\"acme \xc3\xa9\xe2\x82\xac\",\"n\":" + std::to_string(rng()) +
                       ",\"text\":\"" + base64_encode(bytes(rng() % 300)) + "\\n\"}";
    std::string line = "{\"secrets\":[";
    for (std::size_t k = 0; k < secrets.size(); ++k) {
      if (k) line += ",";
      append_json_string(line, secrets[k]);
    }
    line += "],\"id\":";
    append_json_string(line, id);
    line += ",\"timestamp\":" + std::to_string(timestamp) + ",\"body\":";
    append_json_string(line, body);
    line += ",\"signature\":";
    append_json_string(line, WebhookSigner(secrets).signature(id, timestamp, body));
    line += "}";
    std::puts(line.c_str());
  }
  return 0;
}
