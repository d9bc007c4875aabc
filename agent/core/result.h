#pragma once
// Result type for core code: a value or an Error with a message for humans.
// Core does not throw (STYLE.md); boost::system::result carries the outcome.

#include <stdexcept>
#include <string>
#include <utility>

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

namespace tetherd {

struct Error {
  // Result<std::string> is ambiguous from a string: construct it with
  // boost::system::in_place_value.
  Error() = default;
  explicit Error(std::string m) : message(std::move(m)) {}
  std::string message;
};

// Called by result<T, Error>::value() on an error; core code checks
// has_value() first, so reaching this is a programming error.
[[noreturn]] inline void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::logic_error("unchecked tetherd::Result: " + e.message);
}

template <class T>
using Result = boost::system::result<T, Error>;

inline Error make_error(std::string message) {
  return Error{std::move(message)};
}

}  // namespace tetherd
