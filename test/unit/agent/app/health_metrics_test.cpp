// The firewall's record on the metrics page: a series per filtered port and
// per cloud network, never per refused address.

#include "agent/app/health_metrics.h"

#include <gtest/gtest.h>

namespace tetherd {
namespace {

TEST(HealthMetrics, TheRecordIsCountedPerPortAndTheCloudsLastConnectionPerNetwork) {
  MetricsInputs in;
  EvidenceSummary e;
  e.ports = {{4143, 0, 0}, {4191, 40, 900}, {6443, 2, 3}};
  e.cloud_last = {{"198.51.100.0/24", std::chrono::seconds(20)}};
  in.evidence = e;
  in.evidence_read_at = WallTime(std::chrono::seconds(1'764'806'420));
  const std::string page = render_metrics(in);
  for (const char* line :
       {"# TYPE tetherd_firewall_refused_connections gauge\n",
        "tetherd_firewall_refused_connections{port=\"4191\"} 40\n",
        "tetherd_firewall_refused_connections{port=\"4143\"} 0\n",
        "tetherd_firewall_cloud_connections{port=\"4191\"} 900\n",
        "tetherd_firewall_cloud_last_connection_timestamp_seconds{network=\"198.51.100.0/24\"} "
        "1764806400\n"})
    EXPECT_NE(page.find(line), std::string::npos) << line << "\nin:\n" << page;
  EXPECT_EQ(render_metrics(MetricsInputs{}).find("tetherd_firewall_refused"), std::string::npos)
      << "no record read (ufw, none): no series";
}

// The tunnel's families appear with a tunnel, and only then.
TEST(HealthMetrics, TheTunnelsServersDialsAndBytes) {
  MetricsInputs in;
  EXPECT_EQ(render_metrics(in).find("tetherd_tunnel"), std::string::npos);
  tunnel::TunnelReport t;
  t.servers_wanted = 2;
  t.servers = {"server-0"};
  t.totals.connections = 3;
  t.totals.dials = 7;
  t.totals.dials_refused = 2;
  t.totals.dials_failed = 1;
  t.totals.bytes_to_destinations = 1000;
  t.totals.bytes_to_server = 5000;
  t.totals.bytes_waiting = 12;
  in.tunnel = t;
  const std::string text = render_metrics(in);
  for (const char* sample :
       {"\ntetherd_tunnel_servers 2\n", "\ntetherd_tunnel_servers_connected 1\n",
        "\ntetherd_tunnel_connections 3\n", "\ntetherd_tunnel_dials_total{result=\"served\"} 7\n",
        "\ntetherd_tunnel_dials_total{result=\"refused\"} 2\n",
        "\ntetherd_tunnel_dials_total{result=\"failed\"} 1\n",
        "\ntetherd_tunnel_bytes_total{direction=\"to_destinations\"} 1000\n",
        "\ntetherd_tunnel_bytes_total{direction=\"to_servers\"} 5000\n",
        "\ntetherd_tunnel_waiting_bytes 12\n", "# TYPE tetherd_tunnel_dials_total counter\n"})
    EXPECT_NE(text.find(sample), std::string::npos) << sample << "\n" << text;
}

}  // namespace
}  // namespace tetherd
