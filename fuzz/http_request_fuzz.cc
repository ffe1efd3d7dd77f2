// libFuzzer target: raw bytes as the HTTP/1.1 request stream of one connection, through
// cpp-httplib's own request parser (Server::process_request, reached from a subclass) into the
// query API's routes, handlers and error handlers (ConfigureHttpServer, exactly as HttpApi::Start
// installs them) with a fake backend. Up to 8 pipelined requests per input. No socket: the
// connection is an in-memory httplib::Stream.
//
// Checked besides sanitizers: no answer is a 500 (the fake backend never fails, so a 500 is an
// exception escaping our handlers), and every JSON body parses as a JSON object.
// Seeds: fuzz/corpus/http_request/ (one request per route, auth headers, malformed requests).
#include <httplib.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/http_api.h"
#include "json_writer.h"

namespace {

using streamrec::fuzz::Check;

class FakeBackend : public streamrec::QueryBackend {
 public:
  streamrec::HttpReply Customer(const std::string& id) override {
    if (id != "c1") return {404, streamrec::JsonError("unknown customer '" + id + "'")};
    streamrec::JsonWriter w;
    w.BeginObject().Key("customer_id").String(id).EndObject();
    return {200, w.Release()};
  }
  streamrec::HttpReply Segments() override { return {200, R"({"segments":[]})"}; }
  streamrec::HttpReply Model() override { return {200, R"({"version":3})"}; }
  streamrec::HttpReply Refit() override { return {202, R"({"status":"re-fit requested"})"}; }
  bool Healthy(std::string* why) override {
    healthy_ = !healthy_;
    if (!healthy_) *why = "stalled \"poll\" loop";
    return healthy_;
  }
  bool Ready(std::string* why) override {
    ready_ = !ready_;
    if (!ready_) *why = "waiting for the consumer group assignment";
    return ready_;
  }

 private:
  bool healthy_ = false;
  bool ready_ = false;
};

// One connection: reads the fuzz input, collects what the server writes.
class MemoryStream : public httplib::Stream {
 public:
  explicit MemoryStream(std::string_view in) : in_(in) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size());
    std::copy(in_.data(), in_.data() + n, ptr);
    in_.remove_prefix(n);
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return 0; }  // below FD_SETSIZE, never used for I/O

  bool exhausted() const { return in_.empty(); }
  std::string TakeOutput() { return std::move(out_); }

 private:
  std::string_view in_;
  std::string out_;
};

// process_request is protected: this is how to reach the parser without a socket.
class FuzzServer : public httplib::Server {
 public:
  bool ProcessOne(httplib::Stream& stream, bool* closed) {
    return process_request(stream, /*close_connection=*/false, *closed, nullptr);
  }
};

FakeBackend* backend = nullptr;

FuzzServer* MakeServer() {
  backend = new FakeBackend();
  auto* server = new FuzzServer();
  streamrec::ConfigureHttpServer(server, backend, "fuzz-token-0123456789",
                                 [](const std::string& route, int status) {
                                   Check(!route.empty() && status >= 100 && status < 600,
                                         "metrics callback", route);
                                 });
  return server;
}

std::string_view Header(std::string_view head, std::string_view name) {
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    std::string_view line = head.substr(pos, head.find("\r\n", pos) - pos);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      std::string_view value = line.substr(name.size() + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      return value;
    }
  }
  return {};
}

void CheckResponse(const std::string& out) {
  if (out.empty()) return;
  Check(out.rfind("HTTP/1.1 ", 0) == 0 && out.size() >= 12, "status line", out.substr(0, 80));
  const int status = std::stoi(out.substr(9, 3));
  Check(status != 500, "500 answer (an exception in a handler?)", out);
  const size_t end = out.find("\r\n\r\n");
  Check(end != std::string::npos, "no end of headers", out);
  const std::string_view head(out.data(), end);
  const std::string_view body(out.data() + end + 4, out.size() - end - 4);
  if (body.empty()) return;
  Check(status != 206 && Header(head, "Content-Range").empty(), "a slice of a JSON answer", out);
  if (Header(head, "Content-Type") != "application/json") return;
  if (!Header(head, "Content-Encoding").empty()) return;  // Accept-Encoding: gzip, br
  static simdjson::dom::parser parser;
  simdjson::dom::element root;
  auto error = parser.parse(body.data(), body.size(), true).get(root);
  Check(!error, "JSON body does not parse",
        std::string(simdjson::error_message(error)) + "\n" + out.substr(0, 600));
  Check(root.is_object(), "JSON body is not an object", out.substr(0, 600));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FuzzServer* server = MakeServer();
  MemoryStream stream(std::string_view(reinterpret_cast<const char*>(data), size));
  for (int i = 0; i < 8 && !stream.exhausted(); ++i) {
    bool closed = false;
    const bool keep_going = server->ProcessOne(stream, &closed);
    CheckResponse(stream.TakeOutput());
    if (!keep_going || closed) break;
  }
  return 0;
}
