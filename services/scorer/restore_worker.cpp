#include "restore_worker.h"

#include <algorithm>
#include <utility>

namespace pqa::scorer {

RestoreWorker::RestoreWorker() : thread_([this] { run(); }) {}

RestoreWorker::~RestoreWorker() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
    halt_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void RestoreWorker::start(int partition, Job job) {
  {
    const std::lock_guard lock(mutex_);
    queue_.push_back({partition, std::move(job)});
  }
  changed_.notify_all();
}

namespace {

/// Removes the items whose partition `listed` names, handing each to `taken` first.
template <typename Items, typename Listed, typename Taken>
void remove_listed(Items& items, const Listed& listed, const Taken& taken) {
  for (auto it = items.begin(); it != items.end();) {
    if (!listed(it->partition)) {
      ++it;
      continue;
    }
    taken(*it);
    it = items.erase(it);
  }
}

}  // namespace

std::vector<RestoreWorker::Cancelled> RestoreWorker::cancel(const std::vector<int>& partitions) {
  const auto listed = [&partitions](int p) {
    return std::find(partitions.begin(), partitions.end(), p) != partitions.end();
  };
  std::vector<Cancelled> cancelled;
  const auto note = [&cancelled](int p, bool was_running) {
    if (std::none_of(cancelled.begin(), cancelled.end(),
                     [p](const Cancelled& c) { return c.partition == p; }))
      cancelled.push_back({p, was_running});
  };
  const auto note_waiting = [&note](const auto& item) { note(item.partition, false); };
  std::vector<RestoredPartition> discarded;  // closed after the lock is released
  {
    const std::lock_guard lock(mutex_);
    // The running one first, so that it counts as such.
    if (running_ >= 0 && !halt_ && listed(running_)) {
      halt_ = true;  // its outcome is dropped when it ends (run())
      note(running_, true);
    }
    remove_listed(queue_, listed, note_waiting);
    remove_listed(finished_, listed, [&](RestoredPartition& r) {
      note_waiting(r);
      discarded.push_back(std::move(r));
    });
    remove_listed(errors_, listed, note_waiting);
  }
  return cancelled;
}

std::vector<RestoreWorker::Cancelled> RestoreWorker::cancel_all() {
  std::vector<int> all;
  {
    const std::lock_guard lock(mutex_);
    for (const Queued& q : queue_) all.push_back(q.partition);
    if (running_ >= 0) all.push_back(running_);
    for (const RestoredPartition& r : finished_) all.push_back(r.partition);
    for (const Failed& f : errors_) all.push_back(f.partition);
  }
  return cancel(all);
}

std::vector<RestoredPartition> RestoreWorker::take_finished() {
  const std::lock_guard lock(mutex_);
  if (!errors_.empty()) {
    const std::exception_ptr error = errors_.front().error;
    errors_.erase(errors_.begin());
    std::rethrow_exception(error);
  }
  return std::exchange(finished_, {});
}

std::size_t RestoreWorker::pending() const {
  const std::lock_guard lock(mutex_);
  return queue_.size() + finished_.size() + errors_.size() + (running_ >= 0 && !halt_ ? 1 : 0);
}

bool RestoreWorker::pending(int partition) const {
  const std::lock_guard lock(mutex_);
  const auto is = [partition](const auto& item) { return item.partition == partition; };
  return (running_ == partition && !halt_) || std::any_of(queue_.begin(), queue_.end(), is) ||
         std::any_of(finished_.begin(), finished_.end(), is) ||
         std::any_of(errors_.begin(), errors_.end(), is);
}

std::optional<std::pair<int, std::int64_t>> RestoreWorker::running() const {
  const std::lock_guard lock(mutex_);
  if (running_ < 0 || halt_) return std::nullopt;
  return std::pair{running_, remaining_.load()};
}

void RestoreWorker::run() {
  for (;;) {
    Queued next;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      next = std::move(queue_.front());
      queue_.pop_front();
      running_ = next.partition;
      remaining_ = 0;
    }
    RestoredPartition restored;
    std::exception_ptr error;
    bool completed = false;
    try {
      restored = next.job(halt_, remaining_);
      completed = true;
    } catch (const RestoreInterrupted&) {
      // Cancelled or stopping: the partition's next owner (or next assignment) restores it.
    } catch (...) {
      error = std::current_exception();
    }
    bool halted = false;
    {
      const std::lock_guard lock(mutex_);
      // A halted job's outcome is dropped whatever it was: its partition is no longer wanted.
      halted = halt_;
      if (!halted) {
        if (completed) finished_.push_back(std::move(restored));
        if (error) errors_.push_back({next.partition, error});
        // Handed over in the same step: the partition is never both running and finished.
        running_ = -1;
      }
    }
    if (halted) {
      // A store not handed over is closed before the next job starts, which may be the same
      // partition's, opening the same directory.
      restored = {};
      const std::lock_guard lock(mutex_);
      running_ = -1;
      halt_ = stopping_;
    }
    changed_.notify_all();
  }
}

}  // namespace pqa::scorer
