// libFuzzer target for the event decoder and the scoring it feeds.
// Any input must decode to an event or a DecodeFailure, never crash, hang or leak; an event
// that decodes is applied to fresh state, so the core sees hostile-but-valid events too.
#include <cstddef>
#include <cstdint>
#include <string>
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
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // The in-place path replay uses (the line followed by readable bytes, not copied) must
  // answer as the copying path does.
  static std::string padded;
  padded.assign(input);
  padded.append(pqa::rollup::kInputPadding, '\0');
  pqa::rollup::Event in_place;
  const auto in_place_failure = decoder.decode_into(std::string_view(padded.data(), size), in_place,
                                                    pqa::rollup::Padding::kReadable);
  auto result = decoder.decode(input);
  if (result.ok() == in_place_failure.has_value()) __builtin_trap();
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
