#include "admin_routes.h"

#include <simdjson.h>

#include <utility>
#include <vector>

namespace pqa::scorer {
namespace {

constexpr std::string_view kAccountsPrefix = "/v1/accounts/";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

HttpResponse text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (std::size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out += segment[i];
      continue;
    }
    if (i + 2 >= segment.size()) return std::nullopt;  // needs two hex digits
    const int high = hex_value(segment[i + 1]);
    const int low = hex_value(segment[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

void AccountQueries::submit(std::string account, Respond respond) {
  bool crowded = false;
  {
    std::lock_guard lock(mutex_);
    crowded = pending_.size() >= kMaxPending;
    if (serving_ && !crowded) {
      pending_.push_back(
          {std::move(account), std::move(respond), std::chrono::steady_clock::now() + wait_});
      return;
    }
  }
  respond(crowded ? json_error(503, "unavailable", "too many account queries are waiting")
                  : json_error(503, "unavailable", "the service is starting or stopping"));
}

void AccountQueries::set_serving(bool serving) {
  std::deque<Pending> dropped;
  {
    std::lock_guard lock(mutex_);
    serving_ = serving;
    if (!serving) dropped.swap(pending_);
  }
  for (auto& p : dropped)
    p.respond(json_error(503, "unavailable", "the service is starting or stopping"));
}

void AccountQueries::serve(const std::function<HttpResponse(const std::string&)>& answer) {
  std::deque<Pending> batch;
  {
    std::lock_guard lock(mutex_);
    if (pending_.empty()) return;
    batch.swap(pending_);
  }
  const auto now = std::chrono::steady_clock::now();
  for (auto& p : batch) {
    // Past its deadline the server has answered 503 already: not computed (a store read on
    // the loop's thread for nobody), counted as what the client got.
    if (now >= p.deadline)
      p.respond(json_error(503, "unavailable", "timed out waiting for the processing loop"));
    else
      p.respond(answer(p.account));
  }
}

HttpHandler make_admin_handler(ServiceMetrics& metrics, AccountQueries& queries) {
  return [&metrics, &queries](const HttpRequest& request, Respond respond) {
    std::string_view path = request.target;
    if (const auto query = path.find('?'); query != std::string_view::npos)
      path = path.substr(0, query);
    // Counted when answered, by route, so that the label set stays small.
    const auto answer = [&metrics, &respond](std::string_view route, HttpResponse r) {
      metrics.count_http_request(route, r.status);
      respond(std::move(r));
    };
    if (path == "/healthz") return answer("healthz", text(200, "ok\n"));
    if (path == "/readyz")
      return metrics.ready() ? answer("readyz", text(200, "ready\n"))
                             : answer("readyz", text(503,
                                                     "not ready: restoring partitions or "
                                                     "not connected to Kafka\n"));
    if (path == "/metrics") {
      HttpResponse r = text(200, metrics.exposition());
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      return answer("metrics", std::move(r));
    }
    if (path.substr(0, kAccountsPrefix.size()) == kAccountsPrefix) {
      // Not ready (a partition restoring, Kafka unreachable): an answer could be missing or
      // stale, and a query parked for the loop would hold one of the connections the probes
      // and the scrapes need.
      if (!metrics.ready()) {
        HttpResponse busy = json_error(503, "unavailable",
                                       "not ready: restoring partitions or not connected to Kafka");
        busy.headers.emplace_back("Retry-After", "5");
        return answer("accounts", std::move(busy));
      }
      const auto segment = path.substr(kAccountsPrefix.size());
      auto account = percent_decode(segment);
      // The id is echoed in JSON answers: UTF-8 text only, and of an id's length.
      constexpr std::size_t kMaxIdBytes = 1024;
      if (!account || account->empty() || account->size() > kMaxIdBytes ||
          segment.find('/') != std::string_view::npos ||
          !simdjson::validate_utf8(account->data(), account->size()))
        return answer("accounts",
                      json_error(400, "bad_account_id",
                                 "expected /v1/accounts/{id} with a URL-encoded UTF-8 id of at "
                                 "most 1024 bytes"));
      // Answered later, by the processing loop; counted then.
      return queries.submit(std::move(*account),
                            [&metrics, respond = std::move(respond)](HttpResponse r) {
                              metrics.count_http_request("accounts", r.status);
                              respond(std::move(r));
                            });
    }
    answer("other", json_error(404, "not_found", "no such route"));
  };
}

}  // namespace pqa::scorer
