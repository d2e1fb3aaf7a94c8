#include "group_owners.h"

#include <cstdint>
#include <vector>

#include "log.h"

namespace pqa::scorer {
namespace {

/// Big-endian reader over a byte string; any read past the end makes it fail.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool ok() const { return ok_; }
  std::int64_t integer(int width) {
    if (!ok_ || at_ + width > bytes_.size()) {
      ok_ = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(bytes_[at_++]);
    // Sign-extend: lengths of -1 mean null.
    const int shift = 64 - 8 * width;
    return static_cast<std::int64_t>(v << shift) >> shift;
  }
  std::string_view string() {
    const auto n = integer(2);
    if (!ok_ || n < 0 || at_ + static_cast<std::size_t>(n) > bytes_.size()) {
      ok_ = false;
      return {};
    }
    const auto s = bytes_.substr(at_, static_cast<std::size_t>(n));
    at_ += static_cast<std::size_t>(n);
    return s;
  }

 private:
  std::string_view bytes_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

}  // namespace

std::optional<std::vector<int>> assigned_partitions(std::string_view assignment,
                                                    std::string_view topic) {
  Reader r(assignment);
  const auto version = r.integer(2);
  const auto topics = r.integer(4);
  if (!r.ok() || version < 0 || topics < 0 || topics > 100'000) return std::nullopt;
  std::vector<int> out;
  for (std::int64_t t = 0; t < topics; ++t) {
    const auto name = r.string();
    const auto count = r.integer(4);
    if (!r.ok() || count < 0 || count > 1'000'000) return std::nullopt;
    for (std::int64_t i = 0; i < count; ++i) {
      const auto p = r.integer(4);
      if (!r.ok()) return std::nullopt;
      if (name == topic) out.push_back(static_cast<int>(p));
    }
  }
  return out;  // user data follows; not needed
}

GroupOwners::GroupOwners(rd_kafka_t* rk, std::string group, std::string topic,
                         std::chrono::milliseconds refresh)
    : rk_(rk), group_(std::move(group)), topic_(std::move(topic)), every_(refresh) {
  thread_ = std::thread([this] { loop(); });
}

GroupOwners::~GroupOwners() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::optional<PartitionOwner> GroupOwners::owner_of(int partition) const {
  std::lock_guard lock(mutex_);
  if (auto it = owners_.find(partition); it != owners_.end()) return it->second;
  return std::nullopt;
}

void GroupOwners::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    refresh();
    lock.lock();
    wake_.wait_for(lock, every_, [this] { return stopping_; });
  }
}

void GroupOwners::refresh() {
  const rd_kafka_group_list* list = nullptr;
  const auto err = rd_kafka_list_groups(rk_, group_.c_str(), &list, 2000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log::write(log::Level::kDebug, "admin", "could not describe the consumer group",
               {{"error", rd_kafka_err2str(err)}});
    return;
  }
  std::map<int, PartitionOwner> owners;
  for (int g = 0; g < list->group_cnt; ++g) {
    const auto& group = list->groups[g];
    if (group.err != RD_KAFKA_RESP_ERR_NO_ERROR || group_ != group.group) continue;
    for (int m = 0; m < group.member_cnt; ++m) {
      const auto& member = group.members[m];
      const auto partitions = assigned_partitions(
          std::string_view(static_cast<const char*>(member.member_assignment),
                           static_cast<std::size_t>(member.member_assignment_size)),
          topic_);
      if (!partitions) continue;
      for (int p : *partitions)
        owners[p] = {member.member_id, member.client_id, member.client_host};
    }
  }
  rd_kafka_group_list_destroy(list);
  std::lock_guard lock(mutex_);
  owners_ = std::move(owners);
}

}  // namespace pqa::scorer
