#include "relay_http.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <limits>
#include <optional>
#include <stdexcept>
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without including it

namespace pqa::scorer::relay {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;

constexpr std::size_t kMaxResponseBody = 64 * 1024;
constexpr std::size_t kErrorExcerpt = 200;

struct Connection {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

template <class Stream>
asio::awaitable<HttpReply> exchange(Stream& stream, Connection& c, const Request& request,
                                    Clock::time_point deadline, bool& keep_alive) {
  c.lowest().expires_at(deadline);
  co_await http::async_write(stream, request, asio::use_awaitable);
  // Informational responses (103 Early Hints; 100 Continue is never asked for) come before
  // the answer: skipped, or the answer would be read as the next request's.
  std::optional<http::response_parser<http::string_body>> parser;
  do {
    parser.emplace();
    // Else a long Content-Length fails the header itself. Not boost::none: Boost 1.74 compares
    // the length with it as "greater than none", which is always true.
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    co_await http::async_read_header(stream, c.buffer, *parser, asio::use_awaitable);
  } while (parser->get().result_int() / 100 == 1);
  // The verdict is in the status line: a body over the limit (a receiver echoing the records
  // back) does not turn a 2xx into a failure. It is not read; the connection, left mid-body,
  // is closed.
  boost::system::error_code ec;
  if (const auto length = parser->content_length(); length && *length > kMaxResponseBody) {
    ec = http::error::body_limit;
  } else {
    parser->body_limit(kMaxResponseBody);  // a chunked body can still be long
    co_await http::async_read(stream, c.buffer, *parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec && ec != http::error::body_limit) throw boost::system::system_error(ec);
  }
  c.lowest().expires_never();
  const auto& response = parser->get();
  HttpReply reply;
  reply.status = static_cast<int>(response.result_int());
  if (auto it = response.find(http::field::retry_after); it != response.end())
    reply.retry_after = std::string(it->value());
  if (reply.status < 200 || reply.status >= 300) {
    std::string excerpt = response.body().substr(0, kErrorExcerpt);
    reply.error = "HTTP " + std::to_string(reply.status) + (excerpt.empty() ? "" : ": " + excerpt);
  } else if (!ec) {
    reply.body = response.body();  // a CRM's per-record results (crm_partial_failure)
  }
  keep_alive = !ec && response.keep_alive();
  co_return reply;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string describe(const boost::system::error_code& ec, int timeout_ms) {
  if (ec == beast::error::timeout) return "timed out after " + std::to_string(timeout_ms) + " ms";
  return ec.message() + " (" + ec.category().name() + ")";
}

/// Errors of a kept-alive connection that the server closed while it sat idle.
bool is_stale_connection(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated;
}

}  // namespace

struct HttpEndpointClient::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  ParsedUrl url;
  std::string host_header;
  int timeout_ms;
  std::size_t max_idle;
  bool verify;
  std::optional<ssl::context> tls_context;
  std::vector<std::unique_ptr<Connection>> idle;

  Impl(asio::io_context& io_context, const EndpointConfig& e)
      : io(io_context),
        url(e.parsed),
        timeout_ms(e.timeout_ms),
        max_idle(static_cast<std::size_t>(e.max_in_flight)),
        verify(e.tls_verify) {
    const bool default_port = url.port == (url.tls ? "443" : "80");
    const bool ipv6 = url.host.find(':') != std::string::npos;
    host_header = ipv6 ? "[" + url.host + "]" : url.host;
    if (!default_port) host_header += ":" + url.port;
    if (!url.tls) return;
    tls_context.emplace(ssl::context::tls_client);
    tls_context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                             ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    if (e.ca_file.empty())
      tls_context->set_default_verify_paths(ec);
    else
      tls_context->load_verify_file(e.ca_file, ec);
    if (ec)
      throw std::runtime_error("cannot load the trusted certificates" +
                               (e.ca_file.empty() ? std::string() : " from " + e.ca_file) + ": " +
                               ec.message());
    tls_context->set_verify_mode(verify ? ssl::verify_peer : ssl::verify_none);
  }

  /// Resolves the host within the deadline (getaddrinfo has no timeout of its own).
  asio::awaitable<tcp::resolver::results_type> resolve(Clock::time_point deadline) {
    tcp::resolver resolver(io);
    asio::steady_timer timer(io, deadline);
    // Runs with operation_aborted, touching nothing, if the timer is cancelled first.
    timer.async_wait([&resolver](const boost::system::error_code& ec) {
      if (!ec) resolver.cancel();
    });
    boost::system::error_code ec;
    auto results = co_await resolver.async_resolve(url.host, url.port,
                                                   asio::redirect_error(asio::use_awaitable, ec));
    timer.cancel();
    if (ec == asio::error::operation_aborted)
      throw boost::system::system_error(beast::error::timeout);
    if (ec) throw boost::system::system_error(ec);
    co_return results;
  }

  asio::awaitable<std::unique_ptr<Connection>> connect(Clock::time_point deadline) {
    auto endpoints = co_await resolve(deadline);
    auto c = std::make_unique<Connection>();
    if (!url.tls) {
      c->plain.emplace(io);
      c->plain->expires_at(deadline);
      co_await c->plain->async_connect(endpoints, asio::use_awaitable);
      co_return c;
    }
    c->tls.emplace(io, *tls_context);
    c->lowest().expires_at(deadline);
    co_await c->lowest().async_connect(endpoints, asio::use_awaitable);
    // SNI, so that a server hosting several names presents the right certificate (a name
    // only: RFC 6066 forbids an address there).
    if (!is_ip_literal(url.host) &&
        !SSL_set_tlsext_host_name(c->tls->native_handle(), url.host.c_str()))
      throw boost::system::system_error(boost::system::error_code(
          static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category()));
    if (verify) c->tls->set_verify_callback(ssl::host_name_verification(url.host));
    co_await c->tls->async_handshake(ssl::stream_base::client, asio::use_awaitable);
    co_return c;
  }

  Request make_request(HttpCall& call) const {
    Request request(http::string_to_verb(call.method), url.target, 11);
    request.set(http::field::host, host_header);
    request.set(http::field::user_agent, "pqa-scorer-relay");
    request.set(http::field::content_type, "application/json");
    for (auto& [name, value] : call.headers) request.set(name, value);
    request.keep_alive(true);
    request.body() = std::move(call.body);
    request.prepare_payload();
    return request;
  }

  asio::awaitable<HttpReply> send(HttpCall call) {
    const Request request = make_request(call);
    for (int round = 0;; ++round) {
      std::unique_ptr<Connection> c;
      // The retry after a stale connection opens a new one: the other idle ones are as old.
      const bool reused = round == 0 && !idle.empty();
      if (reused) {
        c = std::move(idle.back());
        idle.pop_back();
      }
      const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
      HttpReply reply;
      bool keep_alive = false;
      try {
        if (!c) c = co_await connect(deadline);
        // Statements, not a conditional expression: GCC 12 miscompiles co_await inside ?:.
        if (c->tls)
          reply = co_await exchange(*c->tls, *c, request, deadline, keep_alive);
        else
          reply = co_await exchange(*c->plain, *c, request, deadline, keep_alive);
      } catch (const boost::system::system_error& e) {
        if (reused && round == 0 && is_stale_connection(e.code())) continue;
        reply.status = 0;
        reply.error = describe(e.code(), timeout_ms);
        keep_alive = false;
      }
      if (keep_alive && idle.size() < max_idle) idle.push_back(std::move(c));
      co_return reply;
    }
  }
};

HttpEndpointClient::HttpEndpointClient(asio::io_context& io, const EndpointConfig& endpoint)
    : impl_(std::make_shared<Impl>(io, endpoint)) {}

HttpEndpointClient::~HttpEndpointClient() = default;

namespace {

// A free coroutine rather than a capturing lambda: parameters live in the coroutine's frame,
// while a lambda's captures would live in a temporary that the coroutine outlives.
asio::awaitable<void> send_and_report(std::shared_ptr<HttpEndpointClient::Impl> client,
                                      HttpCall call, std::function<void(HttpReply)> on_reply) {
  HttpReply reply;
  try {
    reply = co_await client->send(std::move(call));
  } catch (const std::exception& e) {  // e.g. an unknown method name
    reply.status = 0;
    reply.error = e.what();
  }
  on_reply(std::move(reply));
}

}  // namespace

void HttpEndpointClient::send(HttpCall call, std::function<void(HttpReply)> on_reply) {
  // An exception from on_reply (the caller's) leaves io_context::run() rather than vanishing,
  // as asio::detached would let it.
  asio::co_spawn(impl_->io, send_and_report(impl_, std::move(call), std::move(on_reply)),
                 [](const std::exception_ptr& error) {
                   if (error) std::rethrow_exception(error);
                 });
}

}  // namespace pqa::scorer::relay
