#pragma once
// A throwaway certificate authority for tests: a self-signed CA and the
// leaves it issues (servers, clients, Kubernetes users with groups), made in
// memory with OpenSSL 3. ECDSA P-256 and SHA-256 throughout, as linkerd and
// k3s use. Failures throw std::runtime_error carrying OpenSSL's error text:
// this is test code, and a broken fixture should stop the test loudly.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace tetherd::test {

struct IssuedCert {
  std::string cert_pem;  // the leaf only; its issuer is the TestCa
  std::string key_pem;   // PKCS#8
};

struct LeafOptions {
  std::string common_name;                 // subject CN= (the Kubernetes user)
  std::vector<std::string> organizations;  // subject O= (Kubernetes groups)
  std::vector<std::string> dns_names;      // subjectAltName DNS
  std::vector<std::string> ip_addresses;   // subjectAltName IP (v4 and v6)
  // Validity is relative to now: a negative offset and a short lifetime give
  // a certificate that has already expired.
  std::chrono::seconds not_before_offset{-300};
  std::chrono::seconds lifetime{std::chrono::hours(24)};
  // "Now" for the validity: a simulation's time; none: the real clock.
  std::optional<std::chrono::system_clock::time_point> now;
  bool server_auth = true;  // extendedKeyUsage
  bool client_auth = true;
};

class TestCa {
 public:
  explicit TestCa(std::string common_name = "tetherd test CA");
  // A CA made elsewhere (by openssl, for the demo): its certificate and key.
  static TestCa from_pem(std::string cert_pem, std::string key_pem);

  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }

  // A fresh key pair and a certificate for it: random serial, SKI/AKI,
  // basicConstraints CA:FALSE, keyUsage digitalSignature.
  IssuedCert issue(const LeafOptions& options) const;

  // Signs a PKCS#10 request (PEM) as Kubernetes' kube-apiserver-client
  // signer does: the request's subject and public key (its signature
  // checked first), CA:FALSE, keyUsage digitalSignature, extendedKeyUsage
  // clientAuth, valid from 5 minutes ago (the signer's backdate) until
  // `lifetime` from now. Throws on a request that does not parse or whose
  // signature is wrong.
  // `now`: a simulation's time; none: the real clock.
  std::string sign_client_request(
      const std::string& csr_pem, std::chrono::seconds lifetime,
      std::optional<std::chrono::system_clock::time_point> now = std::nullopt) const;

 private:
  std::string cert_pem_;
  std::string key_pem_;
};

}  // namespace tetherd::test
