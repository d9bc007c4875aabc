#include "agent/kube/api_error.h"

#include <string>

#include <gtest/gtest.h>

namespace tetherd::kube {
namespace {

using std::chrono::seconds;

TEST(ApiErrorTest, DecodesAConflictStatus) {
  const auto e = error_from_response(
      409,
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
      R"("message":"Operation cannot be fulfilled on leases.coordination.k8s.io \"tetherd-a\": )"
      R"(the object has been modified; please apply your changes to the latest version and try again",)"
      R"("reason":"Conflict","details":{"name":"tetherd-a","group":"coordination.k8s.io","kind":"leases"},"code":409})",
      "");
  EXPECT_EQ(e.kind, ErrorKind::kHttp);
  EXPECT_TRUE(e.conflict());
  EXPECT_EQ(e.reason, "Conflict");
  EXPECT_FALSE(e.retryable());
  EXPECT_EQ(describe(e),
            "HTTP 409 Conflict: Operation cannot be fulfilled on leases.coordination.k8s.io "
            "\"tetherd-a\": the object has been modified; please apply your changes to the latest "
            "version and try again");
}

TEST(ApiErrorTest, TooManyRequestsHonoursRetryAfterHeaderOverBody) {
  const auto e = error_from_response(
      429,
      R"({"kind":"Status","status":"Failure","message":"too many requests","reason":"TooManyRequests",)"
      R"("details":{"retryAfterSeconds":3},"code":429})",
      "7");
  EXPECT_TRUE(e.retryable());
  ASSERT_TRUE(e.retry_after.has_value());
  EXPECT_EQ(*e.retry_after, seconds(7));
}

TEST(ApiErrorTest, RetryAfterFromStatusDetailsWhenNoHeader) {
  const auto e = error_from_response(
      503, R"({"kind":"Status","reason":"ServiceUnavailable","details":{"retryAfterSeconds":2}})",
      "");
  ASSERT_TRUE(e.retry_after.has_value());
  EXPECT_EQ(*e.retry_after, seconds(2));
  EXPECT_EQ(e.code, 503u);  // the status line, though the body has no code
}

TEST(ApiErrorTest, ANonKubernetesBodyIsSummarisedPrintably) {
  const std::string html = "<html>\x01\x02 bad gateway" + std::string(1000, 'x');
  const auto e = error_from_response(502, html, "");
  EXPECT_EQ(e.code, 502u);
  EXPECT_TRUE(e.retryable());
  EXPECT_NE(e.message.find("not a Kubernetes Status: <html>   bad gateway"), std::string::npos);
  EXPECT_LT(e.message.size(), 260u);
}

TEST(ApiErrorTest, ForbiddenAndNotFoundAreNotRetryable) {
  EXPECT_FALSE(error_from_response(403, "{}", "").retryable());
  const auto nf =
      error_from_response(404, R"({"kind":"Status","reason":"NotFound","code":404})", "");
  EXPECT_TRUE(nf.not_found());
  EXPECT_FALSE(nf.retryable());
}

TEST(ApiErrorTest, ExpiredIsGoneByReasonWhenTheStatusHasNoCode) {
  auto e = error_from_status(boost::json::object{{"kind", "Status"}, {"reason", "Expired"}});
  EXPECT_TRUE(e.gone());
  EXPECT_TRUE(error_from_status(boost::json::object{{"code", 410}}).gone());
  EXPECT_FALSE(error_from_status(boost::json::object{{"code", 500}}).gone());
}

TEST(ApiErrorTest, RetryAfterIsBoundedAndOnlyFor429And5xx) {
  const auto huge = error_from_response(
      503, R"({"kind":"Status","details":{"retryAfterSeconds":99999999999999}})", "");
  ASSERT_TRUE(huge.retry_after.has_value());
  EXPECT_EQ(*huge.retry_after, std::chrono::hours(24));
  EXPECT_EQ(parse_retry_after("4294967295"), std::chrono::hours(24));
  EXPECT_FALSE(error_from_response(403, "", "5").retryable())
      << "a Retry-After does not make a 403 worth repeating";
}

TEST(ApiErrorTest, ParsesRetryAfterSecondsOnly) {
  EXPECT_EQ(parse_retry_after("5"), seconds(5));
  EXPECT_EQ(parse_retry_after(" 12 "), seconds(12));
  EXPECT_EQ(parse_retry_after("0"), seconds(0));
  EXPECT_FALSE(parse_retry_after(""));
  EXPECT_FALSE(parse_retry_after("-1"));
  EXPECT_FALSE(parse_retry_after("1.5"));
  EXPECT_FALSE(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"));
  EXPECT_FALSE(parse_retry_after("99999999999999999999"));
}

TEST(ApiErrorTest, TransportErrorsAreRetryableInvalidRequestsAreNot) {
  EXPECT_TRUE((ApiError{ErrorKind::kTimeout, 0, {}, "x", {}}).retryable());
  EXPECT_TRUE((ApiError{ErrorKind::kTls, 0, {}, "x", {}}).retryable());
  EXPECT_FALSE((ApiError{ErrorKind::kInvalid, 0, {}, "x", {}}).retryable());
}

// Each question about an error, for every kind and the codes that differ:
// the one table the Reflector, the Lease, the Tether's followers and the
// issuer's retry and lost-write memory read.
TEST(ApiErrorTest, EachQuestionHasOneAnswerPerKindAndCode) {
  struct Row {
    ErrorKind kind;
    unsigned code;
    bool retryable, reached, unreachable, unanswered, may_have_taken;
  };
  // clang-format off
  const Row rows[] = {
      // kind               code  retryable reached unreachable unanswered may_have_taken
      {ErrorKind::kTransport,   0,  true,      false,  true,       true,      true},
      {ErrorKind::kTimeout,     0,  true,      false,  true,       true,      true},
      {ErrorKind::kTls,         0,  true,      false,  true,       false,     false},
      {ErrorKind::kDecode,      0,  true,      true,   false,      false,     true},
      {ErrorKind::kTooLarge,    0,  true,      true,   false,      false,     true},
      {ErrorKind::kInvalid,     0,  false,     false,  false,      false,     false},
      {ErrorKind::kHttp,        0,  false,     true,   false,      false,     false},  // an ERROR event without a code
      {ErrorKind::kHttp,      400,  false,     true,   false,      false,     false},
      {ErrorKind::kHttp,      403,  false,     true,   false,      false,     false},
      {ErrorKind::kHttp,      404,  false,     true,   false,      false,     false},
      {ErrorKind::kHttp,      409,  false,     true,   false,      false,     false},
      {ErrorKind::kHttp,      410,  false,     true,   false,      false,     false},
      {ErrorKind::kHttp,      429,  true,      true,   false,      true,      false},
      {ErrorKind::kHttp,      500,  true,      true,   false,      true,      true},
      {ErrorKind::kHttp,      503,  true,      true,   false,      true,      true},
      {ErrorKind::kHttp,      504,  true,      true,   false,      true,      true},
  };
  // clang-format on
  for (const Row& row : rows) {
    const ApiError e{row.kind, row.code, {}, "x", {}};
    SCOPED_TRACE(std::string(to_string(row.kind)) + " " + std::to_string(row.code));
    EXPECT_EQ(e.retryable(), row.retryable);
    EXPECT_EQ(e.reached(), row.reached);
    EXPECT_EQ(e.unreachable(), row.unreachable);
    EXPECT_EQ(e.unanswered(), row.unanswered);
    EXPECT_EQ(e.may_have_taken(), row.may_have_taken);
    EXPECT_FALSE(e.reached() && e.unreachable()) << "reached and not reached at once";
  }
}

}  // namespace
}  // namespace tetherd::kube
