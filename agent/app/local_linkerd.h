#pragma once
// linkerd in the local k3s, as both binaries reach it: a client for
// cluster.kubeconfig (k3s's admin kubeconfig by default, mTLS) and the
// IssuerRotation over it. The daemon runs the rotation on its triggers;
// `tetherctl certs check|rotate` runs one pass itself.

#include <memory>

#include <boost/asio/io_context.hpp>

#include "agent/app/issuer_rotation.h"
#include "agent/config/config.h"
#include "agent/core/result.h"
#include "agent/kube/https_client.h"
#include "agent/kube/kube_client.h"

namespace tetherd {

class LocalLinkerd {
 public:
  // An error says which kubeconfig could not be used and why. Needs
  // config.linkerd; without config.cluster, k3s's default kubeconfig.
  static Result<std::unique_ptr<LocalLinkerd>> create(boost::asio::io_context& io,
                                                      const Clock& clock, Log& log,
                                                      const Config& config,
                                                      IssuerRotationTiming timing = {},
                                                      const kube::ClientMaker& connect = {});

  IssuerRotation& rotation() { return rotation_; }
  const std::string& kubeconfig() const { return kubeconfig_; }

 private:
  LocalLinkerd(boost::asio::io_context& io, const Clock& clock, Log& log, const Config& config,
               std::unique_ptr<kube::HttpsClient> http, std::string kubeconfig,
               IssuerRotationTiming timing);

  std::string kubeconfig_;
  std::unique_ptr<kube::HttpsClient> http_;
  kube::KubeClient kube_;
  IssuerRotation rotation_;
};

}  // namespace tetherd
