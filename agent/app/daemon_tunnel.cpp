// The daemon's tunnel (`tunnel`: tetherd as a konnectivity agent): made
// from the configuration and the kubeconfig whose credentials it presents,
// remade when either changes, its state said as TunnelConnected.
#include <algorithm>

#include <boost/asio/ssl/context.hpp>

#include "agent/app/daemon.h"
#include "agent/kube/https_client.h"
#include "agent/tunnel/tunnel_agent.h"

namespace tetherd {

namespace {

const std::string& credentials_path(const Config& c) {
  return c.tunnel->kubeconfig.empty() ? c.control_plane->kubeconfig : c.tunnel->kubeconfig;
}

}  // namespace

// The tunnel as `config_` and its kubeconfig are now: a new agent when
// either changed (the old one drained and kept until it has ended), new
// credentials for new connections when only the files' contents did.
void Daemon::sync_tunnel() {
  if (stopping_) return;
  const std::optional<TunnelConfig>& wanted = config_.tunnel;
  if (!wanted) {
    if (tunnel_) {
      tunnel_->stop();
      retired_tunnels_.push_back(std::move(tunnel_));
      log_.notice("tunnel-off", "the tunnel is off (no tunnel section)");
    }
    tunnel_settings_.reset();
    tunnel_files_.clear();
    tunnel_gate_.let_go();
    tunnel_gate_.reset();
    conditions_->forget(condition_type::kTunnelConnected);
    return;
  }
  const std::string& path = credentials_path(config_);
  auto kubeconfig = load_kubeconfig(path);
  std::shared_ptr<boost::asio::ssl::context> tls;
  auto address = kube::parse_server_address(wanted->server, "");
  std::string why;
  if (!kubeconfig) {
    why = kubeconfig.error().message;
  } else if (auto made = kube::client_context(*kubeconfig); !made) {
    why = kube::describe(made.error());
  } else if (!address) {
    why = kube::describe(address.error());
  } else {
    tls = std::move(*made);
  }
  if (!tls) {
    if (tunnel_) {
      // The agent in force keeps its credentials (those it has work).
      credential_problem("tunnel.kubeconfig", path + ": " + why);
      return;
    }
    log_.error("tunnel-config-invalid",
               "cannot make the tunnel: " + why + " (fix it, then reload tetherd)",
               {{"KUBECONFIG", path}});
    conditions_->report(condition_type::kTunnelConnected, ConditionStatus::kFalse,
                        "CredentialsInvalid", why);
    return;
  }
  credential_problem("tunnel.kubeconfig", "");
  tunnel_files_ = kubeconfig->files;
  tunnel_files_.push_back(path);
  tunnel::TunnelSettings settings;
  settings.server = std::move(*address);
  settings.server_url = wanted->server;
  settings.identity.agent_id = wanted->agent_id.empty() ? config_.node_name : wanted->agent_id;
  settings.identity.identifiers = wanted->agent_identifiers;
  settings.destinations = wanted->destinations;
  settings.relay.max_connections = wanted->max_connections;
  settings.relay.idle_timeout = wanted->idle_timeout;
  settings.connect_ids = tunnel_connect_ids_;
  // The same settings and server: the agent in force goes on, with the
  // files' new credentials for its new connections.
  if (tunnel_ && tunnel_settings_ && *tunnel_settings_ == *wanted &&
      tunnel_identity_ == settings.identity.agent_id) {
    tunnel_->use_tls(std::move(tls));
    return;
  }
  if (tunnel_) {
    tunnel_->stop();
    retired_tunnels_.push_back(std::move(tunnel_));
  }
  // Another server's losses are not this one's.
  if (tunnel_settings_ && tunnel_settings_->server != wanted->server) tunnel_gate_.reset();
  tunnel_settings_ = *wanted;
  tunnel_identity_ = settings.identity.agent_id;
  tunnel_gate_.let_go();
  tunnel_ = std::make_unique<tunnel::TunnelAgent>(io_.get_executor(), clock_, log_,
                                                  std::move(settings), std::move(tls));
  tunnel_->on_report([this](const tunnel::TunnelReport& r) { tunnel_reported(r); });
  conditions_->report(condition_type::kTunnelConnected, ConditionStatus::kFalse, "Connecting",
                      "dialling the konnectivity servers at " + wanted->server);
  tunnel_->start();
}

void Daemon::tunnel_reported(const tunnel::TunnelReport& r) {
  if (stopping_ || !config_.tunnel) return;
  const std::string held = std::to_string(r.servers.size()) + " of " +
                           std::to_string(r.servers_wanted) + " konnectivity server" +
                           (r.servers_wanted == 1 ? "" : "s") + " held at " +
                           config_.tunnel->server;
  // A loss counts when the ports follow the tunnel, a server of several
  // for its share (a rolling restart of them all is one loss).
  tunnel_gate_.held(r.connected(), config_.firewall.close_when_tunnelled
                                       ? 1.0 / std::max(r.servers_wanted, 1)
                                       : 0.0);
  if (r.connected()) {
    conditions_->report(condition_type::kTunnelConnected, ConditionStatus::kTrue, "Connected",
                        held);
  } else {
    conditions_->report(condition_type::kTunnelConnected, ConditionStatus::kFalse,
                        r.servers.empty() ? "Disconnected" : "Partial",
                        held + (r.problem.empty() ? "" : ": " + r.problem));
  }
  sync_tunnelled_ports(held);
}

void Daemon::sync_tunnelled_ports(const std::string& why) {
  if (stopping_) return;
  const bool close =
      config_.firewall.close_when_tunnelled && tunnel_ && tunnel_gate_.close() && tunnel_settings_;
  // The ports the agent in force serves (a reload whose new tunnel could
  // not be made keeps the old one, with its destinations).
  std::vector<std::uint16_t> ports =
      close ? tunnelled_ports(config_.firewall.ports, tunnel_settings_->destinations)
            : std::vector<std::uint16_t>{};
  if (ports == firewall_.closed_ports()) return;
  if (!close && !config_.firewall.close_when_tunnelled) {
    firewall_.set_closed_ports({}, "firewall.closeWhenTunnelled is off");
  } else {
    const std::string state = close ? "the tunnel holds its servers"
                              : tunnel_gate_.is_held() && tunnel_gate_.suppressed()
                                  ? "the tunnel is damped"
                                  : "the tunnel is not up";
    firewall_.set_closed_ports(std::move(ports), why.empty() ? state : state + ": " + why);
  }
}

}  // namespace tetherd
