#include "agent/app/issuer_rotation.h"

#include <algorithm>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/adapters/issuer_mint.h"
#include "agent/adapters/linkerd_supply.h"
#include "agent/adapters/x509.h"
#include "agent/core/clock_jump.h"
#include "agent/core/duration.h"
#include "agent/core/kube_time.h"

namespace tetherd {
namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;

namespace {

constexpr std::string_view kCertManagerAnnotation = "cert-manager.io/certificate-name";

std::string date(std::optional<WallTime> t) {
  return t ? format_kube_time(*t) : std::string("unknown");
}

bool has_annotation(const json::object& object, std::string_view name) {
  const json::value* metadata = object.if_contains("metadata");
  if (metadata == nullptr || !metadata->is_object()) return false;
  const json::value* annotations = metadata->get_object().if_contains("annotations");
  return annotations != nullptr && annotations->is_object() &&
         annotations->get_object().contains(name);
}

}  // namespace

std::string_view to_string(RotationTrigger trigger) {
  switch (trigger) {
    case RotationTrigger::kStart:
      return "start";
    case RotationTrigger::kResume:
      return "resume";
    case RotationTrigger::kPeriodic:
      return "periodic";
    case RotationTrigger::kToken:
      return "spec.linkerd.rotate";
    case RotationTrigger::kManual:
      return "tetherctl";
    case RotationTrigger::kCloud:
      return "cloud";
    case RotationTrigger::kClockStep:
      return "clock-step";
    case RotationTrigger::kClockWitness:
      return "control-plane-clock";
    case RotationTrigger::kRetry:
      return "retry";
  }
  return "?";
}

// What one read of the cluster gave: the objects as they were (the write
// goes back over the Secret read, with its resourceVersion) and the parsed
// certificates, or why they could not be had.
struct IssuerRotation::Read {
  IssuerFacts facts;
  json::object roots;  // the ConfigMap
  std::string bundle;  // its ca-bundle.crt
  json::object secret;
  IssuerSecret decoded;
  std::vector<x509::Certificate> anchors;
  bool managed_elsewhere = false;
  // k3s did not answer a read (ApiError::unanswered()), and its Retry-After.
  std::optional<kube::ApiError> unanswered;
};

IssuerRotation::IssuerRotation(asio::io_context& io, kube::KubeClient& cluster, const Clock& clock,
                               Log& log, LinkerdConfig config, IssuerRotationTiming timing)
    : io_(io),
      cluster_(cluster),
      clock_(clock),
      log_(log),
      config_(std::move(config)),
      timing_(std::move(timing)),
      timer_(io, clock),
      retry_timer_(io, clock) {
  if (!timing_.random) timing_.random = seeded_unit_random();
}

awaitable<IssuerRotation::Read> IssuerRotation::read() {
  Read r;
  const std::string& ns = config_.namespace_;
  const std::string roots_path = kube::object_path(kube::kConfigMaps, ns, kTrustRootsConfigMapName);
  auto roots = co_await cluster_.get(roots_path);
  if (!roots) {
    if (roots.error().unanswered()) r.unanswered = roots.error();
    r.facts.unreadable = "cannot read ConfigMap " + ns + "/" +
                         std::string(kTrustRootsConfigMapName) + ": " +
                         kube::describe(roots.error());
    co_return r;
  }
  r.roots = std::move(*roots);
  auto bundle = decode_trust_roots(r.roots);
  if (!bundle) {
    r.facts.unreadable = bundle.error().message;
    co_return r;
  }
  r.bundle = *bundle;
  auto anchors =
      x509::parse_certificates(*bundle, "ConfigMap " + std::string(kTrustRootsConfigMapName) + " " +
                                            std::string(kTrustRootsKey));
  if (!anchors) {
    r.facts.unreadable = anchors.error().message;
    co_return r;
  }
  r.anchors = std::move(*anchors);
  for (const auto& a : r.anchors)
    r.facts.anchors.push_back(x509::describe(a));

  const std::string secret_path = kube::object_path(kube::kSecrets, ns, kIssuerSecretName);
  auto secret = co_await cluster_.get(secret_path);
  if (!secret) {
    if (secret.error().unanswered()) r.unanswered = secret.error();
    r.facts.unreadable = "cannot read Secret " + ns + "/" + std::string(kIssuerSecretName) + ": " +
                         kube::describe(secret.error());
    co_return r;
  }
  r.secret = std::move(*secret);
  r.managed_elsewhere = has_annotation(r.secret, kCertManagerAnnotation);
  auto decoded = decode_issuer_secret(r.secret);
  if (!decoded) {
    r.facts.unreadable = decoded.error().message;
    co_return r;
  }
  r.decoded = std::move(*decoded);
  const bool tls = r.decoded.layout == IssuerLayout::kTls;
  const std::string where = "Secret " + std::string(kIssuerSecretName) + " ";
  auto certs = x509::parse_certificates(r.decoded.cert_pem, where + (tls ? "tls.crt" : "crt.pem"));
  if (!certs) {
    r.facts.unreadable = certs.error().message;
    co_return r;
  }
  auto key = x509::parse_private_key(r.decoded.key_pem, where + (tls ? "tls.key" : "key.pem"));
  if (!key) {
    r.facts.unreadable = key.error().message;
    co_return r;
  }
  // Which root the key file signs under, if any: the judgement renews an
  // issuer that ends with its anchor when that root outlasts it. The first
  // root the key matches, as mint_pass() signs under: two roots with one
  // key (an anchor re-issued to extend it) must not be judged by one and
  // signed under the other, which would renew every pass.
  if (!config_.trust_anchor_key.empty() && !cloud_.issuer_from_cloud()) {
    if (auto signer = x509::load_private_key_file(config_.trust_anchor_key, "")) {
      for (std::size_t i = 0; i < r.anchors.size() && !r.facts.signer_not_after; ++i)
        if (x509::key_matches(r.anchors[i], *signer))
          r.facts.signer_not_after = r.facts.anchors[i].not_after;
    }
  }
  const x509::Certificate& issuer = certs->front();
  const std::vector<x509::Certificate> intermediates(certs->begin() + 1, certs->end());
  r.facts.issuer = x509::describe(issuer);
  r.facts.key_matches = x509::key_matches(issuer, *key);
  for (std::size_t i = 0; i < r.anchors.size() && !r.facts.chains_to; ++i) {
    if (x509::verify_chain(issuer, {r.anchors[i]}, intermediates)) r.facts.chains_to = i;
  }
  if (!r.facts.chains_to) {
    auto chain = x509::verify_chain(issuer, r.anchors, intermediates);
    r.facts.chain_error =
        chain ? std::string("no single anchor verifies it") : chain.error().message;
  }
  co_return r;
}

IssuerVerdict IssuerRotation::verdict_of(IssuerFacts facts) const {
  // An issuer from the cloud is renewed there (cert-manager, a day before
  // the end of 48 h): judged on its own lifetime (a third of it left), not
  // on rotateBefore, which is for issuers minted here.
  const Duration before = cloud_.issuer_from_cloud() ? Duration::zero() : config_.rotate_before;
  const auto error = clock_error_ ? clock_error_() : std::nullopt;
  facts.clock_confirmed = error && std::chrono::abs(*error) <= kClockTolerance;
  return judge_issuer(facts, clock_.wall(), IssuerPolicy{before, config_.rotate_before});
}

IssuerReport IssuerRotation::judge(const Read& r) const {
  IssuerReport report;
  report.verdict = verdict_of(r.facts);
  report.issuer = r.facts.issuer;
  report.anchors = r.facts.anchors;
  if (r.facts.issuer) report.layout = r.decoded.layout;
  report.managed_elsewhere = r.managed_elsewhere;
  if (!r.anchors.empty()) report.bundle_sha256 = trust_bundle_sha256(r.bundle);
  return report;
}

awaitable<IssuerReport> IssuerRotation::check() {
  Read r = co_await read();
  co_return judge(r);
}

namespace {

// The longest of the Retry-Afters k3s sent: `kept` becomes `asked` when
// that is longer (or the first).
void keep_longest(std::optional<Duration>& kept, std::optional<Duration> asked) {
  if (asked && (!kept || *asked > *kept)) kept = asked;
}

}  // namespace

awaitable<RotationResult> IssuerRotation::run(RotationTrigger trigger, bool force) {
  // As when the pass began: a change meanwhile queues another pass.
  const bool issuer_from_cloud = cloud_.issuer_from_cloud();
  if (!issuer_from_cloud && !cloud_.bundle_from_cloud()) co_return co_await mint(trigger, force);
  RotationResult cloud = co_await take_from_cloud(trigger);
  if (issuer_from_cloud || stopped_) co_return cloud;
  // The bundle alone from the cloud: the issuer is minted here as before,
  // judged under the bundle now in force.
  RotationResult local = co_await mint(trigger, force);
  local.from_cloud = true;
  local.bundle_written = cloud.bundle_written;
  // A bundle written is said, whatever the mint did.
  if (cloud.bundle_written) local.deferred = false;
  local.pass_again = cloud.pass_again;
  // (Not when the mint's own write lost its answer: that one is looked for.)
  if (!local.found_written && !local.answer_lost) {
    local.found_written = cloud.found_written;
    local.found_serial = cloud.found_serial;
  }
  if (!cloud.error.empty())
    local.error = local.error.empty() ? cloud.error : cloud.error + "; " + local.error;
  // k3s not answering the bundle's half arms the retry too, with the
  // longest Retry-After of the two halves.
  local.k3s_unanswered = local.k3s_unanswered || cloud.k3s_unanswered;
  keep_longest(local.k3s_retry_after, cloud.k3s_retry_after);
  co_return local;
}

namespace {

// Why a followed object of the cloud cannot be used (yet).
std::string unavailable(const std::string& what, const kube::FollowedObject& seen) {
  if (!seen.error.empty()) return "cannot read " + what + ": " + seen.error;
  if (!seen.read) return "waiting for " + what;
  return what + " does not exist";
}

}  // namespace

bool IssuerRotation::anchor_key_in(const std::vector<x509::Certificate>& roots) const {
  if (config_.trust_anchor_key.empty()) return false;
  auto key = x509::load_private_key_file(config_.trust_anchor_key, "the linkerd trust anchor key");
  if (!key) return false;
  for (const auto& root : roots)
    if (x509::key_matches(root, *key)) return true;
  return false;
}

awaitable<RotationResult> IssuerRotation::take_from_cloud(RotationTrigger trigger) {
  RotationResult result;
  result.trigger = trigger;
  result.from_cloud = true;
  const std::string& ns = config_.namespace_;
  // As it was when the pass began: a change meanwhile queues another pass.
  const CloudLinkerd cloud = cloud_;
  const LinkerdRefs& refs = cloud.refs;
  result.cloud_read = (!cloud.issuer_from_cloud() || cloud.issuer.read) &&
                      (!cloud.bundle_from_cloud() || cloud.bundle.read);
  const std::string in_cloud = " in the control plane";
  for (std::size_t attempt = 0;; ++attempt) {
    Read r = co_await read();
    look_for_lost_write(r, result);
    if (r.unanswered) unanswered(*r.unanswered, result);
    result.before = judge(r);
    result.bundle_sha256 = result.before.bundle_sha256;
    if (r.anchors.empty()) {
      result.error =
          "cannot check what the control plane supplies against the local trust "
          "bundle: " +
          r.facts.unreadable;
      co_return result;
    }
    const WallTime now = clock_.wall();
    std::vector<std::string> problems;

    std::optional<TrustBundle> bundle;
    if (cloud.bundle_from_cloud()) {
      const std::string what =
          "ConfigMap " + cloud.namespace_ + "/" + refs.bundle_config_map + in_cloud;
      if (!cloud.bundle.object) {
        // Not read yet (the tether's first list is under way): nothing to
        // say; its answer runs another pass.
        if (cloud.bundle.read || !cloud.bundle.error.empty())
          problems.push_back(unavailable(what, cloud.bundle));
      } else if (auto text = decode_trust_roots(*cloud.bundle.object, what, refs.bundle_key);
                 !text) {
        problems.push_back(text.error().message);
      } else if (auto parsed = parse_trust_bundle(*text, now, what + " " + refs.bundle_key);
                 !parsed) {
        problems.push_back(parsed.error().message);
      } else {
        bundle = std::move(*parsed);
      }
    }

    std::optional<SuppliedIssuer> issuer;
    std::optional<IssuerSecret> supplied;
    const std::string issuer_what =
        "Secret " + cloud.namespace_ + "/" + refs.issuer_secret + in_cloud;
    if (cloud.issuer_from_cloud()) {
      if (!cloud.issuer.object) {
        if (cloud.issuer.read || !cloud.issuer.error.empty())
          problems.push_back(unavailable(issuer_what, cloud.issuer));
      } else if (auto decoded = decode_issuer_secret(*cloud.issuer.object, issuer_what); !decoded) {
        problems.push_back(decoded.error().message);
      } else {
        supplied = std::move(*decoded);
      }
    }
    // The issuer is checked against the trust bundle in k3s now: the
    // running proxies trust nothing else. One under a root that only the
    // incoming bundle holds waits for it: taken by the pass after the
    // bundle is written.
    std::string issuer_problem;
    bool issuer_waits = false;
    if (supplied) {
      auto checked = check_supplied_issuer(*supplied, r.anchors, now, issuer_what);
      if (checked) {
        issuer = std::move(*checked);
      } else if (bundle && check_supplied_issuer(*supplied, bundle->roots, now, issuer_what)) {
        issuer_waits = true;
      } else {
        issuer_problem = checked.error().message;
      }
    }
    if (bundle) {
      // The bundle must keep trusting the issuer in force after it: the
      // cloud's when it is taken (now or next), else the one in k3s.
      const std::string in_force = (issuer || issuer_waits)
                                       ? supplied->cert_pem
                                       : (r.facts.issuer ? r.decoded.cert_pem : std::string());
      bool keeps = in_force.empty() || chains_to_any(in_force, bundle->roots);
      // The last step of an anchor rotation on a node that mints its own
      // issuer: the old issuer is dropped, and the next mint must chain to
      // the new bundle, so the node's anchor key must be a root's of it.
      // With the issuer from the cloud the flag is not needed (the cloud's
      // issuer chains to the new anchor by then) and not used.
      const bool finishing = refs.rotation_finishing && !cloud.issuer_from_cloud() && !keeps &&
                             anchor_key_in(bundle->roots);
      if (!keeps && !finishing) {
        problems.push_back(
            "ConfigMap " + cloud.namespace_ + "/" + refs.bundle_config_map + in_cloud +
            " does not hold the root of the issuer in force (" +
            (r.facts.issuer ? r.facts.issuer->subject + ", issued by " + r.facts.issuer->issuer
                            : std::string("unknown")) +
            "): proxies would refuse every certificate it signs" +
            (cloud.issuer_from_cloud()
                 ? "; the control plane's issuer must move to one of its roots first"
                 : "; for the last step of an anchor rotation, set "
                   "trustBundleRef.rotationFinishing with linkerd.trustAnchorKey the new "
                   "anchor's key"));
        bundle.reset();
      }
    }
    if (!issuer_problem.empty()) problems.push_back(issuer_problem);

    // The bundle first: an issuer under a new root needs it in force.
    bool conflict = false;
    if (bundle && bundle->pem != r.bundle) {
      json::object body = trust_roots_update(std::move(r.roots), bundle->pem);
      auto written = co_await cluster_.update(
          kube::object_path(kube::kConfigMaps, ns, kTrustRootsConfigMapName), std::move(body));
      if (written) {
        result.bundle_written = true;
        result.bundle_sha256 = bundle->sha256;
        result.pass_again = issuer_waits;
      } else if (written.error().conflict()) {
        conflict = true;
      } else {
        if (written.error().unanswered()) unanswered(written.error(), result);
        problems.push_back("cannot write ConfigMap " + ns + "/" +
                           std::string(kTrustRootsConfigMapName) + ": " +
                           kube::describe(written.error()));
      }
    }
    const bool differs = issuer && (issuer->secret.cert_pem != r.decoded.cert_pem ||
                                    issuer->secret.key_pem != r.decoded.key_pem);
    if (differs && !conflict) {
      const std::string local = ns + "/" + std::string(kIssuerSecretName);
      if (r.secret.empty()) {
        problems.push_back("cannot write the control plane's issuer: " + r.facts.unreadable);
      } else if (r.managed_elsewhere) {
        problems.push_back("Secret " + local + " is managed by cert-manager (annotation " +
                           std::string(kCertManagerAnnotation) +
                           "); tetherd does not write over it");
      } else {
        const std::vector<x509::Certificate>& roots = r.anchors;
        std::string based_on = kube::resource_version_of(r.secret);
        json::object body = issuer_secret_update(
            std::move(r.secret), r.facts.issuer ? r.decoded.layout : IssuerLayout::kTls,
            issuer->secret.cert_pem, issuer->secret.key_pem, x509::to_pem(roots[issuer->root]));
        const WallTime sent = clock_.wall();
        auto written = co_await cluster_.update(
            kube::object_path(kube::kSecrets, ns, kIssuerSecretName), std::move(body));
        if (written) {
          result.rotated = true;
          result.issued = issuer->info;
          result.written_at = sent;
        } else if (written.error().conflict()) {
          conflict = true;
        } else {
          lost_answer(written.error(), issuer->info, sent, std::move(based_on), result);
          problems.push_back("cannot write Secret " + local + ": " +
                             kube::describe(written.error()));
        }
      }
    }
    if (conflict && attempt + 1 < timing_.max_conflicts && !stopped_) {
      // Someone else wrote meanwhile: read and judge again.
      ++result.conflicts;
      continue;
    }
    if (conflict) problems.push_back("someone else kept writing linkerd's objects");
    for (const auto& p : problems)
      result.error += (result.error.empty() ? "" : "; ") + p;
    co_return result;
  }
}

awaitable<RotationResult> IssuerRotation::mint(RotationTrigger trigger, bool force) {
  RotationResult result = co_await mint_pass(trigger, force);
  result.bundle_sha256 = result.before.bundle_sha256;
  co_return result;
}

awaitable<RotationResult> IssuerRotation::mint_pass(RotationTrigger trigger, bool force) {
  RotationResult result;
  result.trigger = trigger;
  const std::string ns = config_.namespace_;
  const std::string secret_name = ns + "/" + std::string(kIssuerSecretName);
  bool waited = false;  // for the witness's first word (not a conflict)
  for (std::size_t attempt = 0;; ++attempt) {
    Read r = co_await read();
    look_for_lost_write(r, result);
    if (r.unanswered) unanswered(*r.unanswered, result);
    // A forced write found (its answer lost): the force is spent.
    if (result.found_written) force = false;
    // A read whose answer was in when stop() ran (disconnect_all() cannot
    // take it back): nothing is written after a stop.
    if (stopped_) {
      result.error = "stopped";
      co_return result;
    }
    result.before = judge(r);
    const IssuerVerdict& v = result.before.verdict;
    // Forced, it still needs an issuer it could read, a clock it can trust
    // (a not-yet-valid issuer says the node's is behind: what it minted
    // would carry wrong dates) and a live anchor (a new issuer under an
    // expired one is as dead as the old one).
    const bool forceable = v.issuer != IssuerState::kUnreadable &&
                           v.issuer != IssuerState::kNotYetValid &&
                           v.anchor != AnchorState::kExpired && v.anchor != AnchorState::kUnknown;
    if (!v.rotate && !force) co_return result;
    if (!v.rotate && !forceable) {
      result.error = "refused to force a rotation: " + v.message;
      co_return result;
    }
    if (r.managed_elsewhere) {
      result.error = "Secret " + secret_name + " is managed by cert-manager (annotation " +
                     std::string(kCertManagerAnnotation) + "); tetherd leaves its rotation to it";
      co_return result;
    }
    if (config_.trust_anchor_key.empty()) {
      result.error = "no linkerd.trustAnchorKey is configured, so tetherd cannot sign a new issuer";
      co_return result;
    }
    // The witness about to speak (see use_clock_witness): its word first.
    // Then a pass queued meanwhile decides (the Date's own pass, or the
    // cloud's, the session having read its EdgeNode), with this one's
    // force and token (serve()); else this one reads and judges again.
    if (clock_error_ && !clock_error_() && clock_.boottime() < witness_until_) {
      log_.info("issuer-waits-for-clock",
                "waiting up to " + format_duration(witness_until_ - clock_.boottime()) +
                    " for the control plane's clock before minting a linkerd issuer (" + v.message +
                    ")");
      while (!stopped_ && clock_error_ && !clock_error_() && clock_.boottime() < witness_until_)
        co_await pause(
            std::min<Duration>(std::chrono::seconds(1), witness_until_ - clock_.boottime()));
      witness_until_ = {};
      waited = true;
      if (stopped_) {
        result.error = "stopped";
        co_return result;
      }
      if (queued_) {
        result.deferred = true;
        co_return result;
      }
      continue;
    }
    // A wrong clock mints an issuer no proxy takes (one from the future)
    // or one already over: the control plane's clock says when not to.
    if (const auto error = clock_error_ ? clock_error_() : std::nullopt;
        error && std::chrono::abs(*error) > kClockTolerance) {
      result.error = clock_disagreement(*error) + ": no issuer is minted until they agree";
      co_return result;
    }
    auto key =
        x509::load_private_key_file(config_.trust_anchor_key, "the linkerd trust anchor key");
    if (!key) {
      result.error = key.error().message;
      co_return result;
    }
    std::optional<std::size_t> signer;
    for (std::size_t i = 0; i < r.anchors.size() && !signer; ++i)
      if (x509::key_matches(r.anchors[i], *key)) signer = i;
    if (!signer) {
      result.error = config_.trust_anchor_key + " is the key of no certificate in ConfigMap " + ns +
                     "/" + std::string(kTrustRootsConfigMapName) +
                     ": proxies would not trust an issuer it signed";
      co_return result;
    }
    auto minted = mint_issuer(r.anchors[*signer], *key, clock_.wall(), config_.issuer_validity);
    if (!minted) {
      result.error = minted.error().message;
      co_return result;
    }
    std::string based_on = kube::resource_version_of(r.secret);
    json::object body =
        issuer_secret_update(std::move(r.secret), r.decoded.layout, minted->cert_pem,
                             minted->key_pem, x509::to_pem(r.anchors[*signer]));
    const std::string path = kube::object_path(kube::kSecrets, ns, kIssuerSecretName);
    const WallTime sent = clock_.wall();
    auto written = co_await cluster_.update(path, std::move(body));
    if (written) {
      result.rotated = true;
      result.written_at = sent;
      // What is in force now: the new issuer, under the anchor that signed
      // it, in the bundle read. The judgement before may have been of
      // another anchor (an expired one the key file's new root replaces).
      IssuerFacts now = std::move(r.facts);
      now.issuer = minted->info;
      now.chains_to = *signer;
      now.chain_error.clear();
      now.key_matches = true;
      result.after = verdict_of(std::move(now));
      result.issued = std::move(minted->info);
      co_return result;
    }
    // Someone else wrote the Secret since the read (an operator, a second
    // tetherctl): what we judged is stale. Read and judge again.
    if (written.error().conflict() && attempt + 1 < timing_.max_conflicts + (waited ? 1 : 0)) {
      ++result.conflicts;
      // A force asked to replace the issuer read; someone else has since,
      // so the next read is judged on its merits.
      force = false;
      continue;
    }
    lost_answer(written.error(), minted->info, sent, std::move(based_on), result);
    result.error = "cannot write Secret " + secret_name + ": " + kube::describe(written.error());
    co_return result;
  }
}

void IssuerRotation::unanswered(const kube::ApiError& error, RotationResult& result) {
  result.k3s_unanswered = true;
  keep_longest(result.k3s_retry_after, error.retry_after);
}

void IssuerRotation::lost_answer(const kube::ApiError& error, const CertificateInfo& issuer,
                                 WallTime sent, std::string based_on, RotationResult& result) {
  if (error.unanswered()) unanswered(error, result);
  if (!error.may_have_taken()) return;
  // An earlier lost write this pass found is written over by this one (if
  // it took): the next pass looks for this one, and confirms its reload.
  lost_writes_.push_back(LostWrite{issuer.serial_hex, sent, std::move(based_on), {}});
  if (lost_writes_.size() > kLostWrites) lost_writes_.pop_front();
  result.found_written.reset();
  result.found_serial.clear();
  result.answer_lost = true;
}

void IssuerRotation::look_for_lost_write(const Read& r, RotationResult& result) {
  // An unreadable Secret says nothing: the next pass looks again. Found, it
  // is forgotten once serve() has confirmed it (a pass that gives way to
  // another leaves it to that one).
  if (lost_writes_.empty() || !r.facts.issuer) return;
  const std::string& serial = r.facts.issuer->serial_hex;
  const std::string version = kube::resource_version_of(r.secret);
  // Each other one is forgotten once the Secret has moved past what it was
  // based on: it did not take, or was written over since; one based on
  // what is there now may still land. (Not there: a re-read after a
  // conflict may say so after a read that found it.)
  std::erase_if(lost_writes_,
                [&](const LostWrite& w) { return w.serial != serial && w.based_on != version; });
  const auto found = std::find_if(lost_writes_.begin(), lost_writes_.end(),
                                  [&](const LostWrite& w) { return w.serial == serial; });
  if (found == lost_writes_.end()) {
    result.found_written.reset();
    result.found_serial.clear();
    return;
  }
  result.found_written = found->sent;
  result.found_serial = serial;
}

awaitable<void> IssuerRotation::pause(Duration delay) {
  timer_.expires_after(delay);
  co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
}

namespace {
// An Event as name@resourceVersion.
std::string event_identity(const json::object& event) {
  const json::object* meta = nullptr;
  if (const auto* m = event.if_contains("metadata"); m && m->is_object()) meta = &m->get_object();
  const auto text = [&](std::string_view key) {
    const auto* v = meta ? meta->if_contains(key) : nullptr;
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  };
  return text("name") + "@" + text("resourceVersion");
}
}  // namespace

awaitable<ReloadOutcome> IssuerRotation::confirm_reload(WallTime written_at) {
  reload_retry_after_.reset();
  const std::string& ns = config_.namespace_;
  const std::string events = kube::collection_path(kube::kEvents, ns);
  // Judged on CLOCK_MONOTONIC, which is never stepped (on the wall clock,
  // a step back of 50 days during the wait polled k3s every 5 s for 50
  // days: issue 23's simulation) and stands still while the node sleeps:
  // kubelet and the identity controller on this node slept too, so a
  // sleep during the wait gives them no time. (On CLOCK_BOOTTIME, a write
  // just before a sleep had its controller restarted at the resume, just
  // as every proxy asks it for a new certificate: the node's year.) A
  // controller on another node that said it meanwhile is found by the
  // first list after the resume.
  const MonoTime deadline = clock_.monotonic() + timing_.confirm_timeout;
  // A step back of the wall clock during the window (NTP putting right a
  // clock that was ahead) has the controller's Event stamped before
  // `written_at` (the node's year: the controller was restarted for it).
  // Such an Event is taken when it is stamped since the write's time moved
  // back by the step and was not there at the window's first answer (an
  // older one, of an earlier write, may be stamped within the step too).
  // A step forward moves nothing (an Event from before it carries the old
  // clock's time). (A step between the write and the window is not seen:
  // the controller is restarted, as before.)
  const WallTime wall_then = clock_.wall();
  const MonoTime boot_then = clock_.boottime();
  const auto stepped_since = [&] {
    // (Reading the two clocks apart makes a step of nanoseconds: none.)
    const Duration step = (clock_.wall() - wall_then) - (clock_.boottime() - boot_then);
    return step < -std::chrono::seconds(1) ? written_at + step : written_at;
  };
  std::optional<std::set<std::string>> there_before;  // at the first answer
  while (!stopped_) {
    // A namespace's Events are few (they live an hour); the client bounds
    // the body anyway. The test server, like some proxies, does not filter
    // Events by reason, so the filter is ours.
    auto listed = co_await cluster_.list(events);
    if (listed) {
      const bool first = !there_before;
      if (first) there_before.emplace();
      const WallTime since = stepped_since();
      for (const auto& event : listed->items) {
        std::string id = event_identity(event);
        // An earlier write's answer, though stamped in this one's second.
        if (std::find(answers_.begin(), answers_.end(), id) != answers_.end()) continue;
        const bool updated = issuer_updated_since(event, written_at);
        if (first && !updated) there_before->insert(id);
        if (!updated && (since == written_at || there_before->contains(id) ||
                         !issuer_updated_since(event, since)))
          continue;
        answers_.push_back(std::move(id));
        if (answers_.size() > kAnswers) answers_.pop_front();
        log_.info("issuer-reload-confirmed",
                  "linkerd's identity controller loaded the new issuer (event IssuerUpdated)",
                  {{"LINKERD_NAMESPACE", ns}});
        co_return ReloadOutcome::kConfirmed;
      }
    }
    if (clock_.monotonic() >= deadline || stopped_) break;
    // A k3s that asked for a longer wait (429, 503 with Retry-After) gets
    // it, up to the window's end: then the Deployment is judged at once.
    if (!listed && listed.error().retry_after &&
        *listed.error().retry_after > timing_.confirm_poll) {
      const MonoTime until = std::min(clock_.monotonic() + *listed.error().retry_after, deadline);
      while (!stopped_ && clock_.monotonic() < until)
        co_await pause(std::min(timing_.confirm_poll, until - clock_.monotonic()));
      if (until == deadline) break;
      continue;
    }
    co_await pause(timing_.confirm_poll);
  }
  if (stopped_) co_return ReloadOutcome::kFailed;
  const std::string deployment = kube::object_path(kube::kDeployments, ns, kIdentityDeploymentName);
  // Restarted since the write already (a restart of ours whose answer was
  // lost while k3s stalled, or an operator's): not once more.
  auto current = co_await cluster_.get(deployment);
  if (stopped_) co_return ReloadOutcome::kFailed;  // nothing is written after a stop
  // Not answered: a restart now may land twice (k3s acting on what it
  // does not answer); the next pass reads again.
  if (!current && current.error().unanswered()) {
    reload_retry_after_ = current.error().retry_after;
    co_return ReloadOutcome::kUnanswered;
  }
  // (By the write's own time, whatever the steps: a restart missed costs
  // one more; an older one taken for it would leave the old issuer loaded.)
  if (current && restarted_since(*current, written_at, clock_.wall() + kClockTolerance)) {
    log_.info("identity-restart-found",
              "deploy/" + std::string(kIdentityDeploymentName) +
                  " was restarted since the issuer was written: it loaded the new issuer",
              {{"LINKERD_NAMESPACE", ns}});
    co_return ReloadOutcome::kRestarted;
  }
  auto patched = co_await cluster_.merge_patch(deployment, restart_patch(clock_.wall()));
  if (!patched) {
    const bool lost = patched.error().unanswered();
    log_.error("identity-restart-failed",
               "linkerd's identity controller did not confirm the new issuer, and restarting "
               "deploy/" +
                   std::string(kIdentityDeploymentName) +
                   " failed: " + kube::describe(patched.error()) +
                   (lost && !stopped_ ? "; trying again soon" : ""),
               {{"LINKERD_NAMESPACE", ns}});
    if (lost) reload_retry_after_ = patched.error().retry_after;
    co_return lost ? ReloadOutcome::kUnanswered : ReloadOutcome::kFailed;
  }
  log_.notice(
      "identity-restarted",
      "no IssuerUpdated event within " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::seconds>(timing_.confirm_timeout).count()) +
          " s: restarted deploy/" + std::string(kIdentityDeploymentName) +
          " so that it loads the new issuer",
      {{"LINKERD_NAMESPACE", ns}});
  co_return ReloadOutcome::kRestarted;
}

void IssuerRotation::report(const RotationResult& result) {
  const IssuerVerdict& v = result.before.verdict;
  const std::string trigger(to_string(result.trigger));
  if (result.bundle_written) {
    log_.notice("trust-bundle-written",
                "wrote the control plane's trust bundle into ConfigMap " + config_.namespace_ +
                    "/" + std::string(kTrustRootsConfigMapName) + " (sha256 " +
                    result.bundle_sha256 + "); proxies take it when their pods restart",
                {{"TRIGGER", trigger}, {"BUNDLE_SHA256", result.bundle_sha256}});
  }
  if (result.rotated) {
    log_.notice("issuer-rotated",
                std::string(result.from_cloud && cloud_.issuer_from_cloud()
                                ? "wrote the control plane's linkerd issuer ("
                                : "wrote a new linkerd issuer (") +
                    trigger + "): the old one " +
                    (v.issuer == IssuerState::kExpired ? "expired " : "expires ") +
                    date(v.issuer_expires) + ", the new one is valid until " +
                    date(result.issued->not_after),
                {{"TRIGGER", trigger},
                 {"NOT_AFTER", format_kube_time(result.issued->not_after)},
                 {"SERIAL", result.issued->serial_hex}});
    last_reason_.clear();  // the next pass reports the new state
  } else if (!result.error.empty()) {
    // Once per distinct failure: the hourly pass must not repeat it.
    if (last_reason_ != "failed: " + result.error) {
      if (result.from_cloud) {
        log_.error("linkerd-from-cloud-refused",
                   "linkerd's issuer or trust bundle from the control plane is not taken, what "
                   "is in force stays (" +
                       v.message + "): " + result.error,
                   {{"TRIGGER", trigger}, {"REASON", v.reason}});
      } else {
        log_.error("issuer-rotation-failed",
                   "the linkerd issuer needs renewing (" + v.message + ") but " + result.error,
                   {{"TRIGGER", trigger}, {"REASON", v.reason}});
      }
      last_reason_ = "failed: " + result.error;
    }
  } else if (v.reason != last_reason_) {
    // One line per change of state, not one per pass.
    log_.write(v.valid ? Priority::kInfo : Priority::kWarning,
               v.valid ? "certificates-valid" : "certificates-invalid", v.message,
               {{"REASON", v.reason}, {"NOT_AFTER", date(v.issuer_expires)}});
    last_reason_ = v.reason;
  }
  last_ = result;
  if (listener_) listener_(result);
}

void IssuerRotation::request(RotationTrigger trigger, bool force, std::string token) {
  if (stopped_) return;
  // A force wins over a plain request waiting in the queue.
  if (!queued_ || force) queued_ = Request{trigger, force, std::move(token)};
  if (busy_) return;
  busy_ = true;
  asio::co_spawn(io_, serve(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
}

awaitable<void> IssuerRotation::serve() {
  while (queued_ && !stopped_) {
    Request next = std::move(*queued_);
    queued_.reset();
    // This pass is the retry: a token the retry was for goes with it.
    retry_timer_.cancel();
    if (retry_for_ && next.token.empty()) {
      next.token = retry_for_->token;
      next.force = next.force || retry_for_->force;
    }
    retry_for_.reset();
    RotationResult result = co_await run(next.trigger, next.force);
    result.token = next.token;
    if (result.answer_lost && !lost_writes_.empty()) lost_writes_.back().token = next.token;
    // Found: the spec.linkerd.rotate its write was for is answered now.
    auto found = std::find_if(lost_writes_.begin(), lost_writes_.end(), [&](const LostWrite& w) {
      return result.found_written && w.serial == result.found_serial;
    });
    if (found != lost_writes_.end()) {
      result.found_token = found->token;
      if (result.token.empty()) result.token = result.found_token;
    }
    if (stopped_) break;
    if (result.deferred && queued_) {
      // The pass queued meanwhile runs for both (see mint_pass).
      Request& q = *queued_;
      if (next.force && !q.force) q.trigger = next.trigger;
      q.force = q.force || next.force;
      if (q.token.empty()) q.token = next.token;
      continue;
    }
    report(result);
    // What linkerd's identity controller must load: only the Event or a
    // restart makes sure of it.
    std::optional<LostWrite> written;
    if (result.rotated) {
      // (With its token: a restart k3s does not answer remembers the write
      // again, and the retry's pass that finds it answers that token.)
      written = LostWrite{result.issued->serial_hex, result.written_at, {}, result.token};
    } else if (found != lost_writes_.end()) {
      // Written, and no answer heard (k3s stalled past the deadline, the
      // connection dropped).
      log_.notice("issuer-write-found",
                  "the linkerd issuer written " + format_kube_time(*result.found_written) +
                      ", whose answer was lost, is in Secret " + config_.namespace_ + "/" +
                      std::string(kIssuerSecretName) +
                      ": making sure the identity controller loaded it");
      written = LostWrite{found->serial, *result.found_written, {}, result.found_token};
    }
    // Made sure of below (remembered again if k3s does not answer the
    // restart), as is an issuer this pass wrote: every lost write of that
    // issuer is forgotten (the same issuer written twice, a retry's write
    // after a lost one, is made sure of once); others based on it may
    // still land.
    const std::string sure = result.rotated                ? result.issued->serial_hex
                             : found != lost_writes_.end() ? found->serial
                                                           : std::string();
    if (!sure.empty())
      std::erase_if(lost_writes_, [&](const LostWrite& w) { return w.serial == sure; });
    // (Not a co_await inside a condition: GCC 12 runs it more than once.)
    ReloadOutcome reload = ReloadOutcome::kConfirmed;
    if (written && !stopped_) reload = co_await confirm_reload(written->sent);
    if (reload == ReloadOutcome::kUnanswered && !stopped_) {
      // k3s did not take the restart: the pass after the retry's backoff
      // finds this issuer in the Secret, as a lost write's, and makes sure
      // again (a controller that missed it would otherwise keep the old
      // issuer until a write to come).
      lost_writes_.push_back(std::move(*written));
      if (lost_writes_.size() > kLostWrites) lost_writes_.pop_front();
      result.k3s_unanswered = true;
      keep_longest(result.k3s_retry_after, reload_retry_after_);
    }
    // An issuer that waited for the bundle just written.
    if (result.pass_again && !queued_) queued_ = Request{RotationTrigger::kCloud, false, {}};
    // A spec.linkerd.rotate asked after the found write was minted is not
    // answered by it, and its force was spent on the find (mint_pass): it
    // is asked again at once, not at the daemon's next hourly pass. (Not
    // when the restart went unanswered: the retry carries it, with its
    // backoff; nor with the issuer from the cloud, which mints nothing.)
    if (result.found_written && !result.rotated && !result.token.empty() &&
        result.found_token != result.token && reload != ReloadOutcome::kUnanswered &&
        !(result.from_cloud && cloud_.issuer_from_cloud()) && !stopped_) {
      if (!queued_) queued_ = Request{RotationTrigger::kToken, next.force, {}};
      if (queued_->token.empty()) {
        queued_->token = result.token;
        queued_->force = queued_->force || next.force;
      }
    }
    // A write whose answer was lost: one more pass at once looks for it
    // (then the hourly ones, should k3s still not answer).
    if (result.answer_lost && !next.after_lost_answer && !queued_)
      queued_ = Request{next.trigger, false, {}, /*after_lost_answer=*/true};
    arm_retry(result, next);
  }
  busy_ = false;
}

void IssuerRotation::arm_retry(const RotationResult& result, const Request& pass) {
  if (!result.k3s_unanswered || stopped_) {
    retries_ = 0;
    return;
  }
  // Equal jitter: never at once (k3s just refused), never in step; and
  // never sooner than k3s's Retry-After asked (then a jittered share on
  // top, core/backoff.h), nor sooner than without one (kube-apiserver's
  // 429 says 1 s).
  const Duration ceiling = backoff_ceiling(timing_.retry, retries_);
  const double unit = timing_.random();
  Duration delay = ceiling / 2 + full_jitter(timing_.retry, retries_, unit) / 2;
  if (result.k3s_retry_after)
    delay = std::max(delay, retry_delay(timing_.retry, retries_, result.k3s_retry_after, unit));
  retries_ = std::min(retries_ + 1, 30u);
  // A spec.linkerd.rotate not yet answered is asked again with its force
  // (kept should another pass come first); tetherctl's force is not (its
  // caller has its answer).
  retry_for_.reset();
  if (!pass.token.empty())
    retry_for_ = Request{RotationTrigger::kToken, pass.force, pass.token, false};
  retry_timer_.expires_after(delay);
  // The handler may be queued when stop() runs, and the owner freed
  // before it runs: `alive_` says whether `this` still is.
  retry_timer_.async_wait(
      [this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
        if (ec || alive.expired() || stopped_) return;
        if (!retry_for_) return request(RotationTrigger::kRetry);
        const Request r = *retry_for_;
        request(r.trigger, r.force, r.token);
      });
}

namespace {
// Whether a pass would do anything else with `now` than with `before`: a
// follower failing again, with another message (a flapping connection to
// the control plane), changes nothing while it holds the object (the
// object stays in force), nor, without one, while it keeps failing (what
// the last pass said of the failure stands, with its first message). In
// the node's year a run of resets made a pass, two reads of k3s, per
// failed retry: 150 an hour.
bool differs_for_a_pass(const kube::FollowedObject& now, const kube::FollowedObject& before) {
  return now.object != before.object || now.read != before.read ||
         (!now.object && now.error.empty() != before.error.empty());
}
}  // namespace

bool IssuerRotation::use_cloud(CloudLinkerd cloud, bool pass) {
  if (cloud == cloud_) return false;
  const bool news = cloud.namespace_ != cloud_.namespace_ || cloud.refs != cloud_.refs ||
                    differs_for_a_pass(cloud.issuer, cloud_.issuer) ||
                    differs_for_a_pass(cloud.bundle, cloud_.bundle);
  cloud_ = std::move(cloud);
  if (pass && news) request(RotationTrigger::kCloud);
  return news;
}

void IssuerRotation::stop() {
  stopped_ = true;
  queued_.reset();
  timer_.cancel();
  retry_timer_.cancel();
  // A pass in flight ends now, not at its request's deadline: the daemon's
  // loop returns only when nothing is left on it.
  cluster_.http().disconnect_all();
}

}  // namespace tetherd
