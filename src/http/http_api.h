// HttpApi: the JSON query API on cpp-httplib (README, "Query API"). Routing, input checks,
// authentication and error shapes live here; the answers come from a QueryBackend (the
// service). Every error is JSON: {"error": "..."}; a handler that throws answers 500.
#ifndef STREAMREC_HTTP_HTTP_API_H_
#define STREAMREC_HTTP_HTTP_API_H_

#include <functional>
#include <memory>
#include <string>

#include "streamrec/config.h"
#include "streamrec/status.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace streamrec {

struct HttpReply {
  int status = 200;
  std::string body;  // JSON
};

// Called on the API's handler threads, concurrently: implementations must be thread-safe.
class QueryBackend {
 public:
  virtual ~QueryBackend() = default;
  // 200 with the customer, or 404 when no stored state has this id. `id` is already checked.
  virtual HttpReply Customer(const std::string& id) = 0;
  virtual HttpReply Segments() = 0;
  virtual HttpReply Model() = 0;
  // Asks for a re-fit (the caller is authenticated): 202 when requested.
  virtual HttpReply Refit() = 0;
  // Liveness (the poll loop turns) and readiness (partitions restored, model loaded); `why`
  // says what is missing.
  virtual bool Healthy(std::string* why) = 0;
  virtual bool Ready(std::string* why) = 0;
};

// {"error": message}
std::string JsonError(const std::string& message);

// A customer id the API accepts: 1..256 bytes, no control characters.
bool ValidCustomerId(const std::string& id);

// Installs the API on `server`: the routes and their handlers, the JSON error and exception
// handlers and the payload limit (everything HttpApi::Start sets up except threads, socket
// options and binding). The handlers keep what they need; `backend` must outlive `server`.
// Exposed for the fuzz target (fuzz/http_request_fuzz.cc), which feeds raw requests to it.
void ConfigureHttpServer(httplib::Server* server, QueryBackend* backend, std::string token,
                         std::function<void(const std::string& route, int status)> on_request);

class HttpApi {
 public:
  // Binds `config.listen` and serves on background threads until destroyed. `on_request`
  // (may be null) is told every answer: route pattern and status code (metrics).
  static StatusOr<std::unique_ptr<HttpApi>> Start(
      const HttpConfig& config, QueryBackend* backend,
      std::function<void(const std::string& route, int status)> on_request);
  virtual ~HttpApi() = default;
  // The bound port (the real one when config.listen asked for port 0).
  virtual int port() const = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_HTTP_HTTP_API_H_
