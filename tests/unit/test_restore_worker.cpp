// RestoreWorker: restores run off the loop's thread, in order; cancelling one waits until it
// has given up; results and errors come back on the caller's thread.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
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

/// A job that blocks until halted, telling when it has started.
RestoreWorker::Job blocking_job(RestoreWorker& worker, std::promise<void>& started,
                                std::atomic<bool>& gave_up) {
  return [&worker, &started, &gave_up]() -> RestoredPartition {
    started.set_value();
    while (!worker.halt()) std::this_thread::sleep_for(1ms);
    gave_up = true;
    throw RestoreInterrupted("halted");
  };
}

}  // namespace

TEST_CASE("restore worker: restores run in the order started and come back to the caller",
          "[restore]") {
  RestoreWorker worker;
  std::vector<int> order;
  std::mutex m;
  for (const int p : {3, 1, 2})
    worker.start(p, [p, &order, &m] {
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

TEST_CASE("restore worker: cancelling a running restore halts it and waits until it has given up",
          "[restore]") {
  RestoreWorker worker;
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  worker.start(7, blocking_job(worker, started, gave_up));
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(worker.pending(7));
  CHECK(worker.cancel({7}) == std::vector<int>{7});
  CHECK(gave_up);  // cancel() returned only after the job had ended
  CHECK_FALSE(worker.pending(7));
  CHECK(worker.take_finished().empty());

  // The halt was for that job only: the next one runs to the end.
  worker.start(8, [] { return restored(8); });
  const auto done = take(worker, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].partition == 8);
}

TEST_CASE(
    "restore worker: a queued restore cancelled never runs, and unknown partitions are no-ops",
    "[restore]") {
  RestoreWorker worker;
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  std::atomic<bool> second_ran{false};
  worker.start(1, blocking_job(worker, started, gave_up));
  worker.start(2, [&second_ran] {
    second_ran = true;
    return restored(2);
  });
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(worker.pending() == 2);
  CHECK(worker.cancel({2}) == std::vector<int>{2});
  CHECK(worker.cancel({99}).empty());
  CHECK(worker.cancel({1}) == std::vector<int>{1});
  CHECK(worker.pending() == 0);
  // Another job afterwards runs: had 2 still been queued, it would have run first.
  worker.start(3, [] { return restored(3); });
  REQUIRE(take(worker, 1).size() == 1);
  CHECK_FALSE(second_ran);
}

TEST_CASE("restore worker: a finished restore not yet taken is discarded by cancel", "[restore]") {
  RestoreWorker worker;
  std::promise<void> finished;
  worker.start(4, [&finished] {
    auto r = restored(4);
    finished.set_value();
    return r;
  });
  REQUIRE(finished.get_future().wait_for(10s) == std::future_status::ready);
  // The result is handed over just after the job returns.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (worker.pending(4) && std::chrono::steady_clock::now() < deadline) {
    if (worker.cancel({4}) == std::vector<int>{4}) break;
    std::this_thread::sleep_for(1ms);
  }
  CHECK_FALSE(worker.pending(4));
  CHECK(worker.take_finished().empty());
}

TEST_CASE("restore worker: a restore's error is rethrown to the caller, and the others go on",
          "[restore]") {
  RestoreWorker worker;
  worker.start(1, []() -> RestoredPartition { throw StoreError("corrupt state record"); });
  worker.start(2, [] { return restored(2); });
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

TEST_CASE("restore worker: destroying it halts the running restore and drops the queued ones",
          "[restore]") {
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  std::atomic<bool> queued_ran{false};
  {
    RestoreWorker worker;
    worker.start(1, blocking_job(worker, started, gave_up));
    worker.start(2, [&queued_ran] {
      queued_ran = true;
      return restored(2);
    });
    REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  }
  CHECK(gave_up);
  CHECK_FALSE(queued_ran);
}

TEST_CASE("restore worker: cancelling several at once starts none of the queued ones meanwhile",
          "[restore]") {
  // A revoke (or a shutdown) gives up all its partitions: halting the running restore must not
  // let the next one of them start, only to be halted in turn.
  RestoreWorker worker;
  std::promise<void> started;
  std::atomic<bool> gave_up{false};
  std::atomic<int> others_ran{0};
  worker.start(1, blocking_job(worker, started, gave_up));
  for (const int p : {2, 3})
    worker.start(p, [p, &others_ran] {
      ++others_ran;
      return restored(p);
    });
  worker.start(4, [] { return restored(4); });
  REQUIRE(started.get_future().wait_for(10s) == std::future_status::ready);
  auto cancelled = worker.cancel({3, 1, 2});
  std::sort(cancelled.begin(), cancelled.end());
  CHECK(cancelled == std::vector<int>{1, 2, 3});
  CHECK(gave_up);
  const auto done = take(worker, 1);  // the one not cancelled still runs
  REQUIRE(done.size() == 1);
  CHECK(done[0].partition == 4);
  CHECK(others_ran == 0);

  std::promise<void> started_again;
  worker.start(5, blocking_job(worker, started_again, gave_up));
  worker.start(6, [] { return restored(6); });
  REQUIRE(started_again.get_future().wait_for(10s) == std::future_status::ready);
  auto all = worker.cancel_all();
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<int>{5, 6});
  CHECK(worker.pending() == 0);
}
