// Binary encoding of persisted state (proto/pqa/v1/pqa.proto) and the store's key layout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pqa/rollup/state.h"

namespace pqa::scorer {

/// An account's state plus the service's bookkeeping for it.
struct StoredAccount {
  rollup::AccountState state;
  rollup::TimeMs timer_due = rollup::kNever;  ///< the timer registered for this account
  /// The model that derived fit, segment and band; empty if the record predates the field.
  std::string model_version;
  bool operator==(const StoredAccount&) const = default;
};

/// Identity resolution: the account a user was last tied to by a group call, and when.
struct Identity {
  rollup::AccountId account;
  rollup::TimeMs as_of = rollup::kNoTime;
  bool operator==(const Identity&) const = default;
};

std::string encode(const StoredAccount& a);
std::string encode(const rollup::UserState& u);
std::string encode(const Identity& i);
/// Decoders return nullopt for bytes that are not a valid record (corruption is reported by
/// the caller, never guessed around).
std::optional<StoredAccount> decode_account(std::string_view bytes);
std::optional<rollup::UserState> decode_user(std::string_view bytes);
std::optional<Identity> decode_identity(std::string_view bytes);

/// Key layout: one leading byte per keyspace, so each keyspace is a contiguous range.
namespace keys {
inline constexpr char kAccount = 'A';
inline constexpr char kUser = 'U';
inline constexpr char kIdentity = 'I';
inline constexpr char kMeta = 'M';

std::string account(std::string_view account_id);
/// Length-prefixed account id, so ids containing any byte cannot collide.
std::string user(std::string_view account_id, std::string_view user_id);
std::string identity(std::string_view user_id);
std::string meta(std::string_view name);
/// The same, written into a reused buffer (no allocation on the hot path once it has grown).
void account(std::string& out, std::string_view account_id);
void user(std::string& out, std::string_view account_id, std::string_view user_id);
void identity(std::string& out, std::string_view user_id);
}  // namespace keys

class StateStore;
/// A decimal integer kept in the store's metadata (keys::meta(name)); nullopt if absent. Not a
/// whole decimal integer: StoreError naming the record and what it should be (`what`: "a time").
std::optional<std::int64_t> read_meta_integer(StateStore& store, std::string_view name,
                                              std::string_view what);

}  // namespace pqa::scorer
