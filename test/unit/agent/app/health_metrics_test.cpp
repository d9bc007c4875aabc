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

}  // namespace
}  // namespace tetherd
