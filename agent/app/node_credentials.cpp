#include "agent/app/node_credentials.h"

#include <fcntl.h>
#include <filesystem>
#include <sys/file.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "agent/adapters/state_dir.h"
#include "agent/adapters/x509.h"

namespace tetherd {
namespace {

namespace json = boost::json;

std::string file_name(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

Result<void> write(const CredentialPaths& paths, const std::string& path, const std::string& text,
                   mode_t mode) {
  if (auto ec = StateDir(paths.dir).replace(file_name(path), text, mode))
    return make_error("cannot write " + path + ": " + ec.message());
  return {};
}

std::optional<std::string> read(const CredentialPaths& paths, const std::string& path,
                                std::size_t limit) {
  boost::system::error_code ec;
  return StateDir(paths.dir).read(file_name(path), ec, limit);
}

}  // namespace

CredentialPaths credential_paths(const Config& config, const std::string& config_path) {
  CredentialPaths p;
  p.kubeconfig =
      config.control_plane
          ? config.control_plane->kubeconfig
          : (std::filesystem::path(config_path).parent_path() / "controlplane.kubeconfig").string();
  p.dir = std::filesystem::path(p.kubeconfig).parent_path().string();
  p.key = p.dir + "/node.key";
  p.certificate = p.dir + "/node.crt";
  p.next_key = p.dir + "/node.key.next";
  p.next_csr = p.dir + "/node.csr.next";
  return p;
}

bool same_server(std::string_view a, std::string_view b) {
  while (!a.empty() && a.back() == '/')
    a.remove_suffix(1);
  while (!b.empty() && b.back() == '/')
    b.remove_suffix(1);
  return a == b;
}

std::optional<PendingRequest> read_pending(const CredentialPaths& paths) {
  auto text = read(paths, paths.next_csr, 64 << 10);
  auto key = read(paths, paths.next_key, x509::kMaxKeyBytes);
  if (!text || !key) return std::nullopt;
  boost::system::error_code ec;
  auto v = json::parse(*text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  auto field = [&v](const char* k) {
    const auto* f = v.as_object().if_contains(k);
    return f != nullptr && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  if (field("name").empty() || field("server").empty()) return std::nullopt;
  return PendingRequest{field("name"), field("server"), field("node"), *key};
}

Result<void> save_pending_key(const CredentialPaths& paths, const std::string& key_pem) {
  return write(paths, paths.next_key, key_pem, 0600);
}

Result<void> save_pending_name(const CredentialPaths& paths, const PendingRequest& pending) {
  return write(paths, paths.next_csr,
               json::serialize(json::object{
                   {"name", pending.name}, {"server", pending.server}, {"node", pending.node}}) +
                   "\n",
               0600);
}

void forget_pending(const CredentialPaths& paths) {
  std::error_code ignored;
  std::filesystem::remove(paths.next_csr, ignored);
  std::filesystem::remove(paths.next_key, ignored);
}

Result<void> install_issued(const CredentialPaths& paths, const PendingRequest& pending,
                            const std::string& certificate_pem) {
  const auto before = read(paths, paths.certificate, x509::kMaxBundleBytes);
  if (auto r = write(paths, paths.certificate, certificate_pem, 0644); !r) return r;
  if (auto r = write(paths, paths.key, pending.key_pem, 0600); !r) {
    // The pair as it was (or finish_install's to complete, if even that
    // cannot be written): never a certificate beside another's key.
    if (before) (void)write(paths, paths.certificate, *before, 0644);
    return r;
  }
  forget_pending(paths);
  return {};
}

CredentialsLock::CredentialsLock(const std::string& dir)
    : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
  locked_ = fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) == 0;
}

CredentialsLock::~CredentialsLock() {
  if (fd_ >= 0) ::close(fd_);
}

bool finish_install(const CredentialPaths& paths) {
  auto cert_pem = read(paths, paths.certificate, x509::kMaxBundleBytes);
  auto next_pem = read(paths, paths.next_key, x509::kMaxKeyBytes);
  if (!cert_pem || !next_pem) return false;
  auto certs = x509::parse_certificates(*cert_pem, paths.certificate);
  auto next = x509::parse_private_key(*next_pem, paths.next_key);
  if (!certs || !next || !x509::key_matches(certs->front(), *next)) return false;
  if (auto key_pem = read(paths, paths.key, x509::kMaxKeyBytes)) {
    auto key = x509::parse_private_key(*key_pem, paths.key);
    if (key && x509::key_matches(certs->front(), *key)) {
      // Installed whole; only the request was not forgotten (a crash just
      // before): it is done with.
      forget_pending(paths);
      return false;
    }
  }
  if (!write(paths, paths.key, *next_pem, 0600)) return false;
  forget_pending(paths);
  return true;
}

}  // namespace tetherd
