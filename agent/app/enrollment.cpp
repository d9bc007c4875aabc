#include "agent/app/enrollment.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/adapters/csr.h"
#include "agent/adapters/state_dir.h"
#include "agent/adapters/x509.h"
#include "agent/config/cluster_info.h"
#include "agent/config/config_loader.h"
#include "agent/config/kubeconfig.h"
#include "agent/config/kubeconfig_writer.h"
#include "agent/config/small_file.h"
#include "agent/core/client_cert.h"
#include "agent/core/csr_status.h"
#include "agent/core/duration.h"
#include "agent/core/kube_time.h"
#include "agent/core/node_csr.h"
#include "agent/core/timer.h"
#include "agent/kube/kube_client.h"

namespace tetherd {
namespace {

using boost::asio::awaitable;

constexpr const char* kCsrs = kCsrCollection;
constexpr char kClusterInfo[] = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

EnrollOutcome outcome(EnrollExit exit, std::string message) {
  return {exit, std::move(message)};
}

std::string file_name(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

// --- what is trusted ----------------------------------------------------------

struct TrustedCa {
  std::string pem;
  std::string source;  // "--ca-file PATH", "its TLS chain", "kube-public/cluster-info"
};

std::string pin_of(const CertificateInfo& info) {
  return "sha256:" + info.spki_sha256;
}

// The CA certificates among `candidates` (PEM blocks) whose public key is `pin`.
std::optional<std::string> matching(const std::vector<std::string>& candidates,
                                    const std::string& pin, std::vector<std::string>& seen) {
  for (const std::string& pem : candidates) {
    auto certs = x509::parse_certificates(pem, "a certificate the server showed");
    if (!certs) continue;
    for (const auto& cert : *certs) {
      const CertificateInfo info = x509::describe(cert);
      // A root, signed by the pinned key itself: a certificate that only
      // carries the key (made by anyone) must not bring its own terms.
      if (!info.is_ca || !x509::self_signed(cert)) continue;
      if (info.spki_sha256 == pin) return x509::to_pem(cert);
      seen.push_back(pin_of(info));
    }
  }
  return std::nullopt;
}

// kubeadm's discovery: what the server shows before it is trusted, matched
// against the pin. Nothing is sent but an anonymous GET.
awaitable<Result<TrustedCa>> discover_ca(boost::asio::any_io_executor executor,
                                         const std::string& server, const std::string& pin,
                                         EnrollExit& exit) {
  auto fail = [&exit](EnrollExit e, std::string m) {
    exit = e;
    return Result<TrustedCa>(boost::system::in_place_error, make_error(std::move(m)));
  };
  auto probe = kube::HttpsClient::create_unverified(executor, server);
  if (!probe) co_return fail(EnrollExit::kUsage, describe(probe.error()));
  kube::HttpRequest request;
  request.target = kClusterInfo;
  auto answer = co_await (*probe)->send(std::move(request));
  const std::vector<std::string> chain = (*probe)->peer_chain();
  if (!answer && chain.empty())
    co_return fail(EnrollExit::kError, "cannot reach " + server + ": " + describe(answer.error()));
  std::vector<std::string> seen;
  if (auto ca = matching(chain, pin, seen)) co_return TrustedCa{*ca, "its TLS chain"};
  std::string cluster_info = "kube-public/cluster-info: ";
  if (!answer) {
    cluster_info += describe(answer.error());
  } else if (answer->status != 200) {
    cluster_info += "HTTP " + std::to_string(answer->status) + " (not readable anonymously)";
  } else if (auto pem = cluster_info_ca(answer->body); !pem) {
    cluster_info = pem.error().message;
  } else if (auto ca = matching({*pem}, pin, seen)) {
    co_return TrustedCa{*ca, "kube-public/cluster-info"};
  } else {
    cluster_info += "read";
  }
  if (seen.empty())
    co_return fail(EnrollExit::kUntrustedServer,
                   server + " showed no CA certificate to check the pin against (its TLS chain " +
                       "holds its own certificate only; " + cluster_info +
                       "): give the CA with --ca-file");
  std::string keys;
  for (const auto& s : seen)
    keys += (keys.empty() ? "" : ", ") + s;
  co_return fail(EnrollExit::kUntrustedServer,
                 "the CA " + server + " showed does not match --ca-cert-hash sha256:" + pin +
                     ": its CA keys are " + keys +
                     ". Is this the right server? Check the hash with the cloud's admin");
}

Result<TrustedCa> ca_from_file(const std::string& path) {
  auto text = read_small_file(path, x509::kMaxBundleBytes, path);
  if (!text) return text.error();
  auto certs = x509::parse_certificates(*text, path);
  if (!certs) return certs.error();
  for (const auto& cert : *certs) {
    const CertificateInfo info = x509::describe(cert);
    if (!info.is_ca)
      return make_error(path + ": " + info.subject +
                        " is not a CA certificate; give the cloud cluster's CA");
  }
  return TrustedCa{*text, "--ca-file " + path};
}

// --- what is there already ----------------------------------------------------

// Why the node's current credentials do not do (nullopt: they do).
std::optional<std::string> not_enrolled(const CredentialPaths& paths, const EnrollOptions& options,
                                        const std::string& user, WallTime now) {
  if (!std::filesystem::exists(paths.kubeconfig)) return "no kubeconfig at " + paths.kubeconfig;
  auto k = load_kubeconfig(paths.kubeconfig);
  if (!k) return k.error().message;
  if (!same_server(k->server, options.server)) return paths.kubeconfig + " is for " + k->server;
  auto cas = x509::parse_certificates(k->ca_pem, paths.kubeconfig + " CA");
  if (!cas) return cas.error().message;
  std::set<std::string> trusted;
  for (const auto& c : *cas)
    trusted.insert(x509::describe(c).spki_sha256);
  bool ca_ok = false;
  if (!options.ca_cert_hash.empty()) {
    auto pin = parse_ca_pin(options.ca_cert_hash);
    ca_ok = pin && trusted.contains(*pin);
  } else if (auto given = ca_from_file(options.ca_file)) {
    auto certs = x509::parse_certificates(given->pem, options.ca_file);
    ca_ok = certs && std::all_of(certs->begin(), certs->end(), [&](const auto& c) {
              return trusted.contains(x509::describe(c).spki_sha256);
            });
  }
  if (!ca_ok) return paths.kubeconfig + " trusts another CA";
  auto certs = x509::parse_certificates(k->client_cert_pem, paths.kubeconfig + " certificate");
  if (!certs) return certs.error().message;
  auto key = x509::parse_private_key(k->client_key_pem, paths.kubeconfig + " key");
  if (!key) return key.error().message;
  const CertificateInfo info = x509::describe(certs->front());
  if (info.subject_cn != user) return "its certificate is for " + info.subject_cn;
  if (!x509::key_matches(certs->front(), *key)) return "its key does not match its certificate";
  if (now >= info.not_after)
    return "its certificate expired at " + format_kube_time(info.not_after);
  if (now < info.not_before)
    return "its certificate is valid only from " + format_kube_time(info.not_before);
  return std::nullopt;
}

// --- tetherd.yaml ---------------------------------------------------------------

// Adds controlPlane.kubeconfig to the configuration when it has no
// controlPlane; the result is checked by the loader before it is written.
Result<bool> switch_on(const std::string& config_path, const Config& config,
                       const std::string& kubeconfig, WallTime now) {
  if (config.control_plane) return false;
  auto text = read_small_file(config_path, 1 << 20, config_path);
  if (!text) return text.error();
  std::string next = *text;
  if (!next.empty() && next.back() != '\n') next += '\n';
  next += "\n# Added by `tetherctl enroll` on " + format_kube_time(now).substr(0, 10) +
          ": the cloud's control plane.\ncontrolPlane:\n  kubeconfig: " + kubeconfig + "\n";
  auto parsed = parse_config(next, {config.node_name});
  const auto* ok = std::get_if<Config>(&parsed);
  if (ok == nullptr || !ok->control_plane || ok->control_plane->kubeconfig != kubeconfig)
    return make_error("cannot add controlPlane to " + config_path +
                      " safely: add `controlPlane: {kubeconfig: " + kubeconfig +
                      "}` yourself, then reload tetherd");
  // The file itself when the name is a link; its mode and owner kept.
  std::error_code fs;
  const auto path = std::filesystem::canonical(config_path, fs);
  if (fs) return make_error("cannot resolve " + config_path + ": " + fs.message());
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return make_error("cannot read " + config_path + ": " + std::strerror(errno));
  if (auto ec = StateDir(path.parent_path().string())
                    .replace(path.filename().string(), next, st.st_mode & 07777))
    return make_error("cannot write " + path.string() + ": " + ec.message());
  if (::chown(path.c_str(), st.st_uid, st.st_gid) != 0)
    return make_error("wrote " + path.string() +
                      " but cannot give it back to its owner: " + std::strerror(errno));
  return true;
}

// --- the request ------------------------------------------------------------------

// What a refused call means to the person running enroll.
EnrollOutcome token_refused(const kube::ApiError& e, const std::string& token_file) {
  if (e.code == 401)
    return outcome(EnrollExit::kTokenRefused,
                   "the token in " + token_file +
                       " was refused (401 Unauthorized): it has expired, or it is not a token "
                       "of this cluster. Ask the admin for a new one (kubectl -n tetherd-system "
                       "create token tetherd-bootstrap) and run enroll again");
  return outcome(EnrollExit::kTokenRefused,
                 "the token in " + token_file + " may not do this (" + describe(e) +
                     "). Has packaging/kubernetes/bootstrap.yaml been applied?");
}

bool auth_error(const kube::ApiError& e) {
  return e.code == 401 || e.code == 403;
}

awaitable<void> sleep_for(boost::asio::any_io_executor executor, const Clock& clock, Duration d) {
  Timer timer(executor, clock);
  timer.expires_after(d);
  co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

// The issued certificate, checked and written with its key and the
// kubeconfig. kEnrolled with what was written; kRefused when the
// certificate is not the one asked for (the request is forgotten); kError
// when it could not be written, or the node's clock is behind its start
// (the request is kept: fix that, run again).
EnrollOutcome install(const CredentialPaths& paths, const EnrollOptions& options,
                      const TrustedCa& ca, const std::string& user, const PendingRequest& pending,
                      const std::string& certificate_pem, WallTime now) {
  const std::string what = "the certificate issued for " + pending.name;
  auto refused = [&](const std::string& why) {
    forget_pending(paths);
    return outcome(EnrollExit::kRefused,
                   what + " is refused: " + why + ". Ask the admin; run enroll again to ask anew");
  };
  auto certs = x509::parse_certificates(certificate_pem, what);
  if (!certs) return refused(certs.error().message);
  auto key = x509::parse_private_key(pending.key_pem, paths.next_key);
  if (!key) return outcome(EnrollExit::kError, key.error().message);
  const CertificateInfo info = x509::describe(certs->front());
  if (now < info.not_before)
    return outcome(EnrollExit::kError,
                   what + " is valid only from " + format_kube_time(info.not_before) +
                       ": this node's clock is behind (timedatectl). It is kept: fix the clock, "
                       "then run the same command again");
  if (auto ok = check_issued(info, x509::key_matches(certs->front(), *key),
                             {user, options.expiration.value_or(Duration::zero())}, now);
      !ok)
    return refused(ok.error().message);
  const std::string kubeconfig = render_kubeconfig({.server = options.server,
                                                    .ca_pem = ca.pem,
                                                    .client_certificate = paths.certificate,
                                                    .client_key = paths.key,
                                                    .user = user});
  if (auto r = install_issued(paths, pending, certificate_pem); !r)
    return outcome(EnrollExit::kError,
                   r.error().message + "; the request is kept: run the same command again");
  if (auto ec = StateDir(paths.dir).replace(file_name(paths.kubeconfig), kubeconfig, 0600))
    return outcome(EnrollExit::kError, "cannot write " + paths.kubeconfig + ": " + ec.message() +
                                           "; run the same command again");
  return outcome(EnrollExit::kEnrolled, "certificate " + info.serial_hex + " for " + user +
                                            ", valid until " + format_kube_time(info.not_after));
}

// Whether `k` is what enroll writes: its certificate and key are the node's files.
bool written_by_enroll(const Kubeconfig& k, const CredentialPaths& paths) {
  return std::find(k.files.begin(), k.files.end(), paths.certificate) != k.files.end() &&
         std::find(k.files.begin(), k.files.end(), paths.key) != k.files.end();
}

}  // namespace

awaitable<EnrollOutcome> enroll(boost::asio::any_io_executor executor, const EnrollOptions& options,
                                const Config& config, const Clock& clock,
                                std::function<void(const std::string&)> say) {
  const std::string user = node_user(config.node_name);
  const CredentialPaths paths = credential_paths(config, options.config_path);
  auto switched = [&](std::string done) -> EnrollOutcome {
    auto on = switch_on(options.config_path, config, paths.kubeconfig, clock.wall());
    if (!on) return outcome(EnrollExit::kError, done + "; but " + on.error().message);
    if (*on)
      done += "; controlPlane.kubeconfig added to " + options.config_path +
              " (a running tetherd takes it now)";
    return outcome(EnrollExit::kEnrolled, done);
  };

  // X.509's bound on a CN, and on the label that names the node.
  if (user.size() > 64)
    co_return outcome(EnrollExit::kBadNodeName,
                      "node.name \"" + config.node_name + "\" is too long to enroll: " + user +
                          " must fit a certificate's common name (64 bytes; node names up to 56)");

  // Held for the whole run, before anything is judged: tetherd's renewal
  // writes the same files.
  if (auto ec = StateDir(paths.dir).ensure())
    co_return outcome(EnrollExit::kError, "cannot make " + paths.dir + ": " + ec.message());
  const CredentialsLock lock(paths.dir);
  if (!lock.locked())
    co_return outcome(EnrollExit::kError,
                      "another tetherctl enroll, or tetherd renewing the "
                      "node's certificate, is writing " +
                          paths.dir + ": run the same command again in a moment");

  // 1. Nothing to do? (An install a crash cut short is finished first.)
  finish_install(paths);
  const auto why = not_enrolled(paths, options, user, clock.wall());
  if (!why)
    co_return switched(config.node_name + " is enrolled already (" + paths.kubeconfig +
                       "): nothing written");
  // Never over a kubeconfig someone else made (a token, another user).
  if (std::filesystem::exists(paths.kubeconfig) && !options.force) {
    auto k = load_kubeconfig(paths.kubeconfig);
    if (!k || !written_by_enroll(*k, paths))
      co_return outcome(
          EnrollExit::kUsage,
          paths.kubeconfig + " exists and is not one tetherctl enroll wrote (" +
              (k ? "its credentials are not " + paths.certificate + " and " + paths.key
                 : k.error().message) +
              "): move it away, or run enroll with --force to replace it");
  }
  say("enrolling " + config.node_name + " as " + user + " with " + options.server + " (" + *why +
      ")");

  // 2. The CA, then a client that verifies the server against it.
  EnrollExit exit = EnrollExit::kError;
  Result<TrustedCa> ca = Result<TrustedCa>(boost::system::in_place_error, make_error(""));
  if (!options.ca_file.empty()) {
    ca = ca_from_file(options.ca_file);
    exit = EnrollExit::kUsage;
  } else {
    auto pin = parse_ca_pin(options.ca_cert_hash);
    if (!pin) co_return outcome(EnrollExit::kUsage, "--ca-cert-hash: " + pin.error().message);
    ca = co_await discover_ca(executor, options.server, *pin, exit);
  }
  if (!ca) co_return outcome(exit, ca.error().message);
  auto token = read_token_file(options.token_file);
  if (!token) co_return outcome(EnrollExit::kUsage, token.error().message);
  Kubeconfig bootstrap;
  bootstrap.path = options.token_file;
  bootstrap.context = "bootstrap";
  bootstrap.server = options.server;
  bootstrap.ca_pem = ca->pem;
  bootstrap.token = *token;
  auto http = kube::HttpsClient::create(executor, bootstrap);
  if (!http) co_return outcome(EnrollExit::kUsage, describe(http.error()));
  kube::KubeClient kube(**http);
  // The first call: TLS verified against the CA (the token goes only after).
  auto untrusted = [&](const kube::ApiError& e) {
    return outcome(
        e.kind == kube::ErrorKind::kTls ? EnrollExit::kUntrustedServer : EnrollExit::kError,
        e.kind == kube::ErrorKind::kTls
            ? "the server is not the one the CA (" + ca->source + ") vouches for: " + describe(e)
            : describe(e));
  };

  // 3. A request under way is resumed; else a new one. It is given up
  // only when it cannot be used (gone, or another node's).
  std::optional<PendingRequest> pending = read_pending(paths);
  if (pending && pending->node != config.node_name) {
    say(pending->name + " was asked for another node (" + pending->node + "): asking anew");
    pending.reset();
  }
  if (pending && !same_server(pending->server, options.server))
    co_return outcome(EnrollExit::kUsage, "a request is under way with " + pending->server + " (" +
                                              pending->name + "): run enroll with --server " +
                                              pending->server + " to finish it, or remove " +
                                              paths.next_csr + " and " + paths.next_key +
                                              " to give it up");
  bool approved = false;
  if (pending) {
    auto found = co_await kube.get(std::string(kCsrs) + "/" + pending->name);
    if (!found && found.error().kind != kube::ErrorKind::kHttp) co_return untrusted(found.error());
    if (!found && auth_error(found.error()))
      co_return token_refused(found.error(), options.token_file);
    if (!found && !found.error().not_found())
      co_return outcome(EnrollExit::kError, "cannot read " + pending->name + ": " +
                                                describe(found.error()) +
                                                "; it is kept: run the same command again");
    if (found) {
      auto status = decode_csr_status(*found);
      approved = status && status->state != CsrStatus::State::kPending;
      say("resuming: waiting for " + pending->name + ", asked for earlier");
    } else {
      say(pending->name +
          " is gone (deleted, or collected after an hour unapproved): asking again");
      pending.reset();
    }
  }
  if (!pending) {
    forget_pending(paths);
    auto request = make_client_request(user, {std::string(kNodesGroup)});
    if (!request) co_return outcome(EnrollExit::kError, request.error().message);
    PendingRequest next{csr_name(config.node_name, clock.wall()), options.server, config.node_name,
                        x509::to_pem(request->key)};
    if (auto r = save_pending_key(paths, next.key_pem); !r)
      co_return outcome(EnrollExit::kError, r.error().message);
    auto created = co_await kube.create(
        kCsrs, csr_object(config.node_name, next.name, request->csr_pem, options.expiration));
    if (!created && created.error().kind != kube::ErrorKind::kHttp)
      co_return untrusted(created.error());
    if (!created && auth_error(created.error()))
      co_return token_refused(created.error(), options.token_file);
    if (!created) co_return outcome(EnrollExit::kError, describe(created.error()));
    if (auto r = save_pending_name(paths, next); !r)
      co_return outcome(EnrollExit::kError, r.error().message);
    pending = std::move(next);
    say("asked for a certificate: CertificateSigningRequest " + pending->name + " for user " +
        user + " (group " + std::string(kNodesGroup) + ")");
  }
  if (!approved) {
    say("an admin approves it, after checking it (see the README, \"Enrolling a node\"), with:");
    say("  " + approve_command(pending->name));
  }
  say("waiting up to " + format_duration(options.wait) + " (interrupted or timed out, run the " +
      "same command again to resume)");

  // 4. Waiting for the certificate.
  const MonoTime deadline = clock.monotonic() + options.wait;
  bool told_unreachable = false;
  for (;;) {
    auto got = co_await kube.get(std::string(kCsrs) + "/" + pending->name);
    if (got) {
      auto status = decode_csr_status(*got);
      if (!status) co_return outcome(EnrollExit::kError, status.error().message);
      using State = CsrStatus::State;
      if (status->state == State::kDenied || status->state == State::kFailed) {
        forget_pending(paths);
        co_return outcome(
            EnrollExit::kRefused,
            pending->name + " was " +
                (status->state == State::kDenied ? "denied" : "refused by the signer") +
                (status->reason.empty() ? "" : " (" + status->reason + ")") +
                (status->message.empty() ? "" : ": " + status->message) +
                ". Ask the admin why; run enroll again to ask anew");
      }
      if (status->state == State::kIssued) {
        auto done =
            install(paths, options, *ca, user, *pending, status->certificate_pem, clock.wall());
        if (done.exit != EnrollExit::kEnrolled) co_return done;
        co_return switched("enrolled: " + done.message + "; kubeconfig " + paths.kubeconfig);
      }
      approved = status->state == State::kApproved;
    } else if (got.error().kind == kube::ErrorKind::kTls) {
      co_return untrusted(got.error());
    } else if (auth_error(got.error())) {
      co_return token_refused(got.error(), options.token_file);
    } else if (got.error().not_found()) {
      forget_pending(paths);
      co_return outcome(
          EnrollExit::kRefused,
          pending->name + " was deleted before it was issued; run enroll again " + "to ask anew");
    } else if (!told_unreachable) {
      told_unreachable = true;
      say("cannot read " + pending->name + " (" + describe(got.error()) + "); trying again");
    }
    if (clock.monotonic() >= deadline)
      co_return outcome(
          EnrollExit::kTimedOut,
          pending->name +
              (approved ? " was approved but not issued within " + format_duration(options.wait) +
                              " (is the cluster's signer on?)"
                        : " was not approved within " + format_duration(options.wait)) +
              ". It is kept: run the same command again to keep waiting");
    co_await sleep_for(executor, clock, options.poll);
  }
}

}  // namespace tetherd
