// Restores newly assigned partitions on a thread of their own, so the processing loop keeps
// polling the group and processing the partitions it already has meanwhile.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "changelog.h"
#include "state_store.h"

namespace pqa::scorer {

/// A partition's state, restored and ready to be processed.
struct RestoredPartition {
  int partition = 0;
  std::unique_ptr<StateStore> store;
  /// The group's committed input offset, read (settled) before the restore; -1: none.
  std::int64_t committed_offset = -1;
  RestoreResult result;
};

/// Runs restores one at a time, in the order they were started, on one thread.
///
/// Why: a restore inside the rebalance callback (as this service first did) stops the loop for
/// as long as it lasts: the partitions the instance keeps wait, and a restore that outlasts
/// `max.poll.interval.ms` gets the member removed from the group. Kafka Streams restores from
/// its poll loop with the new partitions paused; here the loop pauses them and this thread
/// restores them, and the loop takes each result when it is done (take_finished()).
///
/// Threads: start(), cancel(), take_finished(), pending() and running() are called by the
/// loop's thread; a job runs on the worker's thread and must touch nothing the loop uses
/// without a lock (its own store, its own Kafka clients, thread-safe counters). A job must give
/// up, throwing RestoreInterrupted, soon after `halt` turns true: that is how cancel() and the
/// destructor stop it. It reports the records it still has to restore through `remaining`.
///
/// Cancelling does not wait for a running job (a broker call inside it may last
/// kafka.timeout_ms, and the caller is a rebalance callback): the job is halted and its outcome
/// dropped when it ends. As jobs run one at a time, in order, a partition restored again later
/// opens its store only after the halted job has closed it.
///
/// Errors: a job that throws anything else (a corrupt state record, a hanging transaction on
/// the changelog) has its exception rethrown by the next take_finished(), on the loop's
/// thread, as the restore inside the callback did; unless its partition is cancelled first.
class RestoreWorker {
 public:
  using Job = std::function<RestoredPartition(const std::atomic<bool>& halt,
                                              std::atomic<std::int64_t>& remaining)>;

  RestoreWorker();
  /// Halts the job running, drops the queued ones and joins the thread.
  ~RestoreWorker();
  RestoreWorker(const RestoreWorker&) = delete;
  RestoreWorker& operator=(const RestoreWorker&) = delete;

  /// Set while the running job must give up (cancelled, or the worker stopping).
  const std::atomic<bool>& halt() const { return halt_; }

  /// Queues the restore of `partition`.
  void start(int partition, Job job);

  struct Cancelled {
    int partition;
    bool was_running;  ///< halted mid-way (else queued, or finished and not taken)
  };
  /// Gives up the restores of `partitions`, all at once (none of them queued starts meanwhile):
  /// queued ones are dropped, a running one is halted (not waited for), finished ones not yet
  /// taken are discarded (their stores closed), and so are their errors.
  std::vector<Cancelled> cancel(const std::vector<int>& partitions);
  /// cancel() of every restore started and not yet taken.
  std::vector<Cancelled> cancel_all();
  /// The restores finished since the last call, in the order they finished; rethrows the
  /// first error of a job (the worker goes on with the others).
  std::vector<RestoredPartition> take_finished();
  /// Restores started and neither taken nor cancelled.
  std::size_t pending() const;
  bool pending(int partition) const;
  /// The partition being restored (not cancelled) and the records it still has to restore.
  std::optional<std::pair<int, std::int64_t>> running() const;

 private:
  struct Queued {
    int partition;
    Job job;
  };
  struct Failed {
    int partition;
    std::exception_ptr error;
  };
  void run();

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Queued> queue_;
  int running_ = -1;  ///< the partition being restored; -1: none
  bool stopping_ = false;
  std::vector<RestoredPartition> finished_;
  std::vector<Failed> errors_;
  std::atomic<bool> halt_{false};
  std::atomic<std::int64_t> remaining_{0};
  std::thread thread_;  ///< last: started once the rest exists
};

}  // namespace pqa::scorer
