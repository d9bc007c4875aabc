#pragma once
// What every OpenSSL caller in tetherd (and its test PKI) needs: owning
// pointers that free with the right function, and OpenSSL's per-thread
// error queue kept empty.

#include <string>

#include <openssl/err.h>

namespace tetherd::openssl {

// std::unique_ptr<BIO, Deleter<BIO_free_all>>: OpenSSL's free functions are
// not deleters by themselves.
template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};

// OpenSSL's error queue is per thread and outlives the call that filled it:
// an error left behind is reported by the next unrelated call that checks
// the queue (a TLS read, say). So every entry point empties it both ways.
class ErrorQueueScope {
 public:
  ErrorQueueScope() { ERR_clear_error(); }
  ~ErrorQueueScope() { ERR_clear_error(); }
  ErrorQueueScope(const ErrorQueueScope&) = delete;
  ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
};

// Empties the queue and returns its earliest reason, the root cause ("wrong
// tag"; the later ones only say which routine gave up); "" when empty.
inline std::string take_error_reason() {
  std::string reason;
  while (const unsigned long code = ERR_get_error()) {
    const char* text = ERR_reason_error_string(code);
    if (reason.empty() && text != nullptr) reason = text;
  }
  return reason;
}

}  // namespace tetherd::openssl
