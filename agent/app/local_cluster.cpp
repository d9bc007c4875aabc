#include "agent/app/local_cluster.h"

#include "agent/config/kubeconfig.h"

namespace tetherd {

LocalCluster::LocalCluster(boost::asio::io_context& io, const Clock& clock, Log& log,
                           const Config& config, IssuerRotationTiming timing,
                           kube::ClientMaker connect)
    : io_(io),
      clock_(clock),
      log_(log),
      config_(config),
      timing_(std::move(timing)),
      connect_(std::move(connect)) {}

bool LocalCluster::complete() const {
  return (!config_.cluster || k3s_) && (!config_.linkerd || linkerd_);
}

void LocalCluster::stop() {
  if (linkerd_) linkerd_->rotation().stop();
}

bool LocalCluster::finished() const {
  return (!linkerd_ || !linkerd_->rotation().busy()) && k3s_.use_count() <= 1;
}

bool LocalCluster::attach() {
  const bool k3s = attach_k3s();
  const bool linkerd = attach_linkerd();
  return k3s || linkerd;
}

bool LocalCluster::attach_k3s() {
  if (!config_.cluster || k3s_) return false;
  const std::string& path = config_.cluster->kubeconfig;
  std::string problem;
  if (auto kubeconfig = load_kubeconfig(path); !kubeconfig) {
    problem = "cannot use k3s's kubeconfig " + path + ": " + kubeconfig.error().message;
  } else if (auto http = connect_ ? connect_(*kubeconfig)
                                  : kube::HttpsClient::create(io_.get_executor(), *kubeconfig);
             !http) {
    problem = "cannot use k3s's kubeconfig " + path + ": " + kube::describe(http.error());
  } else {
    k3s_ = std::move(*http);
    kubeconfig_ = std::move(*kubeconfig);
  }
  if (k3s_) {
    if (!k3s_problem_.empty())
      log_.info("cluster-config-loaded", "k3s's kubeconfig " + path + " is usable now",
                {{"KUBECONFIG", path}});
    k3s_problem_.clear();
    return true;
  }
  if (problem != k3s_problem_) {
    log_.warning("cluster-config-invalid", problem + " (tried again every 10 s)",
                 {{"KUBECONFIG", path}});
  }
  k3s_problem_ = std::move(problem);
  return false;
}

bool LocalCluster::attach_linkerd() {
  if (!config_.linkerd || linkerd_) return false;
  auto made = LocalLinkerd::create(io_, clock_, log_, config_, timing_, connect_);
  if (made) {
    linkerd_ = std::move(*made);
    if (!linkerd_problem_.empty())
      log_.info("linkerd-config-loaded",
                "the local cluster's kubeconfig is usable now: linkerd's issuer is watched");
    linkerd_problem_.clear();
    return true;
  }
  if (made.error().message != linkerd_problem_) {
    log_.warning("linkerd-config-invalid", made.error().message +
                                               "; linkerd's issuer is not watched until it can "
                                               "be used (tried again every 10 s)");
  }
  linkerd_problem_ = made.error().message;
  return false;
}

}  // namespace tetherd
