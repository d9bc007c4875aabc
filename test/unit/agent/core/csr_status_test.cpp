// A CertificateSigningRequest's status as the API server sends it
// (core/csr_status.h): each state, and bad input refused by name.

#include "agent/core/csr_status.h"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "agent/core/base64.h"

namespace tetherd {
namespace {

namespace json = boost::json;
using S = CsrStatus::State;

Result<CsrStatus> decode(const std::string& status) {
  return decode_csr_status(
      json::parse(R"({"metadata":{"name":"c"},"status":)" + status + "}").as_object());
}

const std::string kPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

TEST(CsrStatus, EachState) {
  auto none = decode_csr_status(json::parse(R"({"metadata":{"name":"c"}})").as_object());
  ASSERT_TRUE(none);
  EXPECT_EQ(none->state, S::kPending);
  EXPECT_EQ(decode("{}")->state, S::kPending);
  EXPECT_EQ(decode(R"({"conditions":[{"type":"Approved","status":"False"}]})")->state, S::kPending);
  EXPECT_EQ(decode(R"({"conditions":[{"type":"Approved","status":"True"}]})")->state, S::kApproved);
  EXPECT_EQ(decode(R"({"conditions":[{"type":"Approved"}]})")->state, S::kApproved)
      << "a condition without status counts, as before status was required";

  auto issued = decode(R"({"conditions":[{"type":"Approved","status":"True"}],"certificate":")" +
                       encode_base64(kPem) + "\"}");
  ASSERT_TRUE(issued) << issued.error().message;
  EXPECT_EQ(issued->state, S::kIssued);
  EXPECT_EQ(issued->certificate_pem, kPem);

  auto unapproved_cert = decode(R"({"certificate":")" + encode_base64(kPem) + "\"}");
  EXPECT_EQ(unapproved_cert->state, S::kPending) << "a certificate counts only once approved";

  auto denied = decode(
      R"({"conditions":[{"type":"Approved","status":"True"},)"
      R"({"type":"Denied","status":"True","reason":"NotOurNode","message":"who are you"}]})");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->state, S::kDenied);
  EXPECT_EQ(denied->reason, "NotOurNode");
  EXPECT_EQ(denied->message, "who are you");

  auto failed = decode(
      R"({"conditions":[{"type":"Approved","status":"True"},)"
      R"({"type":"Failed","status":"True","reason":"SignerValidationFailure","message":"usage"}]})");
  EXPECT_EQ(failed->state, S::kFailed);
  EXPECT_EQ(failed->reason, "SignerValidationFailure");

  auto long_message =
      decode(R"({"conditions":[{"type":"Denied","message":")" + std::string(5000, 'x') + "\"}]}");
  ASSERT_TRUE(long_message);
  EXPECT_EQ(long_message->message.size(), kMaxCsrText);
}

TEST(CsrStatus, BadInputIsRefusedByName) {
  auto field_of = [](const std::string& status) {
    auto r = decode(status);
    return r ? std::string("accepted") : r.error().message;
  };
  EXPECT_NE(field_of("3").find("status:"), std::string::npos);
  EXPECT_NE(field_of(R"({"conditions":{}})").find("status.conditions"), std::string::npos);
  EXPECT_NE(field_of(R"({"conditions":[3]})").find("status.conditions[0]"), std::string::npos);
  EXPECT_NE(field_of(R"({"conditions":[{"type":7}]})").find("status.conditions[0].type"),
            std::string::npos);
  std::string many = R"({"conditions":[)";
  for (int i = 0; i < 33; ++i)
    many += std::string(i ? "," : "") + R"({"type":"Approved"})";
  EXPECT_NE(field_of(many + "]}").find("more than 32"), std::string::npos);
  const std::string approved = R"({"conditions":[{"type":"Approved"}],"certificate":)";
  EXPECT_NE(field_of(approved + "5}").find("status.certificate"), std::string::npos);
  EXPECT_NE(field_of(approved + "\"not base64!\"}").find("status.certificate"), std::string::npos);
  EXPECT_NE(field_of(approved + "\"" + std::string(100'000, 'A') + "\"}").find("larger than"),
            std::string::npos);
}

}  // namespace
}  // namespace tetherd
