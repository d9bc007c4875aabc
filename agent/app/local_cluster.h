#pragma once
// The local k3s as the daemon reaches it: the K3sReady probe's client and
// linkerd's issuer rotation, both made from cluster.kubeconfig.
//
// tetherd starts before k3s, so that the saved allowlist is in the kernel
// before 6443 listens; k3s writes its kubeconfig as it starts. So what cannot
// be made at start is made later: attach() tries again (the daemon calls it
// on its 10 s tick) until everything the configuration asks for exists.

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "agent/app/local_linkerd.h"
#include "agent/config/config.h"
#include "agent/config/kubeconfig.h"
#include "agent/core/clock.h"
#include "agent/core/log.h"
#include "agent/kube/https_client.h"

namespace tetherd {

class LocalCluster {
 public:
  // Makes nothing yet: the first attach() does.
  // `connect`: how its clients of k3s are made (empty: from the kubeconfig's
  // TLS material, HttpsClient::create).
  LocalCluster(boost::asio::io_context& io, const Clock& clock, Log& log, const Config& config,
               IssuerRotationTiming timing = {}, kube::ClientMaker connect = {});

  // Makes what is still missing from the kubeconfig as it is now. A problem
  // is logged once (again only when it changes), its end once. Returns
  // whether something new was made.
  bool attach();
  bool complete() const;
  // Stops the issuer's rotation (a reload replaces this object).
  void stop();
  // Nothing of this object is in use any more: it may be destroyed.
  bool finished() const;

  // Null until made (or when the configuration has no `cluster`, resp.
  // `linkerd`, section).
  const std::shared_ptr<kube::HttpsClient>& k3s() const { return k3s_; }
  IssuerRotation* issuer() const { return linkerd_ ? &linkerd_->rotation() : nullptr; }
  // What k3s() was made from (nullopt until it was).
  const std::optional<Kubeconfig>& kubeconfig() const { return kubeconfig_; }
  // Why k3s() is null, for the K3sReady condition; "" once it is not.
  const std::string& k3s_problem() const { return k3s_problem_; }

 private:
  bool attach_k3s();
  bool attach_linkerd();

  boost::asio::io_context& io_;
  const Clock& clock_;
  Log& log_;
  const Config config_;
  IssuerRotationTiming timing_;
  kube::ClientMaker connect_;
  std::shared_ptr<kube::HttpsClient> k3s_;
  std::optional<Kubeconfig> kubeconfig_;
  std::unique_ptr<LocalLinkerd> linkerd_;
  std::string k3s_problem_;
  std::string linkerd_problem_;
};

}  // namespace tetherd
