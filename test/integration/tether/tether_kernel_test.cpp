// The tether end to end: the cloud is the test API server in its own
// network namespace (peer a, 192.0.2.2), enforcing mTLS and the shipped
// RBAC; the node is a namespace where tetherd's event loop runs the Tether
// and the real nftables backend. What the control plane says must reach the
// kernel, and what the kernel does is checked with real connections from
// peer a (192.0.2.2) and peer b (198.51.100.2) to the node's ports.

#include "test/integration/tether/tether_fixture.h"
#include "test/support/fake_backend.h"
#include "test/support/rbac_manifest.h"

namespace tetherd::test {
namespace {

TEST_F(TetherKernel, TheFirstConnectAppliesTheSpecAndReportsIt) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start();
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 1; }));
  EXPECT_TRUE(cloud_allowed());
  EXPECT_FALSE(stranger_allowed());
  EXPECT_EQ(from(topo_->b, 22), Outcome::kRefused) << "only the managed ports are filtered"
                                                   << " (nothing listens on 22: refused by TCP)";

  // Status, by merge patch: the generation acted on and the conditions.
  ASSERT_TRUE(eventually([&] { return condition_is("FirewallInSync", "True", "Applied"); }));
  EXPECT_TRUE(condition_is("Connected", "True", "Watching"));
  const auto node = *server_->get(kNodeA);
  EXPECT_EQ(node.at("status").at("observedGeneration"), node.at("metadata").at("generation"));
  EXPECT_EQ(node.at("status").at("firewall").at("backend"), "nftables");
  // The heartbeat.
  ASSERT_TRUE(eventually([&] { return server_->get(kLeaseA).has_value(); }));
  EXPECT_EQ(server_->get(kLeaseA)->at("spec").at("holderIdentity"), "node-a");
}

// The health side and the tether hold one view: the probes' conditions and
// the node's vitals reach the EdgeNode, and the session's own conditions
// reach the local view (tetherctl, metrics, the journal).
TEST_F(TetherKernel, HealthAndTheTetherShareOneViewOfTheConditions) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start();
  ASSERT_TRUE(eventually([&] { return condition_is("Connected", "True", "Watching"); }));
  on_io([this] {
    health_ = std::make_unique<NodeHealth>(io_, clock_, log_, config_, *keeper_, conditions_,
                                           tether_.get(), nullptr);
    health_->start();
  });
  ASSERT_TRUE(eventually([&] { return condition("ClockSynchronized").has_value(); })) << requests();
  ASSERT_TRUE(eventually([&] {
    auto node = server_->get(kNodeA);
    return node && node->at("status").as_object().contains("node");
  })) << requests();
  EXPECT_GT(server_->get(kNodeA)->at("status").at("node").at("uptimeSeconds").as_int64(), 0);
  on_io([this] {
    const Condition* connected = health_->conditions().find(condition_type::kConnected);
    ASSERT_NE(connected, nullptr);
    EXPECT_EQ(connected->status, ConditionStatus::kTrue);
    EXPECT_EQ(connected->reason, "Watching");
    // Ready is derived alike on both sides.
    EXPECT_EQ(health_->conditions().find(condition_type::kReady)->status,
              tether_->status().conditions.find(condition_type::kReady)->status);
    const auto doc = health_->status_document();
    EXPECT_EQ(doc.at("controlPlane").at("summary").as_string(), "watching " + server_->url());
  });
  // The session's loss reaches the local view too.
  server_->misbehave({.what = Misbehaviour::kStatus500, .times = 1000});
  server_->drop_connections();
  ASSERT_TRUE(eventually([&] {
    const Condition* c = health_->conditions().find(condition_type::kConnected);
    return c && c->status == ConditionStatus::kFalse;
  }));
}

TEST_F(TetherKernel, ASpecChangeReachesTheKernelWithTheNextEventAndIsSaved) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start();
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 1; }));
  const auto lists = on_io([&] { return tether_->session_stats().lists; });

  set_sources({kStranger});
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 2; }));
  EXPECT_TRUE(stranger_allowed());
  EXPECT_FALSE(cloud_allowed());
  EXPECT_EQ(on_io([&] { return tether_->session_stats().lists; }), lists)
      << "through the watch, not a new list";
  // What a restart would apply before the control plane answers.
  boost::system::error_code ec;
  const auto saved = StateDir(state_dir_.path()).read(firewall::kDesiredStateFile, ec);
  ASSERT_TRUE(saved) << ec.message();
  EXPECT_NE(saved->find("198.51.100.2/32"), std::string::npos) << *saved;
}

TEST_F(TetherKernel, AServerKilledAndRestartedLosesNothing) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start();
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 1; }));

  server_->go_down();
  ASSERT_TRUE(eventually([&] {
    return local_condition_is(condition_type::kConnected, ConditionStatus::kFalse, "Unreachable");
  }));
  EXPECT_TRUE(cloud_allowed()) << "the last good rules are kept while the cloud is away";
  // While it is down, the spec changes and the history it would resume
  // from is compacted away: the change can only arrive through a relist.
  set_sources({kStranger});
  server_->compact();
  server_->come_back();

  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 2; }));
  EXPECT_TRUE(stranger_allowed());
  EXPECT_FALSE(cloud_allowed());
  EXPECT_TRUE(eventually([&] { return tether_->connected(); }));
  const auto stats = on_io([&] { return tether_->session_stats(); });
  EXPECT_GE(stats.failures, 1u);
  EXPECT_EQ(stats.relists_after_gone, 1u) << "410 Gone, then a relist";
  EXPECT_TRUE(eventually([&] { return condition_is("Connected", "True", "Watching"); }));
  on_io([&] {
    EXPECT_EQ(log_.with_event("controlplane-unreachable").size(), 1u)
        << "one line for the outage, not one per retry: " << testing::PrintToString([&] {
             std::vector<std::string> m;
             for (const auto& r : log_.with_event("controlplane-unreachable"))
               m.push_back(r.message);
             return m;
           }());
    EXPECT_EQ(log_.with_event("controlplane-connected").size(), 2u);
  });
}

struct BadSpec {
  const char* name;
  json::value sources;  // spec.firewall.allowedSources
  const char* message;  // in the condition's message
};

void PrintTo(const BadSpec& c, std::ostream* os) {
  *os << c.name;
}

class TetherBadSpec : public TetherKernel, public testing::WithParamInterface<BadSpec> {};

TEST_P(TetherBadSpec, IsRejectedAndTheRulesKept) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start();
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 1; }));

  auto node = *server_->get(kNodeA);
  node["spec"] = {{"firewall", {{"allowedSources", GetParam().sources}}}};
  server_->update(kNodeA, node);
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_rejected == 1; }));
  EXPECT_TRUE(cloud_allowed()) << "the live rules did not change";
  EXPECT_FALSE(stranger_allowed());
  ASSERT_TRUE(eventually([&] { return condition_is("FirewallInSync", "False", "InvalidSpec"); }));
  const auto c = *condition("FirewallInSync");
  EXPECT_NE(std::string(c.at("message").as_string()).find(GetParam().message), std::string::npos)
      << c;
  const auto now = *server_->get(kNodeA);
  EXPECT_EQ(now.at("status").at("observedGeneration"), now.at("metadata").at("generation"))
      << "the refused generation was seen";

  // A good spec after a bad one is applied as usual.
  set_sources({kStranger});
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 2; }));
  EXPECT_TRUE(stranger_allowed());
  EXPECT_TRUE(eventually([&] { return condition_is("FirewallInSync", "True", "Applied"); }))
      << requests();
}

json::array many_sources(int n) {
  json::array a;
  for (int i = 0; i < n; ++i)
    a.emplace_back("203.0.113." + std::to_string(i) + "/32");
  return a;
}

INSTANTIATE_TEST_SUITE_P(
    Specs, TetherBadSpec,
    testing::Values(BadSpec{"malformed_cidr", json::array{kStranger, "198.51.100.0/33"},
                            "198.51.100.0/33"},
                    BadSpec{"too_many", many_sources(17), "17"},
                    BadSpec{"not_a_list", json::value(42), "allowedSources"},
                    BadSpec{"not_strings", json::array{kStranger, 7}, "allowedSources[1]"}),
    [](const testing::TestParamInfo<BadSpec>& info) { return std::string(info.param.name); });

TEST_F(TetherKernel, AClientCertificateTheServerRefusesIsAClearError) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  TestCa stranger_ca{"someone else's CA"};
  start(kubeconfig(stranger_ca));
  ASSERT_TRUE(eventually([&] {
    return local_condition_is(condition_type::kConnected, ConditionStatus::kFalse,
                              "TLSHandshakeFailed");
  }));
  on_io([&] {
    const auto records = log_.with_event("controlplane-unreachable");
    ASSERT_EQ(records.size(), 1u);
    EXPECT_NE(records[0].message.find(server_->url()), std::string::npos) << records[0].message;
    // In a backoff or already redialling (the tests' backoff is short): either
    // way the summary says why the last dial failed.
    EXPECT_NE(tether_->summary().find("unknown ca"), std::string::npos) << tether_->summary();
    EXPECT_EQ(tether_->stats().specs_applied, 0u);
  });
}

TEST_F(TetherKernel, AnExpiredClientCertificateIsAClearError) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start(kubeconfig(ca_, -1h));
  ASSERT_TRUE(eventually([&] {
    return local_condition_is(condition_type::kConnected, ConditionStatus::kFalse,
                              "TLSHandshakeFailed");
  }));
  on_io([&] {
    const Condition* c = conditions_.find(condition_type::kConnected);
    EXPECT_NE(c->message.find("certificate"), std::string::npos) << c->message;
  });
}

TEST_F(TetherKernel, AResumeRedialsAtOnce) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start();
  ASSERT_TRUE(eventually([&] { return condition_is("Connected", "True", "Watching"); }));
  ASSERT_TRUE(server_->wait_for_watches(1, kDeadline));
  const auto connections = server_->connections_accepted();
  const auto lists = on_io([&] { return tether_->session_stats().lists; });

  on_io([&] { tether_->resumed(); });
  // The old connections are closed, not left for TCP to find dead, and the
  // session lists afresh on new ones.
  ASSERT_TRUE(eventually([&] { return tether_->session_stats().lists == lists + 1; }));
  ASSERT_TRUE(eventually([&] { return tether_->connected(); }));
  EXPECT_GT(server_->connections_accepted(), connections);
  EXPECT_TRUE(cloud_allowed());
  on_io([&] { EXPECT_EQ(log_.with_event("tether-redial").size(), 1u); });
}

TEST_F(TetherKernel, BeforeSleepItSaysSoClosesAndStaysQuietUntilTheResume) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start();
  ASSERT_TRUE(eventually([&] { return condition_is("Connected", "True", "Watching"); }));
  ASSERT_TRUE(server_->wait_for_watches(1, kDeadline));

  bool done = false;
  on_io([&] { tether_->suspending([&] { done = true; }); });
  ASSERT_TRUE(eventually([&] { return done; }));
  // The cloud has the last word before the sleep, and no connection is left
  // for it to time out.
  EXPECT_TRUE(condition_is("Connected", "False", "Suspending"));
  EXPECT_TRUE(server_->wait_for_no_watches(kDeadline));
  EXPECT_EQ(on_io([&] { return tether_->state(); }), SessionState::kSuspended);
  EXPECT_TRUE(cloud_allowed()) << "the rules stay through the sleep";
  // The resume ends the quiet (a lease renewal would not: see the session's table).
  on_io([&] { tether_->resumed(); });
  EXPECT_TRUE(eventually([&] { return condition_is("Connected", "True", "Watching"); }));
  on_io([&] {
    EXPECT_EQ(log_.with_event("tether-suspended").size(), 1u);
    EXPECT_NE(log_.with_event("tether-suspended")[0].message.find("wrote Connected=False"),
              std::string::npos);
  });
}

TEST_F(TetherKernel, AResumeWhileTheLastWriteHangsIsNotUndoneByIt) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start();
  ASSERT_TRUE(eventually([&] { return condition_is("Connected", "True", "Watching"); }));
  // The last status write before sleep gets no answer; logind's patience
  // runs out, the machine sleeps and wakes, and the write ends only then.
  server_->misbehave({.what = Misbehaviour::kStall, .path_contains = "/status"});
  bool done = false;
  on_io([&] { tether_->suspending([&] { done = true; }); });
  ASSERT_TRUE(eventually([&] {
    for (const auto& r : server_->requests())
      if (r.target.find("/status") != std::string::npos && r.status == 0) return true;
    return false;
  }));
  on_io([&] { tether_->resumed(); });
  server_->release_stalls();
  ASSERT_TRUE(eventually([&] { return done; }));
  EXPECT_TRUE(eventually([&] { return tether_->connected(); }));
  EXPECT_NE(on_io([&] { return tether_->state(); }), SessionState::kSuspended);
  on_io([&] { EXPECT_TRUE(log_.with_event("tether-suspended").empty()); });
}

TEST_F(TetherKernel, ASleepWithTheCloudAwayStillEndsAtOnce) {
  server_->go_down();
  start();
  bool done = false;
  on_io([&] { tether_->suspending([&] { done = true; }); });
  ASSERT_TRUE(eventually([&] { return done; }));
  EXPECT_EQ(on_io([&] { return tether_->state(); }), SessionState::kSuspended);
  on_io([&] {
    ASSERT_EQ(log_.with_event("tether-suspended").size(), 1u);
    EXPECT_NE(log_.with_event("tether-suspended")[0].message.find("could not tell"),
              std::string::npos);
  });
  server_->come_back();
  on_io([&] { tether_->resumed(); });
  EXPECT_TRUE(eventually([&] { return tether_->connected(); }));
}

TEST_F(TetherKernel, ANewRotateTokenAloneIsHeardAtOnce) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  start();
  ASSERT_TRUE(eventually([&] { return condition_is("Connected", "True", "Watching"); }));
  // Kept alive by the listener, which outlives this scope (the tether's
  // stop calls it); it pokes the fixture as the fixture's own listener does.
  auto heard = std::make_shared<std::vector<std::string>>();
  on_io([&] {
    tether_->on_change([this, heard] {
      heard->push_back(tether_->rotate_token());
      poke();
    });
  });
  // Only spec.linkerd.rotate changes: nothing for the firewall to do, but
  // the certificates' trigger must not wait for some other change.
  auto node = *server_->get(kNodeA);
  node["spec"].as_object()["linkerd"] = json::object{{"rotate", "2026-11-21"}};
  server_->update(kNodeA, node);
  EXPECT_TRUE(eventually(
      [&] { return std::find(heard->begin(), heard->end(), "2026-11-21") != heard->end(); }));
}

// spec.linkerd's references: the node follows its issuer Secret and the
// trust bundle's ConfigMap in the cloud, by name, under the shipped
// per-node RBAC; a reference RBAC does not allow is a clear error.
TEST_F(TetherKernel, TheLinkerdObjectsTheSpecNamesAreFollowedByNameUnderTheShippedRbac) {
  std::string per_node = shipped_manifest("per-node/linkerd-from-cloud.yaml");
  for (std::size_t at; (at = per_node.find("NODE")) != std::string::npos;)
    per_node.replace(at, 4, "node-a");
  for (auto& rule : rules_from_rbac_manifest(per_node))
    server_->allow(std::move(rule));
  const std::string secrets = kube::collection_path(kube::kSecrets, kNamespace);
  const std::string config_maps = kube::collection_path(kube::kConfigMaps, kNamespace);
  auto secret = [](const std::string& name, const std::string& crt) {
    return json::object{{"apiVersion", "v1"},
                        {"kind", "Secret"},
                        {"metadata", {{"name", name}}},
                        {"type", "kubernetes.io/tls"},
                        {"data", {{"tls.crt", crt}}}};
  };
  server_->create(secrets, secret("linkerd-identity-issuer-node-a", "b25l"));
  server_->create(secrets, secret("linkerd-identity-issuer-node-b", "dHdv"));
  server_->create(config_maps,
                  json::object{{"apiVersion", "v1"},
                               {"kind", "ConfigMap"},
                               {"metadata", {{"name", "linkerd-identity-trust-roots"}}},
                               {"data", {{"ca-bundle.crt", "roots"}}}});
  json::object node = edge_node("node-a", {kCloud});
  node["spec"].as_object()["linkerd"] =
      json::object{{"issuerSecretRef", {{"name", "linkerd-identity-issuer-node-a"}}},
                   {"trustBundleRef", {{"name", "linkerd-identity-trust-roots"}}}};
  server_->create(kEdgeNodes, node);
  start();
  auto tls_crt = [](const kube::FollowedObject& f) -> std::string {
    if (!f.object) return "";
    return std::string(f.object->at("data").at("tls.crt").as_string());
  };
  ASSERT_TRUE(eventually([&] { return tls_crt(tether_->cloud_linkerd().issuer) == "b25l"; }))
      << on_io([&] { return tether_->cloud_linkerd().issuer.error; });
  EXPECT_TRUE(eventually([&] { return tether_->cloud_linkerd().bundle.object.has_value(); }));
  EXPECT_EQ(on_io([&] { return tether_->cloud_linkerd().refs.bundle_key; }), "ca-bundle.crt");

  // cert-manager renews it: the watch brings the new one.
  const std::string path =
      kube::object_path(kube::kSecrets, kNamespace, "linkerd-identity-issuer-node-a");
  json::object renewed = *server_->get(path);
  renewed["data"].as_object()["tls.crt"] = "cmVuZXdlZA==";
  server_->update(path, renewed);
  EXPECT_TRUE(
      eventually([&] { return tls_crt(tether_->cloud_linkerd().issuer) == "cmVuZXdlZA=="; }));

  // Another node's issuer: RBAC says no, and the error says so.
  json::object other = *server_->get(kNodeA);
  other["spec"].as_object()["linkerd"].as_object()["issuerSecretRef"] =
      json::object{{"name", "linkerd-identity-issuer-node-b"}};
  server_->update(kNodeA, other);
  ASSERT_TRUE(eventually([&] {
    const auto& issuer = tether_->cloud_linkerd().issuer;
    return issuer.error.find("403") != std::string::npos && !issuer.object;
  })) << on_io([&] { return tether_->cloud_linkerd().issuer.error; });
  EXPECT_EQ(on_io([&] { return tether_->cloud_linkerd().refs.issuer_secret; }),
            "linkerd-identity-issuer-node-b");
  // Followed by name: no list or watch of Secrets without the field selector.
  for (const auto& r : server_->requests()) {
    if (r.target.find("/secrets") == std::string::npos) continue;
    EXPECT_NE(r.target.find("fieldSelector=metadata.name"), std::string::npos) << r.target;
  }
}

TEST_F(TetherKernel, NothingChangedMeansNoStatusWritePerHeartbeat) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  config_.control_plane->heartbeat_interval = 20ms;  // many ticks, quickly
  config_.health.interval = 1h;
  start();
  // Written, as the server has it and as the tether knows (the answer to
  // the write may still be on its way when the server shows it).
  ASSERT_TRUE(eventually([&] {
    return condition_is("Connected", "True", "Watching") && tether_->stats().status_writes == 1;
  }));
  const auto writes = on_io([&] { return tether_->stats().status_writes; });
  const auto renewals = on_io([&] { return tether_->lease_stats().renewals; });
  ASSERT_TRUE(eventually([&] { return tether_->lease_stats().renewals >= renewals + 25; }));
  EXPECT_EQ(on_io([&] { return tether_->stats().status_writes; }), writes)
      << "25 heartbeats, no change, no write";
  // A change is written at once, though the interval is an hour.
  set_sources({kStranger});
  EXPECT_TRUE(eventually([&] { return tether_->stats().status_writes == writes + 1; }));
  EXPECT_TRUE(eventually([&] {
    return server_->get(kNodeA)->at("status").at("observedGeneration") ==
           server_->get(kNodeA)->at("metadata").at("generation");
  }));
}

// The field selector asks for node-a's EdgeNode alone. When the server (or a
// proxy) sends the others anyway, another node's spec is not applied here and
// its deletion does not make ours missing.
TEST_F(TetherKernel, AnotherNodesEdgeNodeIsIgnored) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  server_->create(kEdgeNodes, edge_node("node-b", {kStranger}));
  server_->misbehave({.what = Misbehaviour::kIgnoreFieldSelector, .times = 1000});
  // RBAC lets node-a see its own EdgeNode alone; this server would send
  // every one, so the node is let list them all.
  Kubeconfig k = kubeconfig(ca_);
  const auto admin = ca_.issue(
      {.common_name = "tetherd:node-a", .organizations = {"system:masters"}, .server_auth = false});
  k.client_cert_pem = admin.cert_pem;
  k.client_key_pem = admin.key_pem;
  start(k);
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 1; }));
  EXPECT_TRUE(cloud_allowed());
  EXPECT_FALSE(stranger_allowed());

  auto node_b = *server_->get(kNodeB);
  node_b["spec"].as_object()["firewall"].as_object()["allowedSources"] =
      json::array{kStranger, "203.0.113.0/24"};
  server_->update(kNodeB, node_b);
  server_->remove(kNodeB);
  // Then a change of our own, so that the events before it have been seen.
  set_sources({kCloud, "203.0.113.9/32"});
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 2; }));
  EXPECT_TRUE(cloud_allowed());
  EXPECT_FALSE(stranger_allowed()) << "node-b's sources are not ours";
  on_io([&] {
    EXPECT_TRUE(log_.with_event("edgenode-missing").empty()) << "node-b's deletion is not ours";
    EXPECT_EQ(tether_->stats().specs_rejected, 0u);
  });
}

TEST_F(TetherKernel, ASpecTheOldLimitsRejectedIsJudgedAgainAfterAReload) {
  config_.firewall.max_sources = 1;
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud, "203.0.113.0/24"}));
  start();
  ASSERT_TRUE(eventually([&] { return condition_is("FirewallInSync", "False", "InvalidSpec"); }));
  EXPECT_FALSE(cloud_allowed());

  // What a reload with a larger maxSources does (Daemon::reload).
  config_.firewall.max_sources = 4;
  on_io([&] {
    ASSERT_TRUE(keeper_->reconfigure(config_.firewall).has_value());
    tether_->firewall_policy_changed();
  });
  ASSERT_TRUE(eventually([&] { return condition_is("FirewallInSync", "True", "Applied"); }));
  EXPECT_TRUE(cloud_allowed());
  on_io([&] { EXPECT_EQ(tether_->stats().specs_applied, 1u); });
}

TEST_F(TetherKernel, AMissingEdgeNodeIsCreatedWithTheSourcesInForce) {
  // What an earlier run saved: the node comes up with it, offline.
  ASSERT_FALSE(
      StateDir(state_dir_.path())
          .replace(firewall::kDesiredStateFile, firewall::encode_desired({{kStranger}, {}})));
  start();
  ASSERT_TRUE(eventually([&] { return server_->get(kNodeA).has_value(); }));
  const auto created = *server_->get(kNodeA);
  EXPECT_EQ(created.at("spec").at("firewall").at("allowedSources"), json::array{kStranger});
  ASSERT_TRUE(eventually([&] { return condition_is("FirewallInSync", "True", "Applied"); }));
  EXPECT_TRUE(stranger_allowed());
  EXPECT_FALSE(cloud_allowed());
  on_io([&] { EXPECT_EQ(tether_->stats().edge_nodes_created, 1u); });
}

TEST_F(TetherKernel, OfflineAtBootTheSavedStateIsInForceUntilTheCloudAnswers) {
  server_->create(kEdgeNodes, edge_node("node-a", {kCloud}));
  ASSERT_FALSE(
      StateDir(state_dir_.path())
          .replace(firewall::kDesiredStateFile, firewall::encode_desired({{kStranger}, {}})));
  server_->go_down();
  start();
  EXPECT_TRUE(stranger_allowed()) << "the saved state is in force before any answer";
  EXPECT_FALSE(cloud_allowed());
  ASSERT_TRUE(eventually([&] { return tether_->session_stats().failures >= 2; }));
  EXPECT_TRUE(stranger_allowed()) << "and stays while the cloud is unreachable";
  on_io([&] {
    EXPECT_TRUE(local_condition_is(condition_type::kFirewallInSync, ConditionStatus::kTrue,
                                   "SavedStateApplied"));
  });

  server_->come_back();
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 1; }));
  EXPECT_TRUE(cloud_allowed());
  EXPECT_FALSE(stranger_allowed());
}

// A backend whose next apply, once held, waits for the release: a slow
// ufw apply in miniature. start_held_apply() brings the tether to the
// point where the cloud's source is being applied and held.
class TetherSlowApply : public TetherKernel {
 protected:
  void start_held_apply() {
    make_backend_ = [this](const FirewallConfig&) -> std::unique_ptr<firewall::Backend> {
      auto b = std::make_unique<FakeBackend>();
      b->during_apply = [this, released = released_] {
        if (held_.exchange(false)) released.wait();
      };
      return b;
    };
    server_->create(kEdgeNodes, edge_node("node-a", {kStranger}));
    start();
    ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 1; }));
    held_ = true;
    set_sources({kCloud});
    ASSERT_TRUE(eventually([&] { return keeper_->busy() && !held_; }));
  }
  void release() { release_.set_value(); }
  // On the event loop (inside eventually(), or through on_io()).
  bool firewall_condition_is(ConditionStatus status, std::string_view reason) {
    return local_condition_is(condition_type::kFirewallInSync, status, reason);
  }

  std::promise<void> release_;
  std::shared_future<void> released_ = release_.get_future().share();
  std::atomic<bool> held_ = false;
};

// A slow apply overtaken by a spec that is rejected: the rejection is what
// FirewallInSync says, not the older apply's success when it ends (found
// by review: observedGeneration then named the rejected spec while the
// condition said Applied).
TEST_F(TetherSlowApply, AnApplyThatEndsAfterANewerSpecWasRejectedDoesNotSpeakForIt) {
  start_held_apply();
  set_sources({"not-a-cidr"});
  ASSERT_TRUE(
      eventually([&] { return firewall_condition_is(ConditionStatus::kFalse, "InvalidSpec"); }));
  release();
  ASSERT_TRUE(eventually([&] { return !keeper_->busy(); }));
  EXPECT_TRUE(on_io([&] { return firewall_condition_is(ConditionStatus::kFalse, "InvalidSpec"); }));
  EXPECT_EQ(on_io([&] { return tether_->stats().specs_applied; }), 2u) << "still counted";
}

// A spec that changes only another part (the rotate token) while the apply
// runs takes its answer over: it still sets FirewallInSync when it ends.
TEST_F(TetherSlowApply, ASpecWithTheSameFirewallWaitsForTheApplyInFlight) {
  start_held_apply();
  auto node = *server_->get(kNodeA);
  node["spec"].as_object()["linkerd"] = json::object{{"rotate", "2026-12-02"}};
  server_->update(kNodeA, node);
  ASSERT_TRUE(eventually([&] { return tether_->rotate_token() == "2026-12-02"; }));
  release();
  EXPECT_TRUE(eventually([&] { return firewall_condition_is(ConditionStatus::kTrue, "Applied"); }));
}

}  // namespace
}  // namespace tetherd::test
