#pragma once
// gRPC's messages on an HTTP/2 stream (grpc doc/PROTOCOL-HTTP2.md,
// "Length-Prefixed-Message"): a compressed flag byte, a 4-byte big-endian
// length, the message. HTTP/2 itself is nghttp2's and the messages are
// protobuf's; this prefix is the part of gRPC neither library speaks, so it
// is the one piece of the wire written here (README, Dependencies). Pure,
// so the fuzz target feeds it directly.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "agent/core/result.h"
#include "agent/tunnel/proto/client.pb.h"

namespace tetherd::tunnel {

inline constexpr std::size_t kPrefixBytes = 5;

// The bytes of one message on the stream.
std::string frame_message(std::string_view message);
// Appends `message`'s bytes on the stream to `out`, serialized in place
// (what the agent sends: no copy of a DATA packet's payload on the way).
// False, with `out` as it was, when protobuf cannot serialize it (above
// 2 GiB): a prefix without its message would put the stream out of step.
bool append_framed(std::string& out, const google::protobuf::MessageLite& message);

// Reassembles messages from DATA frames cut anywhere. Bounded: a message
// longer than `max_message` is an error as soon as its prefix says so (not
// once it has been buffered), as is a compressed one (tetherd never
// offers an encoding, so a server has none to use).
class MessageReader {
 public:
  explicit MessageReader(std::size_t max_message) : max_message_(max_message) {}

  // Appends `bytes`; the whole messages among them are then next()'s. After
  // an error the reader stays failed: the stream is out of step.
  Result<void> feed(std::string_view bytes);
  bool has_message() const { return !ready_.empty(); }
  // The oldest whole message, with its size on the wire (prefix included).
  std::string next();
  // Bytes of a message not yet whole.
  std::size_t partial_bytes() const { return partial_.size(); }

 private:
  std::size_t max_message_;
  std::string partial_;
  std::deque<std::string> ready_;
  bool failed_ = false;
  std::string why_;
};

// A packet from the server, decoded and checked: its type agrees with its
// payload, and the IDs it names are positive where the protocol needs one.
Result<Packet> decode_packet(std::string_view message);

std::string_view packet_type_name(PacketType type);

}  // namespace tetherd::tunnel
