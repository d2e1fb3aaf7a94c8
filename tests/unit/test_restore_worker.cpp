// RestoreWorker: restores run off the loop's thread, in order; cancelling one halts it without
// waiting, and a partition restored again opens its store only after the halted job ended;
// results and errors come back on the caller's thread.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "restore_worker.h"

using namespace pqa::scorer;
using namespace std::chrono_literals;

namespace {

RestoredPartition restored(int partition) {
  RestoredPartition r;
  r.partition = partition;
  r.store = make_memory_store();
  r.result.records = static_cast<std::uint64_t>(partition) * 10;
  return r;
}

/// A job that returns at once.
RestoreWorker::Job quick(int partition) {
  return [partition](const std::atomic<bool>&, std::atomic<std::int64_t>&) {
    return restored(partition);
  };
}

/// Waits (bounded) until the worker has handed over `count` results, collecting them.
std::vector<RestoredPartition> take(RestoreWorker& worker, std::size_t count) {
  std::vector<RestoredPartition> out;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    for (auto& r : worker.take_finished()) out.push_back(std::move(r));
    std::this_thread::sleep_for(1ms);
  }
  return out;
}

/// A job that reports `remaining`, then blocks until halted, telling when it has started and
/// when it has given up. Once halted it waits for `release` too, if given (a broker call that
/// goes on after the halt).
RestoreWorker::Job blocking_job(std::promise<void>& started, std::atomic<bool>& gave_up,
                                std::int64_t remaining = 0, std::shared_future<void> release = {}) {
  return [&started, &gave_up, remaining, release](
             const std::atomic<bool>& halt, std::atomic<std::int64_t>& left) -> RestoredPartition {
    left = remaining;
    started.set_value();
    while (!halt) std::this_thread::sleep_for(1ms);
    if (release.valid()) release.wait();
    std::this_thread::sleep_for(20ms);  // closing the store takes a while
    gave_up = true;
    throw RestoreInterrupted("halted");
  };
}

bool eventually(const std::atomic<bool>& flag) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!flag && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  return flag;
}

std::vector<int> partitions_of(const std::vector<RestoreWorker::Cancelled>& cancelled) {
  std::vector<int> out;
  for (const auto& c : cancelled) out.push_back(c.partition);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("restore worker: restores run in the order started and come back to the caller",
          "[restore]") {
  std::vector<int> order;
  std::mutex m;
  RestoreWorker worker;  // last: destroyed (joined) before what its jobs use
  for (const int p : {3, 1, 2})
    worker.start(p, [p, &order, &m](const std::atomic<bool>&, std::atomic<std::int64_t>&) {
      const std::lock_guard lock(m);
      order.push_back(p);
      return restored(p);
    });
  const auto done = take(worker, 3);
  REQUIRE(done.size() == 3);
  CHECK(order == std::vector<int>{3, 1, 2});
  CHECK(done[0].partition == 3);
  CHECK(done[1].partition == 1);
  CHECK(done[2].partition == 2);
  CHECK(done[2].result.records == 20);
  CHECK(done[2].store != nullptr);
  CHECK(worker.pending() == 0);
  CHECK_FALSE(worker.pending(3));
}

TEST_CASE("restore worker: the running restore reports what it has left", "[restore]") {
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  RestoreWorker worker;  // last: destroyed (joined) before what its jobs use
  CHECK_FALSE(worker.running());
  worker.start(5, blocking_job(started, gave_up, 42));
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  const auto running = worker.running();
  REQUIRE(running);
  CHECK(running->first == 5);
  CHECK(running->second == 42);
  worker.cancel({5});
  CHECK_FALSE(worker.running());  // halted: no longer reported, though still ending
}

TEST_CASE(
    "restore worker: a running restore is halted without waiting, and restored again it "
    "starts after the halted one has ended",
    "[restore]") {
  std::promise<void> started;
  std::promise<void> release;
  std::atomic<bool> gave_up{false};
  std::atomic<bool> second_saw_first_ended{false};
  RestoreWorker worker;  // last: destroyed (joined) before what its jobs use
  worker.start(7, blocking_job(started, gave_up, 0, release.get_future().share()));
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(worker.pending(7));
  const auto cancelled = worker.cancel({7});
  // cancel() returned while the job is still held after its halt.
  CHECK_FALSE(gave_up);
  REQUIRE(cancelled.size() == 1);
  CHECK(cancelled[0].partition == 7);
  CHECK(cancelled[0].was_running);
  CHECK_FALSE(worker.pending(7));
  CHECK_FALSE(worker.running());

  // The same partition again (a re-assignment), queued while the halted job still holds its
  // store: it must not start before that job has ended.
  worker.start(7, [&](const std::atomic<bool>&, std::atomic<std::int64_t>&) {
    second_saw_first_ended = gave_up.load();
    return restored(7);
  });
  CHECK(worker.pending(7));
  std::this_thread::sleep_for(50ms);
  CHECK(worker.take_finished().empty());  // still waiting behind the halted job
  release.set_value();
  const auto done = take(worker, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].partition == 7);
  CHECK(second_saw_first_ended);
}

TEST_CASE("restore worker: a halted restore's outcome is dropped, whether it completed or failed",
          "[restore]") {
  // The partition was taken away while its restore ended anyway.
  std::promise<void> started;
  std::promise<void> started_failing;
  RestoreWorker worker;  // last: destroyed (joined) before what its jobs use
  worker.start(1, [&started](const std::atomic<bool>& halt, std::atomic<std::int64_t>&) {
    started.set_value();
    while (!halt) std::this_thread::sleep_for(1ms);
    return restored(1);  // completed all the same
  });
  worker.start(2,
               [&started_failing](const std::atomic<bool>& halt,
                                  std::atomic<std::int64_t>&) -> RestoredPartition {
                 started_failing.set_value();
                 while (!halt) std::this_thread::sleep_for(1ms);
                 throw StoreError("failed all the same");
               });
  worker.start(3, quick(3));
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  worker.cancel({1});
  REQUIRE(started_failing.get_future().wait_for(10s) == std::future_status::ready);
  worker.cancel({2});
  std::vector<RestoredPartition> done;
  REQUIRE_NOTHROW(done = take(worker, 1));
  REQUIRE(done.size() == 1);
  CHECK(done[0].partition == 3);
  CHECK_NOTHROW(worker.take_finished());
  CHECK(worker.pending() == 0);
}

TEST_CASE(
    "restore worker: a queued restore cancelled never runs, and unknown partitions are "
    "no-ops",
    "[restore]") {
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  std::atomic<bool> second_ran{false};
  RestoreWorker worker;  // last: destroyed (joined) before what its jobs use
  worker.start(1, blocking_job(started, gave_up));
  worker.start(2, [&second_ran](const std::atomic<bool>&, std::atomic<std::int64_t>&) {
    second_ran = true;
    return restored(2);
  });
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(worker.pending() == 2);
  const auto queued = worker.cancel({2});
  REQUIRE(queued.size() == 1);
  CHECK_FALSE(queued[0].was_running);
  CHECK(worker.cancel({99}).empty());
  CHECK(partitions_of(worker.cancel({1})) == std::vector<int>{1});
  CHECK(worker.pending() == 0);
  CHECK(eventually(gave_up));
  // Another job afterwards runs: had 2 still been queued, it would have run first.
  worker.start(3, quick(3));
  REQUIRE(take(worker, 1).size() == 1);
  CHECK_FALSE(second_ran);
}

TEST_CASE("restore worker: a finished restore not yet taken is discarded by cancel", "[restore]") {
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  RestoreWorker worker;  // last: destroyed (joined) before what its jobs use
  worker.start(4, quick(4));
  worker.start(5, blocking_job(started, gave_up));
  // 5 runs only once 4 has ended and been handed over.
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(worker.pending(4));
  const auto cancelled = worker.cancel({4});
  REQUIRE(cancelled.size() == 1);
  CHECK(cancelled[0].partition == 4);
  CHECK_FALSE(cancelled[0].was_running);
  CHECK_FALSE(worker.pending(4));
  CHECK(worker.take_finished().empty());
  worker.cancel({5});
}

TEST_CASE("restore worker: a restore's error is rethrown to the caller, and the others go on",
          "[restore]") {
  RestoreWorker worker;  // last: destroyed (joined) before what its jobs use
  worker.start(1, [](const std::atomic<bool>&, std::atomic<std::int64_t>&) -> RestoredPartition {
    throw StoreError("corrupt state record");
  });
  worker.start(2, quick(2));
  std::vector<RestoredPartition> done;
  bool thrown = false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((!thrown || done.empty()) && std::chrono::steady_clock::now() < deadline) {
    try {
      for (auto& r : worker.take_finished()) done.push_back(std::move(r));
    } catch (const StoreError& e) {
      CHECK(std::string(e.what()) == "corrupt state record");
      thrown = true;
    }
    std::this_thread::sleep_for(1ms);
  }
  CHECK(thrown);
  REQUIRE(done.size() == 1);
  CHECK(done[0].partition == 2);
}

TEST_CASE("restore worker: the error of a partition cancelled before it was taken is dropped",
          "[restore]") {
  // Its partition was taken away: the error is not this instance's any more.
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  RestoreWorker worker;  // last: destroyed (joined) before what its jobs use
  worker.start(1, [](const std::atomic<bool>&, std::atomic<std::int64_t>&) -> RestoredPartition {
    throw StoreError("corrupt state record");
  });
  worker.start(2, blocking_job(started, gave_up));
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(worker.pending(1));
  CHECK(partitions_of(worker.cancel({1})) == std::vector<int>{1});
  CHECK_NOTHROW(worker.take_finished());
  worker.cancel({2});
}

TEST_CASE("restore worker: cancelling several at once starts none of the queued ones meanwhile",
          "[restore]") {
  // A revoke (or a shutdown) gives up all its partitions: halting the running restore must not
  // let the next one of them start, only to be halted in turn.
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  std::atomic<int> others_ran{0};
  std::promise<void> started_again;
  std::atomic<bool> gave_up_again{false};
  RestoreWorker worker;  // last: destroyed (joined) before what its jobs use
  worker.start(1, blocking_job(started, gave_up));
  for (const int p : {2, 3})
    worker.start(p, [p, &others_ran](const std::atomic<bool>&, std::atomic<std::int64_t>&) {
      ++others_ran;
      return restored(p);
    });
  worker.start(4, quick(4));
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(partitions_of(worker.cancel({3, 1, 2})) == std::vector<int>{1, 2, 3});
  const auto done = take(worker, 1);  // the one not cancelled still runs
  REQUIRE(done.size() == 1);
  CHECK(done[0].partition == 4);
  CHECK(gave_up);
  CHECK(others_ran == 0);

  worker.start(5, blocking_job(started_again, gave_up_again));
  worker.start(6, quick(6));
  REQUIRE(started_again.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(partitions_of(worker.cancel_all()) == std::vector<int>{5, 6});
  CHECK(worker.pending() == 0);
}

TEST_CASE("restore worker: destroying it halts the running restore and drops the queued ones",
          "[restore]") {
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  std::atomic<bool> queued_ran{false};
  {
    RestoreWorker worker;
    worker.start(1, blocking_job(started, gave_up));
    worker.start(2, [&queued_ran](const std::atomic<bool>&, std::atomic<std::int64_t>&) {
      queued_ran = true;
      return restored(2);
    });
    REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  }
  CHECK(gave_up);  // the destructor joined the thread after the job had ended
  CHECK_FALSE(queued_ran);
}
