#include "agent/app/health_metrics.h"

#include <cctype>

#include "agent/core/prometheus_text.h"

namespace tetherd {
namespace {

double seconds(Duration d) {
  return std::chrono::duration<double>(d).count();
}

double unix_seconds(WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void counter(MetricsPage& page, std::string_view name, std::string_view help, std::uint64_t value) {
  page.family(name, MetricType::kCounter, help);
  page.sample(name, {}, value);
}

void gauge(MetricsPage& page, std::string_view name, std::string_view help, SampleValue value) {
  page.family(name, MetricType::kGauge, help);
  page.sample(name, {}, value);
}

}  // namespace

std::string render_metrics(const MetricsInputs& in) {
  MetricsPage page;
  page.family("tetherd_build_info", MetricType::kGauge,
              "tetherd's version, as a label; the value is always 1.");
  page.sample("tetherd_build_info", {{"version", in.status.agent_version}}, 1);

  page.family("tetherd_condition", MetricType::kGauge,
              "The node's conditions (as in its EdgeNode's status): 1 for the status it has, 0 "
              "for the others.");
  for (const Condition& c : in.status.conditions.all()) {
    for (ConditionStatus s :
         {ConditionStatus::kTrue, ConditionStatus::kFalse, ConditionStatus::kUnknown}) {
      const std::string status = lower(to_string(s));
      page.sample("tetherd_condition", {{"type", c.type}, {"status", status}},
                  c.status == s ? 1 : 0);
    }
  }
  page.family("tetherd_condition_last_transition_timestamp_seconds", MetricType::kGauge,
              "When each condition last changed status, in seconds since the Unix epoch.");
  for (const Condition& c : in.status.conditions.all()) {
    page.sample("tetherd_condition_last_transition_timestamp_seconds", {{"type", c.type}},
                unix_seconds(c.last_transition));
  }

  page.family("tetherd_certificate_expiry_timestamp_seconds", MetricType::kGauge,
              "notAfter of the certificates tetherd watches (linkerd's issuer and trust "
              "anchors, the node's client certificate), in seconds since the Unix epoch.");
  for (const CertificateExpiry& c : in.status.certificates) {
    page.sample("tetherd_certificate_expiry_timestamp_seconds",
                {{"name", c.name}, {"role", c.role}}, unix_seconds(c.not_after));
  }
  counter(page, "tetherd_issuer_rotations_total", "linkerd issuers tetherd wrote.", in.rotations);

  gauge(page, "tetherd_firewall_sources",
        "Source networks the firewall allows on the filtered ports, as applied.",
        static_cast<std::uint64_t>(in.status.firewall_sources));

  if (in.evidence) {
    page.family("tetherd_firewall_refused_connections", MetricType::kGauge,
                "First packets of connections refused on each filtered port, in the kernel's "
                "records of the last 10 minutes (retries included).");
    for (const auto& p : in.evidence->ports)
      page.sample("tetherd_firewall_refused_connections", {{"port", std::to_string(p.port)}},
                  p.refused);
    page.family("tetherd_firewall_cloud_connections", MetricType::kGauge,
                "The cloud's new connections on each filtered port, in the kernel's records "
                "(each source's, kept a day after its last).");
    for (const auto& p : in.evidence->ports)
      page.sample("tetherd_firewall_cloud_connections", {{"port", std::to_string(p.port)}},
                  p.accepted);
    page.family("tetherd_firewall_cloud_last_connection_timestamp_seconds", MetricType::kGauge,
                "When each of the cloud's networks last opened a connection on a filtered port "
                "(within a day), in seconds since the Unix epoch.");
    for (const auto& l : in.evidence->cloud_last)
      page.sample("tetherd_firewall_cloud_last_connection_timestamp_seconds",
                  {{"network", l.network}}, unix_seconds(in.evidence_read_at - l.ago));
  }

  if (in.control_plane) {
    gauge(page, "tetherd_controlplane_connected",
          "1 while the session with the control plane watches the EdgeNode, else 0.",
          in.connected ? 1 : 0);
    counter(page, "tetherd_controlplane_reconnects_total",
            "Times the session with the control plane was established again after the first.",
            in.reconnects);
    counter(page, "tetherd_status_writes_total", "EdgeNode status writes that succeeded.",
            in.status_writes);
    counter(page, "tetherd_status_write_failures_total", "EdgeNode status writes that failed.",
            in.status_write_failures);
    counter(page, "tetherd_lease_renewals_total", "Lease renewals that succeeded.",
            in.lease_renewals);
    counter(page, "tetherd_lease_renewal_failures_total", "Lease renewals that failed.",
            in.lease_failures);
  }

  if (in.tunnel) {
    const tunnel::TunnelReport& t = *in.tunnel;
    gauge(page, "tetherd_tunnel_servers",
          "konnectivity servers the tunnel should hold (their serverCount).",
          static_cast<std::uint64_t>(t.servers_wanted));
    gauge(page, "tetherd_tunnel_servers_connected", "konnectivity servers the tunnel holds.",
          static_cast<std::uint64_t>(t.servers.size()));
    gauge(page, "tetherd_tunnel_connections",
          "Connections the servers opened through the tunnel, open now.",
          static_cast<std::uint64_t>(t.totals.connections));
    page.family("tetherd_tunnel_dials_total", MetricType::kCounter,
                "Dials the servers asked for: served, refused (not an allowed destination, or "
                "over tunnel.maxConnections), or failed (the destination did not answer).");
    page.sample("tetherd_tunnel_dials_total", {{"result", "served"}}, t.totals.dials);
    page.sample("tetherd_tunnel_dials_total", {{"result", "refused"}}, t.totals.dials_refused);
    page.sample("tetherd_tunnel_dials_total", {{"result", "failed"}}, t.totals.dials_failed);
    page.family("tetherd_tunnel_bytes_total", MetricType::kCounter,
                "Bytes carried through the tunnel: to the node's destinations, and back to the "
                "servers.");
    page.sample("tetherd_tunnel_bytes_total", {{"direction", "to_destinations"}},
                t.totals.bytes_to_destinations);
    page.sample("tetherd_tunnel_bytes_total", {{"direction", "to_servers"}},
                t.totals.bytes_to_server);
    gauge(page, "tetherd_tunnel_waiting_bytes",
          "Bytes from the servers not yet taken by their destinations (bounded by the "
          "window).",
          static_cast<std::uint64_t>(t.totals.bytes_waiting));
  }

  counter(page, "tetherd_resumes_total", "Resumes from suspend tetherd noticed.", in.resumes);
  counter(page, "tetherd_health_rounds_total", "Health probe rounds run.", in.health_rounds);
  counter(page, "tetherd_condition_transitions_total",
          "Condition status changes (each is a line in the journal).", in.condition_transitions);
  page.family("tetherd_probe_duration_seconds", MetricType::kGauge,
              "How long each probe took in the last round.");
  if (in.k3s_probe)
    page.sample("tetherd_probe_duration_seconds", {{"probe", "k3s"}}, seconds(*in.k3s_probe));
  if (in.gateway_probe) {
    page.sample("tetherd_probe_duration_seconds", {{"probe", "linkerd_gateway"}},
                seconds(*in.gateway_probe));
  }
  page.sample("tetherd_probe_duration_seconds", {{"probe", "local"}}, seconds(in.local_probe));

  if (in.status.linkerd) {
    page.family("tetherd_mesh_proxies", MetricType::kGauge,
                "Meshed pods on this node by their proxy's identity certificate: all, expired, "
                "unreadable (metrics that could not be read).");
    page.sample("tetherd_mesh_proxies", {{"state", "all"}}, in.status.linkerd->meshed);
    page.sample("tetherd_mesh_proxies", {{"state", "expired"}}, in.status.linkerd->expired);
    page.sample("tetherd_mesh_proxies", {{"state", "unreadable"}}, in.status.linkerd->unreadable);
  }
  if (in.mesh) {
    page.family("tetherd_mesh_evictions_total", MetricType::kCounter,
                "Evictions of pods whose proxy's certificate expired, by answer: evicted, "
                "refused (a PodDisruptionBudget allowed none; tried again), failed.");
    page.sample("tetherd_mesh_evictions_total", {{"result", "evicted"}}, in.mesh->evictions);
    page.sample("tetherd_mesh_evictions_total", {{"result", "refused"}},
                in.mesh->evictions_refused);
    page.sample("tetherd_mesh_evictions_total", {{"result", "failed"}}, in.mesh->eviction_failures);
  }

  if (in.process) append_process_metrics(page, *in.process);
  return page.str();
}

}  // namespace tetherd
