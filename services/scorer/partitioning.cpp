#include "partitioning.h"

namespace pqa::scorer {

std::int32_t kafka_murmur2(std::string_view key) {
  // Unsigned arithmetic wraps as Java's int does; the bit patterns are the same.
  constexpr std::uint32_t kSeed = 0x9747b28c;
  constexpr std::uint32_t kM = 0x5bd1e995;
  constexpr int kR = 24;
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  const auto length = static_cast<std::uint32_t>(key.size());
  std::uint32_t h = kSeed ^ length;
  const std::uint32_t blocks = length / 4;
  for (std::uint32_t i = 0; i < blocks; ++i) {
    const unsigned char* b = data + i * 4;
    std::uint32_t k = static_cast<std::uint32_t>(b[0]) | (static_cast<std::uint32_t>(b[1]) << 8) |
                      (static_cast<std::uint32_t>(b[2]) << 16) |
                      (static_cast<std::uint32_t>(b[3]) << 24);
    k *= kM;
    k ^= k >> kR;
    k *= kM;
    h *= kM;
    h ^= k;
  }
  const unsigned char* tail = data + blocks * 4;
  switch (length % 4) {
    case 3:
      h ^= static_cast<std::uint32_t>(tail[2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<std::uint32_t>(tail[1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= tail[0];
      h *= kM;
      break;
    default:
      break;
  }
  h ^= h >> 13;
  h *= kM;
  h ^= h >> 15;
  return static_cast<std::int32_t>(h);
}

int partition_for_key(std::string_view key, int partitions) {
  const auto positive = static_cast<std::uint32_t>(kafka_murmur2(key)) & 0x7fffffffu;
  return static_cast<int>(positive % static_cast<std::uint32_t>(partitions));
}

std::optional<std::string> AccountRouter::route(const rollup::Event& e) {
  if (e.type == rollup::CallType::kGroup && !e.explicit_account.empty()) {
    auto& known = identity_[e.user.str()];
    // The processor's rule (Processor::remember_identity): the latest group call, and between
    // calls of the same time the greater account id, whatever the arrival order.
    if (known.first.empty() ||
        rollup::later_call_wins(e.timestamp, e.explicit_account.str(), known.second, known.first))
      known = {e.explicit_account.str(), e.timestamp};
  }
  if (!e.explicit_account.empty()) return e.explicit_account.str();
  if (auto it = identity_.find(e.user.str()); it != identity_.end()) return it->second.first;
  return std::nullopt;
}

}  // namespace pqa::scorer
