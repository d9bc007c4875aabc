#pragma once
// `tetherctl certs check` and `certs rotate`: what a pass of the
// IssuerRotation found, for a terminal (a short table) or a script (JSON).

#include <string>

#include <boost/json/object.hpp>

#include "agent/app/issuer_rotation.h"
#include "agent/core/node_status.h"

namespace tetherd {

boost::json::object certs_to_json(const IssuerReport& report);
boost::json::object rotation_to_json(const RotationResult& result);
std::string render_certs(const IssuerReport& report);
std::string render_rotation(const RotationResult& result);

// For status.certificates and the expiry metrics: the issuer in force (the
// new one after a rotation) named after its Secret, then each trust anchor
// named by its subject's CN (its subject when there is no CN).
std::vector<CertificateExpiry> certificate_statuses(const RotationResult& result);

}  // namespace tetherd
