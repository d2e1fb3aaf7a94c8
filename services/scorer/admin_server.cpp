#include "admin_server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include "json_output.h"
#include "log.h"

namespace pqa::scorer {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

/// The status a parse error earns; nullopt: close without answering (the peer went away or
/// was too slow).
std::optional<int> status_for(const beast::error_code& ec) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::connection_reset || ec == asio::error::eof ||
      ec == http::error::partial_message || ec == asio::error::operation_aborted)
    return std::nullopt;
  if (ec == http::error::header_limit) return 431;
  if (ec == http::error::body_limit) return 413;
  return 400;
}

/// How long a reserved connection (beyond max_connections) may take to send its request.
constexpr int kReservedReadTimeoutMs = 1000;

class Session : public std::enable_shared_from_this<Session> {
 public:
  /// `reserved`: a connection beyond max_connections, for a probe or a scrape only.
  Session(tcp::socket socket, const AdminServerOptions& options, const HttpHandler& handler,
          std::atomic<std::size_t>& open, bool reserved)
      : reserved_(reserved),
        stream_(std::move(socket)),
        deadline_(stream_.get_executor()),
        // The buffer's cap is the request's: a smaller one would refuse headers within
        // admin.max_header_bytes as a buffer overflow (400), not 431 past the setting.
        buffer_(options.max_header_bytes + options.max_body_bytes),
        options_(options),
        handler_(handler),
        open_(open) {}
  ~Session() { open_.fetch_sub(1); }

  void start() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
    parser_->body_limit(options_.max_body_bytes);
    // A probe sends its request at once: a reserved slot is not held idle for long.
    stream_.expires_after(std::chrono::milliseconds(
        reserved_ ? std::min(options_.request_timeout_ms, kReservedReadTimeoutMs)
                  : options_.request_timeout_ms));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      if (const auto status = status_for(ec)) {
        keep_alive_ = false;
        write(json_error(*status, "bad_request", ec.message()));
      } else {
        close();
      }
      return;
    }
    const auto& request = parser_->get();
    keep_alive_ = request.keep_alive() && !reserved_;  // a reserved slot serves one request
    if (reserved_ && !is_probe({request.target().data(), request.target().size()})) {
      auto response = json_error(503, "busy", "every connection is taken; retry later");
      response.headers.emplace_back("Retry-After", "1");
      write(std::move(response));
      return;
    }
    if (request.method() != http::verb::get) {
      auto response = json_error(405, "method_not_allowed", "only GET is served");
      response.headers.emplace_back("Allow", "GET");
      write(std::move(response));
      return;
    }
    answered_ = false;
    const std::uint64_t generation = ++generation_;
    // The handler may answer later, from another thread: the answer comes back through the
    // session's executor, and a deadline answers 503 if it does not come in time.
    deadline_.expires_after(std::chrono::milliseconds(options_.request_timeout_ms));
    deadline_.async_wait([self = shared_from_this(), generation](beast::error_code wait_ec) {
      if (!wait_ec) self->answer(generation, json_error(503, "timeout", "no answer in time"));
    });
    Respond respond = [weak = weak_from_this(), generation,
                       executor = stream_.get_executor()](HttpResponse response) {
      asio::post(executor, [weak, generation, response = std::move(response)]() mutable {
        if (auto self = weak.lock()) self->answer(generation, std::move(response));
      });
    };
    HttpRequest plain{std::string(request.method_string()), std::string(request.target())};
    try {
      handler_(plain, std::move(respond));
    } catch (const std::exception& e) {
      answer(generation, json_error(500, "internal", e.what()));
    }
  }

  void answer(std::uint64_t generation, HttpResponse response) {
    if (answered_ || generation != generation_) return;  // late, or already timed out
    answered_ = true;
    deadline_.cancel();
    write(std::move(response));
  }

  void write(HttpResponse r) {
    auto message = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), 11);
    message->set(http::field::server, "pqa-scorer");
    message->set(http::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers) message->set(name, value);
    message->keep_alive(keep_alive_);
    message->body() = std::move(r.body);
    message->prepare_payload();
    stream_.expires_after(std::chrono::milliseconds(options_.request_timeout_ms));
    http::async_write(stream_, *message,
                      [self = shared_from_this(), message](beast::error_code ec, std::size_t) {
                        if (ec || !self->keep_alive_)
                          self->close();
                        else
                          self->read();
                      });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  static bool is_probe(std::string_view target) {
    const std::string_view path = target.substr(0, target.find('?'));
    return path == "/healthz" || path == "/readyz" || path == "/metrics";
  }

  const bool reserved_;
  beast::tcp_stream stream_;
  asio::steady_timer deadline_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const AdminServerOptions& options_;
  const HttpHandler& handler_;
  std::atomic<std::size_t>& open_;
  bool keep_alive_ = false;
  bool answered_ = true;
  std::uint64_t generation_ = 0;
};

}  // namespace

HttpResponse json_error(int status, std::string_view code, std::string_view message,
                        std::string_view extra_members) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = "{\"error\":";
  append_json_string(r.body, code);
  r.body += ",\"message\":";
  append_json_string(r.body, message);
  if (!extra_members.empty()) r.body.append(",").append(extra_members);
  r.body += "}";
  return r;
}

struct AdminServer::Impl {
  Impl(const AdminServerOptions& o, HttpHandler h)
      : options(o), handler(std::move(h)), acceptor(io) {
    beast::error_code ec;
    const auto address = asio::ip::make_address(options.bind_address, ec);
    if (ec)
      throw std::runtime_error("admin.bind_address: '" + options.bind_address +
                               "' is not an IP address");
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(options.port));
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint, ec);
    if (ec)
      throw std::runtime_error("admin: cannot listen on " + options.bind_address + ":" +
                               std::to_string(options.port) + ": " + ec.message());
    acceptor.listen(asio::socket_base::max_listen_connections);
    bound_port = acceptor.local_endpoint().port();
    accept();
    thread = std::thread([this] { io.run(); });
  }

  ~Impl() {
    io.stop();
    thread.join();
  }

  void accept() {
    acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        // Out of file descriptors (EMFILE, ENFILE) the connection stays in the backlog and an
        // immediate retry fails again: a busy loop, and a log line each time. Wait a little,
        // and say so once per streak.
        if (std::exchange(accept_failing, true) == false)
          log::warn("admin", "accept failed; retrying every 100 ms", {{"error", ec.message()}});
        retry_timer.expires_after(std::chrono::milliseconds(100));
        retry_timer.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) accept();
        });
        return;
      }
      accept_failing = false;
      if (open.load() >= options.max_connections + kProbeReserve) {
        beast::error_code ignored;
        socket.close(ignored);  // over the cap: refused outright, costs nothing
      } else {
        const bool reserved = open.fetch_add(1) >= options.max_connections;
        std::make_shared<Session>(std::move(socket), options, handler, open, reserved)->start();
      }
      accept();
    });
  }

  // Sessions still open when the server stops are destroyed with `io`: what they refer to
  // (options, handler, open) is declared before it, so it outlives them.
  AdminServerOptions options;
  HttpHandler handler;
  std::atomic<std::size_t> open{0};
  asio::io_context io{1};
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer{io};
  bool accept_failing = false;  ///< only the io thread touches it
  int bound_port = 0;
  std::thread thread;
};

AdminServer::AdminServer(const AdminServerOptions& options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(options, std::move(handler))) {}

AdminServer::~AdminServer() = default;

int AdminServer::port() const {
  return impl_->bound_port;
}

}  // namespace pqa::scorer
