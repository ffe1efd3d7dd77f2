// The query API's routing, input checks, authentication and error shapes, against a fake
// backend on a free loopback port.
#include "http/http_api.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "testutil/test_util.h"

namespace streamrec {
namespace {

class FakeBackend : public QueryBackend {
 public:
  HttpReply Customer(const std::string& id) override {
    {
      std::lock_guard<std::mutex> lock(seen_mu);
      seen.push_back(id);
    }
    if (id == "boom") throw std::runtime_error("disk on fire");
    if (id != "c1") return {404, JsonError("unknown customer '" + id + "'")};
    return {200, R"({"customer_id":"c1"})"};
  }
  HttpReply Segments() override { return {200, R"({"segments":[]})"}; }
  HttpReply Model() override { return {200, R"({"version":3})"}; }
  HttpReply Refit() override {
    ++refits;
    return {202, R"({"status":"re-fit requested"})"};
  }
  bool Healthy(std::string* why) override {
    if (!healthy) *why = "stalled";
    return healthy.load();
  }
  bool Ready(std::string* why) override {
    if (!ready) *why = "waiting for the consumer group assignment";
    return ready.load();
  }
  std::mutex seen_mu;
  std::vector<std::string> seen;  // ids that reached Customer()
  std::atomic<int> refits{0};
  std::atomic<bool> healthy{true};
  std::atomic<bool> ready{false};
};

class HttpApiTest : public ::testing::Test {
 protected:
  void Start(const std::string& token) {
    HttpConfig config;
    config.listen = "127.0.0.1:0";
    config.refit_token = token;
    auto api = HttpApi::Start(config, &backend_, [this](const std::string& route, int status) {
      std::lock_guard<std::mutex> lock(mu_);
      ++counted_[route + " " + std::to_string(status)];
    });
    ASSERT_TRUE(api.ok()) << api.status().ToString();
    api_ = std::move(api).value();
    ASSERT_GT(api_->port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", api_->port());
    client_->set_connection_timeout(5);
    client_->set_read_timeout(5);
  }

  // status, after checking every answer is JSON.
  int Get(const std::string& path, std::string* body = nullptr) {
    auto res = client_->Get(path.c_str());
    EXPECT_TRUE(res) << path;
    if (!res) return -1;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json") << path;
    EXPECT_EQ(res->body.front(), '{') << path << ": " << res->body;
    if (body != nullptr) *body = res->body;
    return res->status;
  }

  int PostRefit(const httplib::Headers& headers, std::string* body = nullptr,
                std::string* authenticate = nullptr) {
    auto res = client_->Post("/v1/refit", headers, "", "application/json");
    EXPECT_TRUE(res);
    if (!res) return -1;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    if (body != nullptr) *body = res->body;
    if (authenticate != nullptr) *authenticate = res->get_header_value("WWW-Authenticate");
    return res->status;
  }

  int Counted(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return counted_[key];
  }

  FakeBackend backend_;
  std::unique_ptr<HttpApi> api_;
  std::unique_ptr<httplib::Client> client_;
  std::mutex mu_;
  std::map<std::string, int> counted_;
};

TEST_F(HttpApiTest, CustomersAreFoundOrAnswered404And400) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  std::string body;
  EXPECT_EQ(Get("/v1/customers/c1", &body), 200);
  EXPECT_EQ(body, R"({"customer_id":"c1"})");
  EXPECT_EQ(Get("/v1/customers/c2", &body), 404);
  EXPECT_NE(body.find(R"("error":"unknown customer 'c2'")"), std::string::npos) << body;
  // Bad ids never reach the backend.
  EXPECT_EQ(Get("/v1/customers/", &body), 400);
  EXPECT_NE(body.find("bad customer id"), std::string::npos) << body;
  EXPECT_EQ(Get("/v1/customers/a%01b", &body), 400);
  EXPECT_EQ(Get("/v1/customers/a/b", &body), 400);
  EXPECT_EQ(Get("/v1/customers/" + std::string(257, 'x'), &body), 400);
  EXPECT_EQ(Get("/v1/customers/" + std::string(256, 'x'), &body), 404);
  EXPECT_EQ(Counted("/v1/customers/{id} 200"), 1);
  EXPECT_EQ(Counted("/v1/customers/{id} 404"), 2);
  EXPECT_EQ(Counted("/v1/customers/{id} 400"), 4);
}

// Path traversal and oversized ids: an id is a key in the store, never a path, and nothing
// that decodes to a '/', a control character or more than 256 bytes reaches the backend; a URI
// beyond the server's limit is refused before routing. The server answers JSON and goes on.
TEST_F(HttpApiTest, PathTraversalAndOversizedIdsNeverReachTheBackend) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  std::string body;
  for (const std::string& path : std::vector<std::string>{
           "/v1/customers/../../etc/passwd", "/v1/customers/..%2F..%2Fetc%2Fpasswd",
        "/v1/customers/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/v1/customers/%2E%2E/%2E%2E/etc/passwd",
        "/v1/customers/a%2fb", "/v1/customers/c1%00", "/v1/customers/c1%1b%5b2J", "/v1/customers/c1%7f",
        "/v1/customers/" + std::string(257, 'x'),
        "/v1/customers/" + std::string(4000, '7')}) {
    EXPECT_EQ(Get(path, &body), 400) << path;
    EXPECT_NE(body.find("bad customer id"), std::string::npos) << path << ": " << body;
  }
  // A line break in the id matches no route (404, the path quoted in a JSON string); nothing of
  // it becomes a header.
  auto injected = client_->Get("/v1/customers/c1%0d%0aX-Injected:%201");
  ASSERT_TRUE(injected);
  EXPECT_EQ(injected->status, 404);
  EXPECT_FALSE(injected->has_header("X-Injected"));
  EXPECT_EQ(injected->body.front(), '{');
  // Traversal out of /v1/customers/ reaches no other route either.
  EXPECT_EQ(Get("/v1/customers/..%2F..%2Fv1%2Fmodel", &body), 400);
  EXPECT_EQ(Get("/v1/x/..%2Fmodel", &body), 404);
  EXPECT_EQ(Get("/v1/../v1/model", &body), 404) << body;
  // An id of dots is just an id (the store has no such key), not a directory.
  EXPECT_EQ(Get("/v1/customers/..", &body), 404);
  EXPECT_EQ(Get("/v1/customers/%2e%2e", &body), 404);
  // Beyond the server's URI limit (8 KiB): refused whole, before any handler.
  auto huge = client_->Get(("/v1/customers/" + std::string(20000, '7')).c_str());
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 414);
  {
    std::lock_guard<std::mutex> lock(backend_.seen_mu);
    EXPECT_EQ(backend_.seen, (std::vector<std::string>{"..", ".."}));
  }
  EXPECT_EQ(Get("/v1/customers/c1", &body), 200) << "the server goes on";
}

TEST_F(HttpApiTest, SegmentsModelAndUnknownPaths) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  std::string body;
  EXPECT_EQ(Get("/v1/segments", &body), 200);
  EXPECT_EQ(body, R"({"segments":[]})");
  EXPECT_EQ(Get("/v1/model", &body), 200);
  EXPECT_EQ(body, R"({"version":3})");
  EXPECT_EQ(Get("/v2/anything", &body), 404);
  EXPECT_NE(body.find("no such endpoint: GET /v2/anything"), std::string::npos) << body;
  EXPECT_EQ(Get("/v1/refit", &body), 405) << "refit is POST only";
  auto res = client_->Post("/v1/segments", "", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  EXPECT_EQ(Counted("other 404"), 1);
}

TEST_F(HttpApiTest, RefitIsRefusedWithoutAConfiguredToken) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  std::string body;
  EXPECT_EQ(PostRefit({{"Authorization", "Bearer anything"}}, &body), 403);
  EXPECT_NE(body.find("http.refit_token"), std::string::npos) << body;
  EXPECT_EQ(backend_.refits.load(), 0);
}

TEST_F(HttpApiTest, RefitNeedsTheBearerToken) {
  ASSERT_NO_FATAL_FAILURE(Start("s3cret-token"));
  std::string body, authenticate;
  EXPECT_EQ(PostRefit({}, &body, &authenticate), 401);
  EXPECT_NE(body.find("missing bearer token"), std::string::npos) << body;
  EXPECT_NE(authenticate.find("Bearer"), std::string::npos);
  EXPECT_EQ(PostRefit({{"Authorization", "Bearer s3cret-tokeN"}}, &body), 401);
  EXPECT_NE(body.find("bad bearer token"), std::string::npos) << body;
  EXPECT_EQ(PostRefit({{"Authorization", "Bearer s3cret"}}, &body), 401) << "a prefix is not it";
  EXPECT_EQ(PostRefit({{"Authorization", "Basic s3cret-token"}}, &body), 401);
  EXPECT_EQ(body.find("s3cret"), std::string::npos) << "the token is never echoed";
  EXPECT_EQ(backend_.refits.load(), 0);
  EXPECT_EQ(PostRefit({{"Authorization", "Bearer s3cret-token"}}, &body), 202);
  EXPECT_EQ(body, R"({"status":"re-fit requested"})");
  EXPECT_EQ(backend_.refits.load(), 1);
}

TEST_F(HttpApiTest, HealthAndReadiness) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  std::string body;
  EXPECT_EQ(Get("/healthz", &body), 200);
  EXPECT_EQ(Get("/readyz", &body), 503);
  EXPECT_NE(body.find("waiting for the consumer group assignment"), std::string::npos) << body;
  backend_.ready = true;
  EXPECT_EQ(Get("/readyz", &body), 200);
  backend_.healthy = false;
  EXPECT_EQ(Get("/healthz", &body), 503);
  EXPECT_NE(body.find("stalled"), std::string::npos) << body;
}

TEST_F(HttpApiTest, AThrowingHandlerAnswers500AndTheServerGoesOn) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  std::string body;
  EXPECT_EQ(Get("/v1/customers/boom", &body), 500);
  EXPECT_NE(body.find("disk on fire"), std::string::npos) << body;
  EXPECT_EQ(Get("/v1/customers/c1", &body), 200);
}

TEST_F(HttpApiTest, APortInUseIsAnErrorNamingTheKey) {
  ASSERT_NO_FATAL_FAILURE(Start(""));
  HttpConfig config;
  config.listen = "127.0.0.1:" + std::to_string(api_->port());
  auto second = HttpApi::Start(config, &backend_, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("http.listen '127.0.0.1:"), std::string::npos)
      << second.status().ToString();
}

// Found by fuzz/http_request_fuzz.cc (seed fuzz/corpus/http_request/regress_range.http):
// httplib cut an answer to the Range header's bytes and still said 200, so a client read
// '{"ve' as the whole document. The API ignores Range (RFC 9110 allows it).
TEST_F(HttpApiTest, ARangeHeaderIsIgnoredAnswersAreSentWhole) {
  Start("");
  auto res = client_->Get("/v1/model", {{"Range", "bytes=0-3"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, R"({"version":3})");
  EXPECT_FALSE(res->has_header("Content-Range"));
  auto missing = client_->Get("/nope", {{"Range", "bytes=2-5,7-9"}});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(missing->body.rfind(R"({"error":"no such endpoint: GET /nope)", 0), 0u) << missing->body;
}

// Found by fuzz/http_request_fuzz.cc (seed regress_invalid_utf8.http): a path with byte 0xFF
// was quoted as is in the error, which made the body invalid JSON (JSON text is UTF-8).
TEST_F(HttpApiTest, ErrorBodiesStayUtf8ForInvalidBytesInThePath) {
  Start("");
  std::string body;
  EXPECT_EQ(Get("/v1/customers/%FFx", &body), 404);
  EXPECT_EQ(body, "{\"error\":\"unknown customer '\xEF\xBF\xBDx'\"}");
  EXPECT_EQ(Get("/%C3%A9t%C3", &body), 404);  // valid e-acute kept, a truncated sequence replaced
  EXPECT_EQ(body.rfind("{\"error\":\"no such endpoint: GET /\xC3\xA9t\xEF\xBF\xBD (", 0), 0u)
      << body;
}

TEST(HttpApiValidationTest, JsonErrorWritesInvalidUtf8AsReplacementCharacters) {
  EXPECT_EQ(JsonError("a\xC3\xA9\xF0\x9F\x98\x80"), "{\"error\":\"a\xC3\xA9\xF0\x9F\x98\x80\"}");
  // Stray continuation byte, overlong '/', UTF-16 surrogate, above U+10FFFF, truncated.
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(JsonError("\x80"), "{\"error\":\"" + r + "\"}");
  EXPECT_EQ(JsonError("\xC0\xAF"), "{\"error\":\"" + r + r + "\"}");
  EXPECT_EQ(JsonError("\xED\xA0\x80"), "{\"error\":\"" + r + r + r + "\"}");
  EXPECT_EQ(JsonError("\xF4\x90\x80\x80"), "{\"error\":\"" + r + r + r + r + "\"}");
  EXPECT_EQ(JsonError("x\xE2\x82"), "{\"error\":\"x" + r + r + "\"}");
}

TEST(HttpApiValidationTest, CustomerIds) {
  EXPECT_TRUE(ValidCustomerId("6281234567890"));
  EXPECT_TRUE(ValidCustomerId("ü-ñ 12"));
  EXPECT_FALSE(ValidCustomerId(""));
  EXPECT_FALSE(ValidCustomerId("a\nb"));
  EXPECT_FALSE(ValidCustomerId("a/b"));
  EXPECT_FALSE(ValidCustomerId(std::string(257, 'a')));
}

}  // namespace
}  // namespace streamrec
