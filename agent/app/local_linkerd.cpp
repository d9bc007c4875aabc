#include "agent/app/local_linkerd.h"

#include "agent/config/kubeconfig.h"

namespace tetherd {

Result<std::unique_ptr<LocalLinkerd>> LocalLinkerd::create(boost::asio::io_context& io,
                                                           const Clock& clock, Log& log,
                                                           const Config& config,
                                                           IssuerRotationTiming timing,
                                                           const kube::ClientMaker& connect) {
  const std::string path = config.cluster ? config.cluster->kubeconfig : ClusterConfig{}.kubeconfig;
  auto kubeconfig = load_kubeconfig(path);
  if (!kubeconfig)
    return make_error("cannot use the local cluster's kubeconfig: " + kubeconfig.error().message);
  auto http =
      connect ? connect(*kubeconfig) : kube::HttpsClient::create(io.get_executor(), *kubeconfig);
  if (!http)
    return make_error("cannot use the local cluster's kubeconfig " + path + ": " +
                      kube::describe(http.error()));
  return std::unique_ptr<LocalLinkerd>(
      new LocalLinkerd(io, clock, log, config, std::move(*http), path, timing));
}

LocalLinkerd::LocalLinkerd(boost::asio::io_context& io, const Clock& clock, Log& log,
                           const Config& config, std::unique_ptr<kube::HttpsClient> http,
                           std::string kubeconfig, IssuerRotationTiming timing)
    : kubeconfig_(std::move(kubeconfig)),
      http_(std::move(http)),
      kube_(*http_),
      rotation_(io, kube_, clock, log, *config.linkerd, timing) {}

}  // namespace tetherd
