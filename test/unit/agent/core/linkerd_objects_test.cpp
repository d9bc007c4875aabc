#include "agent/core/linkerd_objects.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "agent/core/base64.h"
#include "agent/core/kube_time.h"

namespace tetherd {
namespace {
namespace json = boost::json;

json::object secret_with(json::object data) {
  return json::object{{"apiVersion", "v1"},
                      {"kind", "Secret"},
                      {"type", "kubernetes.io/tls"},
                      {"metadata",
                       {{"name", "linkerd-identity-issuer"},
                        {"namespace", "linkerd"},
                        {"resourceVersion", "42"},
                        {"labels", {{"linkerd.io/control-plane-component", "identity"}}}}},
                      {"data", std::move(data)}};
}

TEST(LinkerdObjects, DecodesBothSecretLayouts) {
  auto tls = decode_issuer_secret(secret_with({{"tls.crt", encode_base64("CERT")},
                                               {"tls.key", encode_base64("KEY")},
                                               {"ca.crt", encode_base64("ANCHOR")}}));
  ASSERT_TRUE(tls.has_value()) << tls.error().message;
  EXPECT_EQ(tls->layout, IssuerLayout::kTls);
  EXPECT_EQ(tls->cert_pem, "CERT");
  EXPECT_EQ(tls->key_pem, "KEY");
  EXPECT_EQ(tls->ca_pem, "ANCHOR");
  EXPECT_EQ(tls->resource_version, "42");

  auto legacy = decode_issuer_secret(
      secret_with({{"crt.pem", encode_base64("CERT")}, {"key.pem", encode_base64("KEY")}}));
  ASSERT_TRUE(legacy.has_value()) << legacy.error().message;
  EXPECT_EQ(legacy->layout, IssuerLayout::kLegacy);
  EXPECT_EQ(legacy->cert_pem, "CERT");
  EXPECT_EQ(legacy->ca_pem, "");
}

TEST(LinkerdObjects, RefusesABrokenSecretNamingWhatIsWrong) {
  struct Case {
    json::object secret;
    std::string message;
  };
  const std::vector<Case> cases = {
      {json::object{{"metadata", json::object{}}}, "Secret linkerd-identity-issuer has no data"},
      {secret_with({{"other", "eA=="}}),
       "Secret linkerd-identity-issuer holds neither tls.crt and tls.key nor crt.pem and key.pem"},
      {secret_with({{"tls.crt", encode_base64("C")}}),
       "Secret linkerd-identity-issuer has no tls.key"},
      {secret_with({{"crt.pem", encode_base64("C")}}),
       "Secret linkerd-identity-issuer has no key.pem"},
      {secret_with({{"tls.crt", "not base64!"}, {"tls.key", encode_base64("K")}}),
       "Secret linkerd-identity-issuer data[\"tls.crt\"] is not valid base64"},
      {secret_with({{"tls.crt", 7}, {"tls.key", encode_base64("K")}}),
       "Secret linkerd-identity-issuer data[\"tls.crt\"] is not a string"},
      {secret_with({{"tls.crt", std::string(400 << 10, 'A')}, {"tls.key", encode_base64("K")}}),
       "Secret linkerd-identity-issuer data[\"tls.crt\"] is larger than 256 KiB"},
  };
  for (const auto& c : cases) {
    auto r = decode_issuer_secret(c.secret);
    ASSERT_FALSE(r.has_value()) << json::serialize(c.secret).substr(0, 200);
    EXPECT_EQ(r.error().message, c.message);
  }
}

TEST(LinkerdObjects, DecodesTheTrustRoots) {
  auto ok = decode_trust_roots(json::object{{"data", {{"ca-bundle.crt", "PEM"}}}});
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, "PEM");
  auto missing = decode_trust_roots(json::object{{"data", json::object{}}});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message, "ConfigMap linkerd-identity-trust-roots has no ca-bundle.crt");
  auto wrong = decode_trust_roots(json::object{{"data", {{"ca-bundle.crt", 1}}}});
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().message,
            "ConfigMap linkerd-identity-trust-roots ca-bundle.crt is not a string");
}

TEST(LinkerdObjects, TheUpdateKeepsLayoutMetadataAndOtherKeys) {
  json::object tls = secret_with({{"tls.crt", encode_base64("OLD")},
                                  {"tls.key", encode_base64("OLDKEY")},
                                  {"extra", encode_base64("kept")}});
  json::object updated = issuer_secret_update(tls, IssuerLayout::kTls, "NEW", "NEWKEY", "ANCHOR");
  auto back = decode_issuer_secret(updated);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->cert_pem, "NEW");
  EXPECT_EQ(back->key_pem, "NEWKEY");
  EXPECT_EQ(back->ca_pem, "ANCHOR");
  EXPECT_EQ(back->resource_version, "42");  // the optimistic write's precondition
  EXPECT_EQ(updated.at("data").as_object().at("extra"), json::value(encode_base64("kept")));
  EXPECT_EQ(updated.at("metadata"), tls.at("metadata"));
  EXPECT_EQ(updated.at("type"), "kubernetes.io/tls");

  json::object legacy =
      secret_with({{"crt.pem", encode_base64("OLD")}, {"key.pem", encode_base64("OLDKEY")}});
  json::object updated_legacy =
      issuer_secret_update(legacy, IssuerLayout::kLegacy, "NEW", "NEWKEY", "ANCHOR");
  EXPECT_FALSE(updated_legacy.at("data").as_object().contains("tls.crt"));
  EXPECT_FALSE(updated_legacy.at("data").as_object().contains("ca.crt"));
  EXPECT_EQ(decode_issuer_secret(updated_legacy)->cert_pem, "NEW");
}

TEST(LinkerdObjects, RestartPatchIsKubectlRolloutRestarts) {
  const WallTime now = *parse_kube_time("2026-11-21T09:30:05.5Z");
  EXPECT_EQ(json::serialize(restart_patch(now)),
            R"({"spec":{"template":{"metadata":{"annotations":)"
            R"({"kubectl.kubernetes.io/restartedAt":"2026-11-21T09:30:05Z"}}}}})");
}

TEST(LinkerdObjects, IssuerUpdatedMustBeTheRightReasonAndNotOlderThanTheWrite) {
  const WallTime written = *parse_kube_time("2026-11-21T09:30:05.700Z");
  auto event = [](std::string reason, std::string last) {
    return json::parse(
               R"({"reason":")" + reason + R"(","lastTimestamp":)" + last +
               R"(,"eventTime":null,"metadata":{"creationTimestamp":"2026-11-21T08:00:00Z"}})")
        .as_object();
  };
  // Whole seconds: the same second counts.
  EXPECT_TRUE(issuer_updated_since(event("IssuerUpdated", R"("2026-11-21T09:30:05Z")"), written));
  EXPECT_TRUE(issuer_updated_since(event("IssuerUpdated", R"("2026-11-21T09:31:00Z")"), written));
  EXPECT_FALSE(issuer_updated_since(event("IssuerUpdated", R"("2026-11-21T09:30:04Z")"), written));
  EXPECT_FALSE(issuer_updated_since(event("Started", R"("2026-11-21T09:31:00Z")"), written));
  EXPECT_FALSE(issuer_updated_since(event("IssuerUpdated", "null"), written));
  // A recurring Event made long ago that happened again after the write.
  EXPECT_TRUE(issuer_updated_since(event("IssuerUpdated", R"("2026-11-21T09:40:00Z")"), written));
  // Made after the write, but last seen before it: the time it happened decides.
  EXPECT_FALSE(issuer_updated_since(
      json::parse(R"({"reason":"IssuerUpdated","lastTimestamp":"2026-11-21T09:00:00Z",)"
                  R"("metadata":{"creationTimestamp":"2026-11-21T10:00:00Z"}})")
          .as_object(),
      written));
  // Nothing but creationTimestamp: that is all there is to go by.
  EXPECT_TRUE(issuer_updated_since(
      json::parse(
          R"({"reason":"IssuerUpdated","metadata":{"creationTimestamp":"2026-11-21T10:00:00Z"}})")
          .as_object(),
      written));
  // events.k8s.io style: eventTime (MicroTime) and no lastTimestamp.
  EXPECT_TRUE(issuer_updated_since(
      json::parse(R"({"reason":"IssuerUpdated","eventTime":"2026-11-21T09:30:06.000001Z"})")
          .as_object(),
      written));
}

// The restart a write needs, already made: restart_patch()'s annotation,
// or `kubectl rollout restart`'s, after the write's second.
TEST(LinkerdObjects, ARestartSinceTheWriteIsFoundInTheDeployment) {
  const WallTime written = *parse_kube_time("2026-11-21T09:30:05.700Z");
  const WallTime now = written + std::chrono::minutes(5);
  auto deployment = [](const json::object& patch) {
    json::object d = json::parse(R"({"metadata":{"name":"linkerd-identity"},)"
                                 R"("spec":{"replicas":1,"template":{"metadata":{}}}})")
                         .as_object();
    d["spec"].as_object()["template"] = patch.at("spec").at("template");
    return d;
  };
  // The write's own second: it may have come before the write.
  EXPECT_FALSE(restarted_since(deployment(restart_patch(written)), written, now));
  EXPECT_TRUE(
      restarted_since(deployment(restart_patch(written + std::chrono::seconds(1))), written, now));
  EXPECT_TRUE(
      restarted_since(deployment(restart_patch(written + std::chrono::minutes(2))), written, now));
  EXPECT_FALSE(
      restarted_since(deployment(restart_patch(written - std::chrono::seconds(1))), written, now));
  EXPECT_FALSE(restarted_since(json::parse(R"({"spec":{"template":{"metadata":{}}}})").as_object(),
                               written, now));
  EXPECT_FALSE(
      restarted_since(json::parse(R"({"spec":{"template":{"metadata":{"annotations":)"
                                  R"({"kubectl.kubernetes.io/restartedAt":"yesterday"}}}}})")
                          .as_object(),
                      written, now));
  EXPECT_FALSE(restarted_since(json::parse(R"({"spec":"x"})").as_object(), written, now));
  // Stamped by a clock that was ahead: after now, so not known to be since.
  EXPECT_FALSE(
      restarted_since(deployment(restart_patch(now + std::chrono::hours(24 * 50))), written, now));
}

}  // namespace
}  // namespace tetherd
