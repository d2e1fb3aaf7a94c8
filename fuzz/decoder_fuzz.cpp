// libFuzzer target for the event decoder and the scoring it feeds.
// Any input must decode to an event or a DecodeFailure, never crash, hang or leak; an event
// that decodes is applied to fresh state, so the core sees hostile-but-valid events too.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pqa/rollup/config.h"
#include "pqa/rollup/event.h"
#include "pqa/rollup/scoring.h"

namespace {
const pqa::rollup::Model& model() {
  static const pqa::rollup::Model m{[] {
    pqa::rollup::ModelConfig c;
    c.fit_rules = {{"industry", pqa::rollup::FitOp::kIn, {"saas"}, 0, 0, 0.5},
                   {"employees", pqa::rollup::FitOp::kBetween, {}, 10, 1000, 0.5}};
    c.decay.segments = {{"smb", 0, 99, 7.0}};
    return c;
  }()};
  return m;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static pqa::rollup::EventDecoder decoder(model());
  auto result = decoder.decode(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!result.ok()) {
    if (result.failure().message().empty()) __builtin_trap();  // every rejection has a reason
    return 0;
  }
  const pqa::rollup::Event& e = result.event();
  if (e.type == pqa::rollup::CallType::kIgnored) return 0;
  pqa::rollup::AccountState account;
  pqa::rollup::UserState user;
  auto out = pqa::rollup::apply_event(model(), account, user, true, e, e.timestamp);
  out = pqa::rollup::advance(model(), account, e.timestamp + 90LL * pqa::rollup::kMsPerDay);
  const auto score = pqa::rollup::evaluate(model(), account, e.timestamp + 91LL * 86'400'000);
  if (!(score.score >= 0.0 && score.score <= 100.0)) __builtin_trap();
  return 0;
}
