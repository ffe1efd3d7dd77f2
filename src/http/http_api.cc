#include "http/http_api.h"

#include <httplib.h>

#include <chrono>
#include <memory>
#include <thread>

#include "json_writer.h"

namespace streamrec {

namespace {

constexpr char kJson[] = "application/json";
constexpr size_t kMaxCustomerIdBytes = 256;
constexpr size_t kMaxPayloadBytes = 64 * 1024;

// Constant-time comparison: how long it takes says nothing of where a guess went wrong.
bool SameSecret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// What the handlers share; owned by the handlers themselves (shared_ptr), so that a server
// configured by ConfigureHttpServer needs nothing else to outlive.
struct ApiState {
  QueryBackend* backend;
  std::string token;
  std::function<void(const std::string&, int)> on_request;

  void Count(const std::string& route, int status) const {
    if (on_request) on_request(route, status);
  }
};

// The answers are small JSON documents, always sent whole. httplib would otherwise cut the body
// to a Range header's bytes and still answer 200 (with a Content-Range), which a client takes
// for the whole document (found by fuzz/http_request_fuzz.cc). A server may ignore Range
// (RFC 9110, 14.2); `req` is httplib's own non-const Request, handed to handlers as const.
void IgnoreRange(const httplib::Request& req) {
  const_cast<httplib::Request&>(req).ranges.clear();
}

// Wraps a handler: JSON content type, the metrics callback with the route pattern.
httplib::Server::Handler Route(std::shared_ptr<const ApiState> state, std::string route,
                               std::function<HttpReply(const httplib::Request&)> handler) {
  return [state = std::move(state), route = std::move(route), handler = std::move(handler)](
             const httplib::Request& req, httplib::Response& res) {
    IgnoreRange(req);
    HttpReply reply = handler(req);
    res.status = reply.status;
    res.set_content(reply.body, kJson);
    if (reply.status == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"streamrec\"");
    state->Count(route, reply.status);
  };
}

HttpReply MethodNotAllowed(const char* allowed) {
  return {405, JsonError(std::string("method not allowed; use ") + allowed)};
}

class HttpApiImpl : public HttpApi {
 public:
  HttpApiImpl(QueryBackend* backend, std::string token,
              std::function<void(const std::string&, int)> on_request)
      : backend_(backend), token_(std::move(token)), on_request_(std::move(on_request)) {}

  ~HttpApiImpl() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  Status Start(const HttpConfig& config) {
    const size_t colon = config.listen.rfind(':');
    const std::string host = config.listen.substr(0, colon);
    const int port = std::stoi(config.listen.substr(colon + 1));
    const int threads = config.threads;
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // httplib's default also sets SO_REUSEPORT, which lets a second process bind the same port
    // and silently take half the requests: keep only SO_REUSEADDR (fast restarts).
    server_.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    ConfigureHttpServer(&server_, backend_, token_, on_request_);
    if (port == 0) {
      port_ = server_.bind_to_any_port(host);
      if (port_ < 0) return Status::IOError("http.listen '" + config.listen + "': cannot bind");
    } else {
      if (!server_.bind_to_port(host, port)) {
        return Status::IOError("http.listen '" + config.listen +
                               "': cannot bind (address in use or not local?)");
      }
      port_ = port;
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() only stops a server that is running: wait for it, so that destroying the API
    // right after Start cannot leave the listener thread behind.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!server_.is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    if (!server_.is_running()) return Status::IOError("http.listen '" + config.listen + "': the server did not start");
    return Status::OK();
  }

  int port() const override { return port_; }

 private:
  QueryBackend* backend_;
  const std::string token_;
  std::function<void(const std::string&, int)> on_request_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace

std::string JsonError(const std::string& message) {
  JsonWriter w;
  w.BeginObject().Key("error").String(message).EndObject();
  return w.Release();
}

bool ValidCustomerId(const std::string& id) {
  if (id.empty() || id.size() > kMaxCustomerIdBytes) return false;
  for (char c : id) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '/') return false;
  }
  return true;
}

void ConfigureHttpServer(httplib::Server* server, QueryBackend* backend, std::string token,
                         std::function<void(const std::string& route, int status)> on_request) {
  auto state = std::make_shared<const ApiState>(
      ApiState{backend, std::move(token), std::move(on_request)});
  server->set_payload_max_length(kMaxPayloadBytes);
  server->Get(R"(/v1/customers/(.*))",
              Route(state, "/v1/customers/{id}", [state](const httplib::Request& req) -> HttpReply {
                const std::string id = req.matches[1];
                if (!ValidCustomerId(id)) {
                  return {400, JsonError("bad customer id: 1 to 256 bytes, no control "
                                         "characters, no '/'")};
                }
                return state->backend->Customer(id);
              }));
  server->Get("/v1/segments",
              Route(state, "/v1/segments",
                    [state](const httplib::Request&) { return state->backend->Segments(); }));
  server->Get("/v1/model",
              Route(state, "/v1/model",
                    [state](const httplib::Request&) { return state->backend->Model(); }));
  server->Post("/v1/refit", Route(state, "/v1/refit", [state](const httplib::Request& req) -> HttpReply {
                 if (state->token.empty()) {
                   return {403, JsonError("re-fits over HTTP are disabled: set http.refit_token "
                                          "(or STREAMREC_HTTP__REFIT_TOKEN)")};
                 }
                 const std::string auth = req.get_header_value("Authorization");
                 const std::string prefix = "Bearer ";
                 if (auth.rfind(prefix, 0) != 0) {
                   return {401, JsonError("missing bearer token (Authorization: Bearer ...)")};
                 }
                 if (!SameSecret(auth.substr(prefix.size()), state->token)) {
                   return {401, JsonError("bad bearer token")};
                 }
                 return state->backend->Refit();
               }));
  server->Get("/v1/refit", Route(state, "/v1/refit", [](const httplib::Request&) {
                return MethodNotAllowed("POST");
              }));
  for (const char* path : {"/v1/segments", "/v1/model"}) {
    server->Post(path, Route(state, path,
                             [](const httplib::Request&) { return MethodNotAllowed("GET"); }));
  }
  server->Get("/healthz", Route(state, "/healthz", [state](const httplib::Request&) -> HttpReply {
                std::string why;
                if (state->backend->Healthy(&why)) return {200, R"({"status":"ok"})"};
                JsonWriter w;
                w.BeginObject().Key("status").String("unhealthy").Key("reason").String(why).EndObject();
                return {503, w.Release()};
              }));
  server->Get("/readyz", Route(state, "/readyz", [state](const httplib::Request&) -> HttpReply {
                std::string why;
                const bool ready = state->backend->Ready(&why);
                JsonWriter w;
                w.BeginObject().Key("status").String(ready ? "ready" : "not ready");
                if (!why.empty()) w.Key("reason").String(why);
                w.EndObject();
                return {ready ? 200 : 503, w.Release()};
              }));
  // Anything else: a JSON 404 (or the status a handler chose, with a JSON body).
  server->set_error_handler(httplib::Server::HandlerWithResponse(
      [state](const httplib::Request& req, httplib::Response& res) {
    IgnoreRange(req);
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) {
      res.set_content(JsonError("no such endpoint: " + req.method + " " + req.path +
                                " (see GET /v1/customers/{id}, /v1/segments, /v1/model, "
                                "POST /v1/refit, /healthz, /readyz)"),
                      kJson);
      state->Count("other", 404);
    } else {
      res.set_content(JsonError(res.status == 413 ? "payload too large"
                                : res.status == 400 ? "bad request: malformed HTTP (a POST needs a "
                                                      "Content-Length header; with curl add -d '')"
                                                    : "HTTP status " + std::to_string(res.status)),
                      kJson);
      state->Count("other", res.status);
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  server->set_exception_handler(
      [state](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what += std::string(": ") + e.what();
        } catch (...) {
        }
        res.status = 500;
        res.set_content(JsonError(what), kJson);
        state->Count("other", 500);
      });
}

StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(
    const HttpConfig& config, QueryBackend* backend,
    std::function<void(const std::string& route, int status)> on_request) {
  auto api = std::make_unique<HttpApiImpl>(backend, config.refit_token, std::move(on_request));
  STREAMREC_RETURN_IF_ERROR(api->Start(config));
  return std::unique_ptr<HttpApi>(std::move(api));
}

}  // namespace streamrec
