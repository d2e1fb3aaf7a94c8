// The relay's HTTP(S) client for one endpoint: Boost.Beast over Asio, OpenSSL for TLS with
// certificate and host-name verification, kept-alive connections reused across requests.
// Runs on the caller's io_context thread; the callback is called there, exactly once (an
// exception it throws leaves io_context::run()).
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "relay_config.h"

namespace pqa::scorer::relay {

struct HttpCall {
  std::string method = "POST";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpReply {
  int status = 0;           ///< 0: no response (error says why)
  std::string error;        ///< transport error, or "HTTP <status>: <start of the body>" if not 2xx
  std::string retry_after;  ///< the Retry-After header, if any
  std::string body;         ///< a 2xx answer's body when read whole (at most 64 KiB), else empty
};

class HttpEndpointClient {
 public:
  /// Throws std::runtime_error if the TLS context cannot be set up (e.g. ca_file unreadable).
  HttpEndpointClient(boost::asio::io_context& io, const EndpointConfig& endpoint);
  ~HttpEndpointClient();
  HttpEndpointClient(const HttpEndpointClient&) = delete;
  HttpEndpointClient& operator=(const HttpEndpointClient&) = delete;

  /// Sends `call` to the endpoint's URL within its timeout (connect, handshake, request and
  /// response together). A kept-alive connection the server has closed meanwhile is retried
  /// once on a new connection.
  void send(HttpCall call, std::function<void(HttpReply)> on_reply);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;  // shared with requests still running
};

}  // namespace pqa::scorer::relay
