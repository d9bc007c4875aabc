#include "test/support/api_server/wire.h"

#include <cstdio>
#include <ctime>
#include <random>

namespace tetherd::test::apiserver {
namespace {

std::string_view reason_phrase(unsigned status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "Request Entity Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

std::string http_date(std::chrono::seconds offset) {
  return utc_now("%a, %d %b %Y %H:%M:%S GMT", offset);
}

std::string audit_id() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::uint64_t high = random();
  std::uint64_t low = random();
  char text[40];
  std::snprintf(text, sizeof text, "%08llx-%04llx-4%03llx-%04llx-%012llx",
                static_cast<unsigned long long>(high >> 32),
                static_cast<unsigned long long>((high >> 16) & 0xffff),
                static_cast<unsigned long long>(high & 0xfff),
                static_cast<unsigned long long>(((low >> 48) & 0x3fff) | 0x8000),
                static_cast<unsigned long long>(low & 0xffffffffffffULL));
  return text;
}

std::string padded(std::string prefix, std::string_view suffix, std::size_t size) {
  std::size_t fixed = prefix.size() + suffix.size();
  prefix.append(size > fixed ? size - fixed : 0, 'x');
  prefix += suffix;
  return prefix;
}

}  // namespace

std::string format_head(const Head& head) {
  std::string text = "HTTP/1.1 " + std::to_string(head.status) + " " +
                     std::string(reason_phrase(head.status)) + "\r\n";
  text += "Audit-Id: " + audit_id() + "\r\n";
  text += "Cache-Control: no-cache, private\r\n";
  text += "Content-Type: " + std::string(head.content_type) + "\r\n";
  if (head.retry_after) text += "Retry-After: " + std::to_string(*head.retry_after) + "\r\n";
  text += "Date: " + http_date(head.clock_offset) + "\r\n";
  if (head.content_length)
    text += "Content-Length: " + std::to_string(*head.content_length) + "\r\n";
  else
    text += "Transfer-Encoding: chunked\r\n";
  if (head.close) text += "Connection: close\r\n";
  text += "\r\n";
  return text;
}

std::string format_chunk(std::string_view data) {
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string text = size;
  text += data;
  text += "\r\n";
  return text;
}

std::string format_response_head(const Response& response, bool close,
                                 std::chrono::seconds clock_offset) {
  return format_head(Head{response.status, response.content_type, response.body.size(),
                          response.retry_after, close, clock_offset});
}

std::string format_plain_error(unsigned status) {
  std::string body = std::to_string(status) + " " + std::string(reason_phrase(status));
  return "HTTP/1.1 " + body +
         "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + body;
}

std::string oversized_object(std::size_t size) {
  return padded(R"({"kind":"Oversized","apiVersion":"v1","padding":")", "\"}", size);
}

std::string oversized_event(std::string_view kind, std::string_view api_version, std::size_t size) {
  std::string prefix = R"({"type":"MODIFIED","object":{"kind":")" + std::string(kind) +
                       R"(","apiVersion":")" + std::string(api_version) +
                       R"(","metadata":{"name":"oversized"},"padding":")";
  return padded(std::move(prefix), "\"}}", size);
}

}  // namespace tetherd::test::apiserver
