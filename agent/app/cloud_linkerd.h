#pragma once
// What the cloud holds for linkerd: spec.linkerd's references and the
// objects they name in the node's namespace there, as the tether last saw
// them. The tether follows them; the issuer rotation takes them in.

#include <string>

#include "agent/core/edge_node.h"
#include "agent/kube/object_follower.h"

namespace tetherd {

struct CloudLinkerd {
  std::string namespace_;  // the node's namespace in the cloud
  LinkerdRefs refs;
  kube::FollowedObject issuer;  // the Secret refs.issuer_secret
  kube::FollowedObject bundle;  // the ConfigMap refs.bundle_config_map

  bool operator==(const CloudLinkerd&) const = default;
  bool issuer_from_cloud() const { return !refs.issuer_secret.empty(); }
  bool bundle_from_cloud() const { return !refs.bundle_config_map.empty(); }
};

}  // namespace tetherd
