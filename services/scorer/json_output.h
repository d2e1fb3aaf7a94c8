// JSON-lines form of signals and account scores (field names as in proto/pqa/v1/pqa.proto).
#pragma once

#include <string>
#include <string_view>

#include "pqa/rollup/scoring.h"

namespace pqa::scorer {

/// A core signal stamped with its identity, ready to leave the process.
struct OutputSignal {
  std::string signal_id;
  rollup::AccountId account;
  rollup::Signal signal;
};

/// Appends `s` as a JSON string literal (quotes included, control characters escaped).
void append_json_string(std::string& out, std::string_view s);

/// One line (no trailing newline). Deterministic: the same signal gives the same bytes.
std::string to_json(const OutputSignal& s, const std::string& model_version);
/// Appends the same JSON to `out`.
void write_signal(std::string& out, const OutputSignal& s, const std::string& model_version);
std::string score_to_json(const rollup::AccountId& account, const rollup::Score& score,
                          rollup::TimeMs as_of, const std::string& model_version);

}  // namespace pqa::scorer
