// The admin HTTP server (Boost.Beast on its own thread): probes, metrics and interactive
// queries on one port. It knows nothing of routes: a handler answers each request, possibly
// later and from another thread (an account query waits for the processing loop).
//
// Hostile clients are bounded: header and body sizes, a deadline per request (reading it and
// answering it), a cap on open connections, and any malformed request gets a 4xx and a closed
// connection, never a crash.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pqa::scorer {

struct HttpRequest {
  std::string method;  ///< e.g. "GET"
  std::string target;  ///< origin form, e.g. "/v1/accounts/acme?x=1"
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers
};

/// Answers a request exactly once, from any thread. Later calls are ignored.
using Respond = std::function<void(HttpResponse)>;
using HttpHandler = std::function<void(const HttpRequest&, Respond)>;

struct AdminServerOptions {
  std::string bind_address = "0.0.0.0";
  int port = 8080;  ///< 0: any free port (tests)
  /// Connections served in full. Beyond them kProbeReserve more are accepted for the probes
  /// and the scrape only (/healthz, /readyz, /metrics, one request each, sent within 1 s),
  /// so that clients holding every slot (parked account queries, idle kept-alive pools) do
  /// not make the kubelet restart a healthy pod; anything else there gets 503. Beyond: closed.
  std::size_t max_connections = 64;
  /// A request must arrive in full, and be answered, within this time; an idle kept-alive
  /// connection is closed after it too.
  int request_timeout_ms = 5'000;
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 4 * 1024;  ///< the API takes no bodies; a little is tolerated
};

/// Connections kept for the probes and the scrape beyond AdminServerOptions::max_connections.
inline constexpr std::size_t kProbeReserve = 8;

/// Listens on construction (throws std::runtime_error naming the address if it cannot bind)
/// and serves until destroyed.
class AdminServer {
 public:
  AdminServer(const AdminServerOptions& options, HttpHandler handler);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  /// The bound port (the chosen one when options.port was 0).
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// JSON error body: {"error": code, "message": message} followed by `extra_members`, already
/// JSON (e.g. `"partition":3`), when given.
HttpResponse json_error(int status, std::string_view code, std::string_view message,
                        std::string_view extra_members = {});

}  // namespace pqa::scorer
