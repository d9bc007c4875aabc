// `tetherctl status`: the status document read and drawn.
//
// Golden tests: each document under test/fixtures/status/NAME.json is drawn
// at kNow and compared with NAME.txt (plain) and NAME.colour.txt (ANSI; `cat`
// it in a terminal to see the colours). After a deliberate change of the
// table, regenerate the goldens and read the diff before committing them:
//   UPDATE_GOLDEN=1 build/default/test/unit_tests --gtest_filter='*StatusGolden*'

#include "agent/app/status_view.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "agent/core/kube_time.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

const std::string kFixtures = TETHERD_SOURCE_DIR "/test/fixtures/status/";
const WallTime kNow = *parse_kube_time("2026-11-21T15:03:00Z");

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

StatusDocument fixture(const std::string& name) {
  auto doc = parse_status_document(slurp(kFixtures + name + ".json"));
  if (!doc) ADD_FAILURE() << name << ": " << doc.error().message;
  return doc ? *doc : StatusDocument{};
}

struct Golden {
  std::string name;
  bool colour;
};

class StatusGolden : public ::testing::TestWithParam<Golden> {};

TEST_P(StatusGolden, RendersAsTheGoldenFile) {
  const Golden& g = GetParam();
  const std::string path = kFixtures + g.name + (g.colour ? ".colour.txt" : ".txt");
  const std::string rendered = render_status(fixture(g.name), kNow, g.colour);
  const char* update = std::getenv("UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << rendered;
    GTEST_SKIP() << "wrote " << path;
  }
  EXPECT_EQ(rendered, slurp(path)) << "regenerate with UPDATE_GOLDEN=1 (see the top of this file)";
  EXPECT_EQ(rendered.find('\x1b') != std::string::npos, g.colour);
}

INSTANTIATE_TEST_SUITE_P(Documents, StatusGolden,
                         ::testing::Values(Golden{"all_true", false}, Golden{"all_true", true},
                                           Golden{"not_ready", false}, Golden{"not_ready", true},
                                           Golden{"standalone", false}, Golden{"standalone", true},
                                           Golden{"expired_certificate", false},
                                           Golden{"expired_certificate", true}),
                         [](const auto& info) {
                           return info.param.name + (info.param.colour ? "_colour" : "_plain");
                         });

TEST(StatusDocument, ReadsEveryField) {
  const StatusDocument d = fixture("all_true");
  EXPECT_EQ(d.node_name, "desktop");
  ASSERT_TRUE(d.control_plane);
  EXPECT_EQ(d.control_plane->server, "https://cloud.example:6443");
  EXPECT_EQ(d.observed_generation, 3);
  EXPECT_EQ(d.agent_version, "0.1.0");
  ASSERT_TRUE(d.firewall);
  EXPECT_EQ(d.firewall->backend, "nftables");
  EXPECT_EQ(d.firewall->sources, 5u);
  ASSERT_EQ(d.conditions.size(), 7u);
  EXPECT_EQ(d.conditions[6].type, "ClockSynchronized");
  EXPECT_EQ(d.conditions[6].last_transition, parse_kube_time("2026-10-01T08:00:00Z"));
  ASSERT_EQ(d.certificates.size(), 2u);
  EXPECT_EQ(d.certificates[1].role, "trustAnchor");
  EXPECT_EQ(d.certificates[1].not_after, parse_kube_time("2036-01-01T00:00:00Z"));
  ASSERT_TRUE(d.node);
  EXPECT_EQ(d.node->load15, "0.31");
  EXPECT_EQ(d.node->memory_total_bytes, 8589934592u);
  ASSERT_EQ(d.node->disks.size(), 2u);
  EXPECT_EQ(d.node->disks[0].total_bytes, 107374182400u);
  EXPECT_EQ(d.node->uptime_seconds, 273600u);
  EXPECT_EQ(d.node->last_resume, parse_kube_time("2026-11-20T07:12:00Z"));
}

// The contract with the server side: what tetherd writes to its status is
// what tetherctl reads back.
TEST(StatusDocument, ReadsWhatTetherdWrites) {
  NodeStatus written;
  written.observed_generation = 9;
  written.agent_version = "0.1.0";
  written.firewall_backend = "ufw";
  written.firewall_sources = 2;
  written.conditions.set(condition_type::kConnected, ConditionStatus::kFalse, "Unreachable",
                         "dial tcp 192.0.2.1:6443: i/o timeout", kNow - 90s);
  written.certificates.push_back(
      {"linkerd-identity-issuer", "issuer", "identity.linkerd.cluster.local", kNow + 24h});
  NodeVitals vitals;
  vitals.load1 = "1.5";
  vitals.memory_total_bytes = 1 << 30;
  vitals.disk.push_back({"/", 10, 20});
  vitals.uptime_seconds = 60;
  written.node = vitals;
  boost::json::object document{{"nodeName", "desktop"},
                               {"time", format_kube_time(kNow)},
                               {"status", status_object(written)}};

  const auto read = parse_status_document(boost::json::serialize(document));
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->time, kNow);
  EXPECT_FALSE(read->control_plane);
  EXPECT_EQ(read->observed_generation, 9);
  EXPECT_EQ(read->firewall->backend, "ufw");
  EXPECT_EQ(read->firewall->sources, 2u);
  EXPECT_EQ(read->conditions, written.conditions.all());
  ASSERT_EQ(read->certificates.size(), 1u);
  EXPECT_EQ(read->certificates[0].subject, "identity.linkerd.cluster.local");
  EXPECT_EQ(read->certificates[0].not_after, kNow + 24h);
  EXPECT_EQ(read->node->load1, "1.5");
  EXPECT_FALSE(read->node->load5);  // written empty: not measured
  EXPECT_EQ(read->node->disks[0].available_bytes, 10u);
  EXPECT_EQ(read->node->uptime_seconds, 60u);
  EXPECT_FALSE(read->node->last_resume);
  EXPECT_EQ(status_exit_code(*read), 1);
}

TEST(StatusDocument, ReadsTheTunnel) {
  auto doc = parse_status_document(
      R"({"nodeName": "n", "tunnel": {"server": "https://k:8091", "serversWanted": 2,
          "serversHeld": 1, "connections": 4, "dialsServed": 9, "dialsRefused": 1,
          "dialsFailed": 0, "bytesToDestinations": 10, "bytesToServers": 20,
          "problem": "server server-1: gone"}, "status": {}})");
  ASSERT_TRUE(doc) << doc.error().message;
  ASSERT_TRUE(doc->tunnel);
  EXPECT_EQ(doc->tunnel->server, "https://k:8091");
  EXPECT_EQ(doc->tunnel->servers_wanted, 2u);
  EXPECT_EQ(doc->tunnel->servers_held, 1u);
  EXPECT_EQ(doc->tunnel->dials_refused, 1u);
  EXPECT_EQ(doc->tunnel->bytes_to_servers, 20u);
  EXPECT_EQ(doc->tunnel->problem, "server server-1: gone");
  EXPECT_FALSE(parse_status_document(R"({"nodeName": "n", "status": {}})")->tunnel);
  auto bad =
      parse_status_document(R"({"nodeName": "n", "tunnel": {"dialsServed": -1}, "status": {}})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "tunnel.dialsServed: must not be negative, found -1");
}

TEST(StatusDocument, IgnoresUnknownKeysAndReadsNullAsAbsent) {
  const auto d = parse_status_document(
      R"({"nodeName": "n", "controlPlane": null, "apiVersion": "v2", "status": {
            "certificates": null, "node": null, "conditions": null, "firewall": {"mode": 1},
            "newThing": {"deep": [1, 2]}}})");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_FALSE(d->control_plane);
  EXPECT_TRUE(d->conditions.empty());
  EXPECT_FALSE(d->node);
  EXPECT_EQ(d->firewall->backend, "");
  EXPECT_FALSE(d->observed_generation);
}

struct Bad {
  std::string document;
  std::string message;  // exact, or a prefix when it ends in "..."
};

TEST(StatusDocument, RefusesWhatIsNotAsDocumentedAndSaysWhere) {
  const auto status = [](const std::string& inner) {
    return R"({"nodeName": "n", "status": )" + inner + "}";
  };
  const auto condition = [&](const std::string& fields) {
    return status(R"({"conditions": [)" + fields + "]}");
  };
  const std::string ok_condition =
      R"({"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-21T10:00:00Z"})";
  const std::vector<Bad> cases = {
      {"", "the status document is not JSON: ..."},
      {"{\"nodeName\": \"n\", \"status\": {}", "the status document is not JSON: ..."},
      {"{\"nodeName\": \"\xff\", \"status\": {}}", "the status document is not JSON: ..."},
      {"[]", "the status document is an array, not an object"},
      {"\"ok\"", "the status document is a string, not an object"},
      {R"({"status": {}})", "nodeName: missing"},
      {R"({"nodeName": 7, "status": {}})", "nodeName: expected a string, found a number"},
      {R"({"nodeName": "n"})", "status: missing"},
      {R"({"nodeName": "n", "status": []})", "status: expected an object, found an array"},
      {R"({"nodeName": "n", "controlPlane": "x", "status": {}})",
       "controlPlane: expected an object, found a string"},
      {R"({"nodeName": "n", "controlPlane": {"server": "s"}, "status": {}})",
       "controlPlane.summary: missing"},
      {status(R"({"observedGeneration": -1})"),
       "status.observedGeneration: must not be negative, found -1"},
      {status(R"({"observedGeneration": 1.5})"),
       "status.observedGeneration: expected a whole number, found a fraction"},
      {status(R"({"observedGeneration": 18446744073709551615})"),
       "status.observedGeneration: too large"},
      {status(R"({"agentVersion": true})"),
       "status.agentVersion: expected a string, found true or false"},
      {status(R"({"firewall": {"sources": "5"}})"),
       "status.firewall.sources: expected a whole number, found a string"},
      {status(R"({"firewall": {"refusedRecently": {"ports": [4191]}}})"),
       "status.firewall.refusedRecently.source: missing"},
      {status(R"({"firewall": {"refusedRecently": {"source": "x", "ports": [4191, 0]}}})"),
       "status.firewall.refusedRecently.ports[1]: not a port: 0"},
      {status(R"({"firewall": {"refusedRecently": {"source": "x", "since": "soon"}}})"),
       "status.firewall.refusedRecently.since: not an RFC 3339 time: \"soon\""},
      {status(R"({"conditions": {}})"), "status.conditions: expected an array, found an object"},
      {condition(R"("Ready")"), "status.conditions[0]: expected an object, found a string"},
      {condition(R"({"status": "True", "lastTransitionTime": "2026-11-21T10:00:00Z"})"),
       "status.conditions[0].type: missing"},
      {condition(R"({"type": "Ready", "status": "Maybe"})"),
       "status.conditions[0].status: must be True, False or Unknown, not \"Maybe\""},
      {condition(R"({"type": "Ready", "status": "\u001b[2J\u009b"})"),
       "status.conditions[0].status: must be True, False or Unknown, not \"?[2J?\""},
      {condition(ok_condition + R"(, {"type": "K3sReady", "status": "True"})"),
       "status.conditions[1].lastTransitionTime: missing"},
      {condition(ok_condition +
                 R"(, {"type": "K3sReady", "status": "True", "lastTransitionTime": "yesterday"})"),
       "status.conditions[1].lastTransitionTime: not an RFC 3339 time: \"yesterday\""},
      {condition(R"({"type": "Ready", "status": "True", "lastTransitionTime": 0})"),
       "status.conditions[0].lastTransitionTime: expected a string, found a number"},
      {status(R"({"certificates": [{"role": "issuer"}]})"), "status.certificates[0].name: missing"},
      {status(R"({"certificates": [{"name": "a", "notAfter": "2027-11-21 10:00:00"}]})"),
       "status.certificates[0].notAfter: not an RFC 3339 time: \"2027-11-21 10:00:00\""},
      {status(R"({"certificates": [{"name": "a", "notAfter": "9999-12-31T23:59:59Z"}]})"),
       "status.certificates[0].notAfter: out of range (years 1970 to 2261): "
       "\"9999-12-31T23:59:59Z\""},
      {condition(
           R"({"type": "Ready", "status": "True", "lastTransitionTime": "0001-01-01T00:00:00Z"})"),
       "status.conditions[0].lastTransitionTime: out of range (years 1970 to 2261): "
       "\"0001-01-01T00:00:00Z\""},
      {status(R"({"node": {"load1": "high"}})"),
       "status.node.load1: not a decimal number: \"high\""},
      {status(R"({"node": {"load5": 0.5}})"),
       "status.node.load5: expected a string, found a fraction"},
      {status(R"({"node": {"memoryTotalBytes": "8G"}})"),
       "status.node.memoryTotalBytes: expected a whole number, found a string"},
      {status(R"({"node": {"disk": [{"path": "/", "availableBytes": 1}]}})"),
       "status.node.disk[0].totalBytes: missing"},
      {status(R"({"node": {"disk": {"path": "/"}}})"),
       "status.node.disk: expected an array, found an object"},
      {status(R"({"node": {"lastResumeTime": "now"}})"),
       "status.node.lastResumeTime: not an RFC 3339 time: \"now\""},
      {R"({"nodeName": "n", "time": "now"})", "time: not an RFC 3339 time: \"now\""},
      // The first problem is the one named.
      {R"({"nodeName": 1, "status": {"observedGeneration": -1}})",
       "nodeName: expected a string, found a number"},
  };
  for (const Bad& bad : cases) {
    const auto d = parse_status_document(bad.document);
    ASSERT_FALSE(d) << bad.document;
    const std::string& got = d.error().message;
    if (bad.message.ends_with("...")) {
      const std::string prefix = bad.message.substr(0, bad.message.size() - 3);
      EXPECT_EQ(got.substr(0, prefix.size()), prefix) << bad.document;
      EXPECT_GT(got.size(), prefix.size()) << bad.document;
    } else {
      EXPECT_EQ(got, bad.message) << bad.document;
    }
  }
}

TEST(StatusDocument, RefusesADocumentOverOneMebibyte) {
  std::string big = R"({"nodeName": "n", "status": {}, "padding": ")";
  big += std::string(kMaxStatusDocumentBytes, 'x') + "\"}";
  const auto d = parse_status_document(big);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().message, "the status document is " + std::to_string(big.size()) +
                                   " bytes, more than the limit of 1048576");
}

TEST(StatusExitCode, ZeroOnlyWhenReadyIsTrue) {
  EXPECT_EQ(status_exit_code(fixture("all_true")), 0);
  EXPECT_EQ(status_exit_code(fixture("not_ready")), 1);
  EXPECT_EQ(status_exit_code(fixture("standalone")), 1);  // Ready Unknown
  StatusDocument no_ready = fixture("all_true");
  no_ready.conditions.erase(no_ready.conditions.begin());
  EXPECT_EQ(status_exit_code(no_ready), 1);
  EXPECT_EQ(status_exit_code(StatusDocument{}), 1);
}

TEST(HumanDuration, MatchesKubectlsAge) {
  const std::vector<std::pair<Duration, std::string>> cases = {
      {0s, "0s"},          {-1s, "0s"},       {-2s, "<invalid>"},   {45s, "45s"},
      {119s, "119s"},      {2min, "2m"},      {200s, "3m20s"},      {12min, "12m"},
      {179min, "179m"},    {3h, "3h"},        {5h + 3min, "5h3m"},  {20h, "20h"},
      {47h, "47h"},        {48h, "2d"},       {76h, "3d4h"},        {8 * 24h, "8d"},
      {100 * 24h, "100d"}, {730 * 24h, "2y"}, {760 * 24h, "2y30d"}, {9 * 365 * 24h, "9y"},
      {999ms, "0s"},
  };
  for (const auto& [d, text] : cases)
    EXPECT_EQ(human_duration(d), text) << d.count();
}

TEST(RenderStatus, KeepsControlCharactersFromTheDocumentOffTheTerminal) {
  StatusDocument d = fixture("standalone");
  d.node_name = "evil\x1b]0;owned\x07";
  d.conditions[0].message =
      "line one\nline two\x1b[2J \xc2\x9b"
      "31m";
  d.conditions[0].reason = "Tab\tbed";
  const std::string plain = render_status(d, kNow, false);
  EXPECT_EQ(plain.find('\x1b'), std::string::npos) << plain;
  EXPECT_EQ(plain.find('\x07'), std::string::npos);
  EXPECT_EQ(plain.find("\xc2\x9b"), std::string::npos);
  EXPECT_NE(plain.find("line one line two [2J  31m"), std::string::npos) << plain;
  const std::string coloured = render_status(d, kNow, true);
  EXPECT_EQ(coloured.find("\x1b]"), std::string::npos);
  EXPECT_EQ(coloured.find("\x1b[2J"), std::string::npos);
}

TEST(RenderStatus, CutsALongMessageOnACharacterBoundary) {
  StatusDocument d = fixture("standalone");
  std::string message;
  for (int i = 0; i < 100; ++i)
    message += "\u00e9t\u00e9 ";  // two-byte characters
  d.conditions[0].message = message;
  const std::string out = render_status(d, kNow, false);
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::size_t columns = 0;
    for (char c : line)
      columns += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    EXPECT_LE(columns, 120u) << line;
  }
  EXPECT_NE(out.find("\u2026\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\u00e9t\u00e9 "), std::string::npos);
}

TEST(RenderStatus, SaysWhenNothingIsReportedYet) {
  StatusDocument d;
  d.node_name = "new";
  EXPECT_EQ(render_status(d, kNow, true),
            "node           new\n"
            "tetherd        version unknown\n"
            "control plane  standalone\n"
            "\n"
            "no conditions reported yet\n");
}

}  // namespace
}  // namespace tetherd
