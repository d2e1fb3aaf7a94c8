#pragma once
#include <catch2/catch.hpp>

#include "harness.h"

namespace pqa::test {
inline void Harness::send(const std::string& json) {
  auto failure = processor.process(json);
  INFO(json);
  REQUIRE_FALSE(failure.has_value());
}
}  // namespace pqa::test
