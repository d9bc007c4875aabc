#pragma once
// `tetherctl certs check` and `certs rotate`: what a pass of the
// IssuerRotation found, for a terminal (a short table) or a script (JSON).

#include <string>

#include <boost/json/object.hpp>

#include "agent/app/issuer_rotation.h"

namespace tetherd {

boost::json::object certs_to_json(const IssuerReport& report);
boost::json::object rotation_to_json(const RotationResult& result);
std::string render_certs(const IssuerReport& report);
std::string render_rotation(const RotationResult& result);

}  // namespace tetherd
