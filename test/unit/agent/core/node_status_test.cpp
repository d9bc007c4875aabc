#include "agent/core/node_status.h"

#include <regex>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace tetherd {
namespace {

namespace json = boost::json;
namespace ct = condition_type;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using S = ConditionStatus;

// 2026-11-21T09:30:05Z
const WallTime kT0 = WallTime(seconds(1795253405));

// The CRD's pattern for a reason.
bool crd_reason(const std::string& reason) {
  static const std::regex pattern("^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$");
  return std::regex_match(reason, pattern);
}

std::vector<std::string> types(const Conditions& c) {
  std::vector<std::string> out;
  for (const auto& condition : c.all())
    out.push_back(condition.type);
  return out;
}

TEST(NodeStatusTest, StatusStrings) {
  EXPECT_EQ(to_string(S::kTrue), "True");
  EXPECT_EQ(to_string(S::kFalse), "False");
  EXPECT_EQ(to_string(S::kUnknown), "Unknown");
}

TEST(ConditionsTest, LastTransitionMovesOnlyWhenTheStatusChanges) {
  struct Step {
    S status;
    std::string_view reason;
    std::string_view message;
    bool changed;
    int transition_at;  // seconds after kT0
  };
  const std::vector<Step> steps = {
      {S::kTrue, "Applied", "12 sources", true, 0},
      {S::kTrue, "Applied", "12 sources", false, 0},        // nothing new
      {S::kTrue, "Applied", "13 sources", true, 0},         // a message is not a transition
      {S::kTrue, "AppliedAgain", "13 sources", true, 0},    // nor is a reason
      {S::kFalse, "InvalidSources", "bad CIDR", true, 40},  // a status is
      {S::kFalse, "InvalidSources", "bad CIDR", false, 40},
      {S::kUnknown, "NotChecked", "", true, 60},
      {S::kTrue, "Applied", "13 sources", true, 70},
  };
  Conditions conditions;
  const std::vector<int> at = {0, 10, 20, 30, 40, 50, 60, 70};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE(i);
    const Step& s = steps[i];
    EXPECT_EQ(
        conditions.set(ct::kFirewallInSync, s.status, s.reason, s.message, kT0 + seconds(at[i])),
        s.changed);
    const Condition* c = conditions.find(ct::kFirewallInSync);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->status, s.status);
    EXPECT_EQ(c->reason, s.reason);
    EXPECT_EQ(c->message, s.message);
    EXPECT_EQ(c->last_transition, kT0 + seconds(s.transition_at));
  }
}

TEST(ConditionsTest, ReadyIsDerivedFromTheOthers) {
  struct Case {
    std::vector<std::pair<std::string_view, S>> set;
    S ready;
    std::string_view reason;
    std::string_view message;
  };
  const std::vector<Case> cases = {
      {{{ct::kConnected, S::kTrue}}, S::kTrue, "AllConditionsTrue", "every condition is True"},
      {{{ct::kConnected, S::kTrue}, {ct::kFirewallInSync, S::kFalse}},
       S::kFalse,
       "FirewallNotInSync",
       "FirewallInSync is False (Why): what"},
      // The first False in the listed order, not in the order of set().
      {{{ct::kClockSynchronized, S::kFalse}, {ct::kConnected, S::kFalse}},
       S::kFalse,
       "NotConnected",
       "Connected is False (Why): what"},
      // False wins over Unknown.
      {{{ct::kConnected, S::kUnknown}, {ct::kK3sReady, S::kFalse}},
       S::kFalse,
       "K3sNotReady",
       "K3sReady is False (Why): what"},
      {{{ct::kConnected, S::kTrue}, {ct::kLinkerdGatewayReady, S::kUnknown}},
       S::kUnknown,
       "LinkerdGatewayReadyUnknown",
       "LinkerdGatewayReady is Unknown (Why): what"},
      {{{ct::kCertificatesValid, S::kFalse}},
       S::kFalse,
       "CertificatesNotValid",
       "CertificatesValid is False (Why): what"},
  };
  for (const auto& c : cases) {
    Conditions conditions;
    for (const auto& [type, status] : c.set)
      conditions.set(type, status, "Why", "what", kT0);
    const Condition* ready = conditions.find(ct::kReady);
    ASSERT_NE(ready, nullptr);
    EXPECT_EQ(ready->status, c.ready);
    EXPECT_EQ(ready->reason, c.reason);
    EXPECT_EQ(ready->message, c.message);
    EXPECT_TRUE(crd_reason(ready->reason));
  }
}

TEST(ConditionsTest, ReadyTransitionsOnItsOwnStatus) {
  Conditions conditions;
  conditions.set(ct::kConnected, S::kTrue, "Watching", "", kT0);
  conditions.set(ct::kFirewallInSync, S::kTrue, "Applied", "", kT0 + seconds(1));
  EXPECT_EQ(conditions.find(ct::kReady)->last_transition, kT0);

  // Still False, for another reason: Ready's message changes, not its time.
  conditions.set(ct::kFirewallInSync, S::kFalse, "InvalidSources", "a", kT0 + seconds(10));
  conditions.set(ct::kConnected, S::kFalse, "Unreachable", "b", kT0 + seconds(20));
  const Condition* ready = conditions.find(ct::kReady);
  EXPECT_EQ(ready->status, S::kFalse);
  EXPECT_EQ(ready->reason, "NotConnected");
  EXPECT_EQ(ready->last_transition, kT0 + seconds(10));

  conditions.set(ct::kConnected, S::kTrue, "Watching", "", kT0 + seconds(30));
  conditions.set(ct::kFirewallInSync, S::kTrue, "Applied", "", kT0 + seconds(40));
  EXPECT_EQ(conditions.find(ct::kReady)->status, S::kTrue);
  EXPECT_EQ(conditions.find(ct::kReady)->last_transition, kT0 + seconds(40));
}

TEST(ConditionsTest, KeepsTheDocumentedOrderAndRefusesReadyAndUnknownTypes) {
  Conditions conditions;
  EXPECT_EQ(conditions.find(ct::kReady), nullptr);
  EXPECT_FALSE(conditions.set(ct::kReady, S::kTrue, "Forced", "", kT0));
  EXPECT_FALSE(conditions.set("DiskPressure", S::kTrue, "Fine", "", kT0));
  EXPECT_TRUE(conditions.all().empty());

  for (auto type : {ct::kMeshHealthy, ct::kClockSynchronized, ct::kK3sReady, ct::kConnected,
                    ct::kCertificatesValid, ct::kLinkerdGatewayReady, ct::kFirewallInSync,
                    ct::kTunnelConnected, ct::kCredentialsValid})
    EXPECT_TRUE(conditions.set(type, S::kTrue, "Fine", "", kT0));
  EXPECT_EQ(types(conditions), std::vector<std::string>(ct::kAll.begin(), ct::kAll.end()));
}

// A section removed by a reload takes its condition with it, and Ready
// follows what is left.
TEST(ConditionsTest, EraseDropsOneAndReadyFollows) {
  Conditions conditions;
  conditions.set(ct::kConnected, S::kTrue, "Watching", "", kT0);
  conditions.set(ct::kK3sReady, S::kFalse, "KubeconfigUnusable", "no file", kT0);
  EXPECT_EQ(conditions.find(ct::kReady)->status, S::kFalse);
  EXPECT_TRUE(conditions.erase(ct::kK3sReady, kT0));
  EXPECT_EQ(conditions.find(ct::kK3sReady), nullptr);
  EXPECT_EQ(conditions.find(ct::kReady)->status, S::kTrue);
  EXPECT_FALSE(conditions.erase(ct::kK3sReady, kT0)) << "not there any more";
  EXPECT_FALSE(conditions.erase(ct::kReady, kT0)) << "derived, never erased";
  EXPECT_TRUE(conditions.erase(ct::kConnected, kT0));
  EXPECT_TRUE(conditions.all().empty()) << "Ready alone is derived from nothing";
}

TEST(ConditionsTest, ReasonsAreCleanedToTheCrdPattern) {
  const std::vector<std::pair<std::string_view, std::string_view>> cases = {
      {"Applied", "Applied"},
      {"", ""},
      {"not in sync", "notinsync"},
      {"42Bad:Reason,", "Bad:Reason"},
      {"_:,", ""},
      {"HTTP 409 Conflict", "HTTP409Conflict"},
      {"Été", "t"},
      {"a:b_c,d:", "a:b_c,d"},
  };
  for (const auto& [in, out] : cases) {
    SCOPED_TRACE(in);
    EXPECT_EQ(condition_reason(in), out);
    EXPECT_TRUE(crd_reason(condition_reason(in)));
  }
  EXPECT_EQ(condition_reason(std::string(1000, 'R')).size(), kMaxConditionReasonBytes);

  Conditions conditions;
  conditions.set(ct::kK3sReady, S::kFalse, "api down!", "", kT0);
  EXPECT_EQ(conditions.find(ct::kK3sReady)->reason, "apidown");
}

TEST(ConditionsTest, MessagesAreBoundedOnACharacterBoundary) {
  const std::string ellipsis = "\xE2\x80\xA6";
  EXPECT_EQ(bounded_text("short", 10), "short");
  EXPECT_EQ(bounded_text("0123456789", 10), "0123456789");
  EXPECT_EQ(bounded_text("0123456789a", 10), "0123456" + ellipsis);
  // "é" is two bytes: the cut may not split it, so it goes whole.
  EXPECT_EQ(bounded_text("012345\xC3\xA9xyz", 10), "012345" + ellipsis);
  EXPECT_EQ(bounded_text("01234\xC3\xA9xyzw", 10), "01234\xC3\xA9" + ellipsis);
  // Invalid UTF-8 (a stray continuation, a truncated sequence, a surrogate,
  // an overlong form) becomes U+FFFD.
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(bounded_text("a\x80z", 100), "a" + fffd + "z");
  EXPECT_EQ(bounded_text("a\xE2\x82", 100), "a" + fffd + fffd);
  EXPECT_EQ(bounded_text("\xED\xA0\x80", 100), fffd + fffd + fffd);
  EXPECT_EQ(bounded_text("\xC0\xAF", 100), fffd + fffd);
  EXPECT_EQ(bounded_text("\xF0\x9F\x98\x80 ok", 100), "\xF0\x9F\x98\x80 ok");
  EXPECT_EQ(bounded_text("abcdef", 2), "ab");

  Conditions conditions;
  std::string long_message;
  for (int i = 0; i < 600; ++i)
    long_message += "\xC3\xA9";  // 1200 bytes
  conditions.set(ct::kConnected, S::kFalse, "Unreachable", long_message, kT0);
  const std::string& m = conditions.find(ct::kConnected)->message;
  EXPECT_LE(m.size(), kMaxConditionMessageBytes);
  EXPECT_EQ(m, long_message.substr(0, 1020) + ellipsis);
  EXPECT_LE(conditions.find(ct::kReady)->message.size(), kMaxConditionMessageBytes);
}

TEST(NodeStatusTest, StatusPatchIsAMergePatchOfTheWholeStatus) {
  NodeStatus status;
  status.observed_generation = 7;
  status.firewall_sources = 12;
  status.firewall_backend = "nftables";
  status.agent_version = "0.3.0";
  status.conditions.set(ct::kConnected, S::kTrue, "Watching", "watching EdgeNode desktop", kT0);
  status.conditions.set(ct::kFirewallInSync, S::kFalse, "InvalidSources",
                        "allowedSources[3]: not an address", kT0 + seconds(5));
  const auto expected = json::parse(R"({"status":{
    "observedGeneration": 7, "agentVersion": "0.3.0",
    "firewall": {"sources": 12, "backend": "nftables", "refusedRecently": null},
    "conditions": [
      {"type": "Ready", "status": "False", "reason": "FirewallNotInSync",
       "message": "FirewallInSync is False (InvalidSources): allowedSources[3]: not an address",
       "lastTransitionTime": "2026-11-21T09:30:10Z"},
      {"type": "Connected", "status": "True", "reason": "Watching",
       "message": "watching EdgeNode desktop", "lastTransitionTime": "2026-11-21T09:30:05Z"},
      {"type": "FirewallInSync", "status": "False", "reason": "InvalidSources",
       "message": "allowedSources[3]: not an address",
       "lastTransitionTime": "2026-11-21T09:30:10Z"}],
    "certificates": [], "linkerd": null}})");
  EXPECT_EQ(json::value(status_patch(status)), expected) << json::serialize(status_patch(status));
}

TEST(NodeStatusTest, StatusCarriesCertificatesAndNodeFacts) {
  NodeStatus status;
  status.agent_version = "0.3.0";
  status.firewall_backend = "none";
  status.certificates = {
      {"linkerd-identity-issuer", "issuer", "identity.linkerd.cluster.local", kT0 + hours(24)},
      {"root.linkerd.cluster.local", "trustAnchor", "root.linkerd.cluster.local",
       kT0 + hours(87600)}};
  NodeVitals facts{"0.52", "0.40", "0.31", 1288490188, 8589934592, {}, 273600, std::nullopt};
  facts.disk.push_back({"/var/lib/rancher", 21474836480, 107374182400});
  status.node = facts;
  auto expected = json::parse(R"({
    "observedGeneration": 0, "agentVersion": "0.3.0",
    "firewall": {"sources": 0, "backend": "none"},
    "conditions": [],
    "certificates": [
      {"name": "linkerd-identity-issuer", "role": "issuer",
       "subject": "identity.linkerd.cluster.local", "notAfter": "2026-11-22T09:30:05Z"},
      {"name": "root.linkerd.cluster.local", "role": "trustAnchor",
       "subject": "root.linkerd.cluster.local", "notAfter": "2036-11-18T09:30:05Z"}],
    "node": {"load1": "0.52", "load5": "0.40", "load15": "0.31",
             "memoryAvailableBytes": 1288490188, "memoryTotalBytes": 8589934592,
             "disk": [{"path": "/var/lib/rancher", "availableBytes": 21474836480,
                       "totalBytes": 107374182400}],
             "uptimeSeconds": 273600}})");
  EXPECT_EQ(json::value(status_object(status)), expected) << json::serialize(status_object(status));

  // lastResumeTime only once there was a resume; the CRD's maxItems holds.
  status.node->last_resume = kT0 - hours(2);
  status.certificates.assign(20, status.certificates.front());
  const auto object = status_object(status);
  EXPECT_EQ(object.at("node").at("lastResumeTime"), "2026-11-21T07:30:05Z");
  EXPECT_EQ(object.at("certificates").as_array().size(), kMaxCertificates);
}

TEST(NodeStatusTest, StatusPatchBoundsWhatTheCrdBounds) {
  NodeStatus status;
  status.agent_version = std::string(100, 'v');
  status.firewall_backend = std::string(100, 'b');
  const auto patch = status_patch(status);
  const auto& s = patch.at("status").as_object();
  EXPECT_LE(s.at("agentVersion").as_string().size(), 64u);
  EXPECT_LE(s.at("firewall").as_object().at("backend").as_string().size(), 32u);
  EXPECT_TRUE(s.at("conditions").as_array().empty());
}

// The address-change finding: only what stays the same while it lasts
// (no counts or ages: they would make a write every round); a patch
// without one removes the last.
TEST(NodeStatusTest, TheRefusedSourceIsInTheStatusAndRemovedWhenGone) {
  NodeStatus status;
  status.refused_recently = RefusedRecently{"203.0.113.99", {4191}, kT0};
  EXPECT_EQ(json::value(status_object(status).at("firewall")),
            json::parse(R"({"sources": 0, "backend": "", "refusedRecently":
                {"source": "203.0.113.99", "ports": [4191], "since": "2026-11-21T09:30:05Z"}})"));
  status.refused_recently.reset();
  EXPECT_TRUE(
      status_patch(status).at("status").at("firewall").as_object().at("refusedRecently").is_null());
  EXPECT_FALSE(status_object(status).at("firewall").as_object().contains("refusedRecently"));
}

TEST(NodeStatusTest, APatchWithoutLinkerdRemovesItsCountsFromTheCloud) {
  NodeStatus status;
  EXPECT_TRUE(status_patch(status).at("status").as_object().at("linkerd").is_null());
  EXPECT_FALSE(status_object(status).contains("linkerd")) << "tetherctl's document has none";
  status.linkerd = MeshSummary{};
  status.linkerd->meshed = 3;
  EXPECT_EQ(status_patch(status).at("status").as_object().at("linkerd").at("meshedProxies"), 3);
}

TEST(StatusPublisherTest, WritesOnChangeAndOncePerInterval) {
  const auto interval = seconds(30);
  StatusPublisher publisher(interval);
  NodeStatus status;
  status.conditions.set(ct::kConnected, S::kTrue, "Watching", "", kT0);
  const json::object a = status_patch(status);
  status.conditions.set(ct::kConnected, S::kTrue, "Watching", "again", kT0 + seconds(1));
  const json::object b = status_patch(status);
  ASSERT_NE(a, b);

  struct Step {
    const json::object* patch;
    Duration at;  // after kT0
    bool due;
    bool write_succeeds;
  };
  const std::vector<Step> steps = {
      {&a, seconds(0), true, true},               // nothing written yet
      {&a, seconds(0), false, false},             // the same patch at once: not due
      {&a, seconds(29), false, false},            // still within the interval
      {&a, seconds(30), true, true},              // the interval passed: alive
      {&b, seconds(31), true, false},             // a change is due at once; the write fails
      {&b, seconds(32), true, true},              // so it stays due
      {&b, seconds(33), false, false},            // written a second ago
      {&b, seconds(33) + hours(72), true, true},  // a three-day suspend
      {&b, seconds(34) + hours(72), false, false},
      {&b, seconds(20), true, true},  // the wall clock was set back
      {&b, seconds(21), false, false},
  };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE(i);
    const Step& s = steps[i];
    const WallTime now = kT0 + std::chrono::duration_cast<WallTime::duration>(s.at);
    EXPECT_EQ(publisher.due(*s.patch, now), s.due);
    if (s.write_succeeds) publisher.written(*s.patch, now);
  }
}

TEST(StatusPublisherTest, VitalsAloneWaitForTheReportIntervalAResumeDoesNot) {
  StatusPublisher publisher(kStatusReportInterval);
  NodeStatus status;
  status.node = NodeVitals{"0.10", "0.20", "0.30", 1000, 4000, {{"/", 10, 100}}, 60, {}};
  publisher.written(status_patch(status), kT0);
  // A minute later the load, free memory and disk and the uptime moved:
  // that alone is not worth a write (kubelet's nodeStatusReportFrequency).
  status.node = NodeVitals{"0.90", "0.50", "0.35", 900, 4000, {{"/", 9, 100}}, 120, {}};
  EXPECT_FALSE(publisher.due(status_patch(status), kT0 + minutes(1)));
  EXPECT_FALSE(publisher.due(status_patch(status), kT0 + minutes(4) + seconds(59)));
  EXPECT_TRUE(publisher.due(status_patch(status), kT0 + minutes(5)));
  // A resume, a new disk, more memory, a condition: at once.
  NodeStatus resumed = status;
  resumed.node->last_resume = kT0 + seconds(30);
  EXPECT_TRUE(publisher.due(status_patch(resumed), kT0 + minutes(1)));
  NodeStatus disk = status;
  disk.node->disk.push_back({"/var", 1, 2});
  EXPECT_TRUE(publisher.due(status_patch(disk), kT0 + minutes(1)));
  NodeStatus memory = status;
  memory.node->memory_total_bytes = 8000;
  EXPECT_TRUE(publisher.due(status_patch(memory), kT0 + minutes(1)));
  NodeStatus condition = status;
  condition.conditions.set(ct::kConnected, S::kFalse, "Disconnected", "", kT0);
  EXPECT_TRUE(publisher.due(status_patch(condition), kT0 + minutes(1)));
}

}  // namespace
}  // namespace tetherd
