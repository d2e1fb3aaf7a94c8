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

std::vector<int> RestoreWorker::cancel(const std::vector<int>& partitions) {
  const auto listed = [&partitions](int p) {
    return std::find(partitions.begin(), partitions.end(), p) != partitions.end();
  };
  std::vector<int> cancelled;
  std::unique_lock lock(mutex_);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (!listed(it->partition)) {
      ++it;
      continue;
    }
    cancelled.push_back(it->partition);
    it = queue_.erase(it);
  }
  if (running_ >= 0 && listed(running_)) {
    const int running = running_;
    cancelled.push_back(running);
    halt_ = true;
    changed_.wait(lock, [&] { return running_ != running; });
  }
  // Finished meanwhile or before: discarded, which closes their stores.
  for (auto it = finished_.begin(); it != finished_.end();) {
    if (!listed(it->partition)) {
      ++it;
      continue;
    }
    if (!std::count(cancelled.begin(), cancelled.end(), it->partition))
      cancelled.push_back(it->partition);
    it = finished_.erase(it);
  }
  return cancelled;
}

std::vector<int> RestoreWorker::cancel_all() {
  std::vector<int> all;
  {
    const std::lock_guard lock(mutex_);
    for (const Queued& q : queue_) all.push_back(q.partition);
    if (running_ >= 0) all.push_back(running_);
    for (const RestoredPartition& r : finished_) all.push_back(r.partition);
  }
  return cancel(all);
}

std::vector<RestoredPartition> RestoreWorker::take_finished() {
  const std::lock_guard lock(mutex_);
  if (!errors_.empty()) {
    const std::exception_ptr error = errors_.front();
    errors_.erase(errors_.begin());
    std::rethrow_exception(error);
  }
  return std::exchange(finished_, {});
}

std::size_t RestoreWorker::pending() const {
  const std::lock_guard lock(mutex_);
  return queue_.size() + finished_.size() + (running_ >= 0 ? 1 : 0);
}

bool RestoreWorker::pending(int partition) const {
  const std::lock_guard lock(mutex_);
  return running_ == partition ||
         std::any_of(queue_.begin(), queue_.end(),
                     [partition](const Queued& q) { return q.partition == partition; }) ||
         std::any_of(finished_.begin(), finished_.end(),
                     [partition](const RestoredPartition& r) { return r.partition == partition; });
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
    }
    RestoredPartition restored;
    std::exception_ptr error;
    bool completed = false;
    try {
      restored = next.job();
      completed = true;
    } catch (const RestoreInterrupted&) {
      // Cancelled or stopping: the partition's next owner (or next assignment) restores it.
    } catch (...) {
      error = std::current_exception();
    }
    {
      const std::lock_guard lock(mutex_);
      // A halted job's outcome is dropped whatever it was: its partition is no longer wanted.
      if (!halt_) {
        if (completed) finished_.push_back(std::move(restored));
        if (error) errors_.push_back(error);
      }
    }
    // A store not handed over is closed before the job counts as ended: cancel() returns only
    // then, and the partition's next assignment may open the same directory at once.
    restored = {};
    {
      const std::lock_guard lock(mutex_);
      running_ = -1;
      halt_ = stopping_;
    }
    changed_.notify_all();
  }
}

}  // namespace pqa::scorer
