#include "agent/tunnel/grpc_framing.h"

#include <array>
#include <cstring>

#include <boost/endian/conversion.hpp>

namespace tetherd::tunnel {

namespace {

void append_prefix(std::string& out, std::size_t message_size) {
  std::array<char, kPrefixBytes> prefix{};
  const auto length = boost::endian::native_to_big(static_cast<std::uint32_t>(message_size));
  std::memcpy(prefix.data() + 1, &length, sizeof length);
  out.append(prefix.data(), prefix.size());
}

}  // namespace

std::string frame_message(std::string_view message) {
  std::string out;
  append_prefix(out, message.size());
  out.append(message);
  return out;
}

bool append_framed(std::string& out, const google::protobuf::MessageLite& message) {
  const std::size_t before = out.size();
  append_prefix(out, message.ByteSizeLong());
  if (message.AppendToString(&out)) return true;
  out.resize(before);
  return false;
}

Result<void> MessageReader::feed(std::string_view bytes) {
  if (failed_) return make_error(why_);
  partial_.append(bytes);
  while (partial_.size() >= kPrefixBytes) {
    const auto flag = static_cast<unsigned char>(partial_[0]);
    std::uint32_t length = 0;
    std::memcpy(&length, partial_.data() + 1, sizeof length);
    length = boost::endian::big_to_native(length);
    if (flag != 0)
      why_ = flag == 1 ? "the server sent a compressed message, though none was offered"
                       : "a message prefix with flags " + std::to_string(flag) +
                             " (the stream is out of step)";
    else if (length > max_message_)
      why_ = "a message of " + std::to_string(length) + " bytes, above the limit of " +
             std::to_string(max_message_);
    if (!why_.empty()) {
      failed_ = true;
      partial_.clear();
      return make_error(why_);
    }
    if (partial_.size() - kPrefixBytes < length) break;
    ready_.push_back(partial_.substr(kPrefixBytes, length));
    partial_.erase(0, kPrefixBytes + length);
  }
  return {};
}

std::string MessageReader::next() {
  std::string m = std::move(ready_.front());
  ready_.pop_front();
  return m;
}

std::string_view packet_type_name(PacketType type) {
  switch (type) {
    case DIAL_REQ:
      return "DIAL_REQ";
    case DIAL_RSP:
      return "DIAL_RSP";
    case CLOSE_REQ:
      return "CLOSE_REQ";
    case CLOSE_RSP:
      return "CLOSE_RSP";
    case DATA:
      return "DATA";
    case DIAL_CLS:
      return "DIAL_CLS";
    case DRAIN:
      return "DRAIN";
    default:
      return "unknown";
  }
}

Result<Packet> decode_packet(std::string_view message) {
  Packet p;
  if (!p.ParseFromArray(message.data(), static_cast<int>(message.size())))
    return make_error("a packet that is not a konnectivity Packet (" +
                      std::to_string(message.size()) + " bytes)");
  const auto bad = [&](std::string why) {
    return make_error(std::string(packet_type_name(p.type())) + ": " + why);
  };
  switch (p.type()) {
    case DIAL_REQ:
      if (!p.has_dialrequest()) return bad("no dialRequest");
      break;
    case DATA:
      if (!p.has_data()) return bad("no data");
      if (p.data().connectid() <= 0)
        return bad("connectID " + std::to_string(p.data().connectid()));
      break;
    case CLOSE_REQ:
      if (!p.has_closerequest()) return bad("no closeRequest");
      if (p.closerequest().connectid() <= 0)
        return bad("connectID " + std::to_string(p.closerequest().connectid()));
      break;
    case DIAL_CLS:
      if (!p.has_closedial()) return bad("no closeDial");
      break;
    case DIAL_RSP:
    case CLOSE_RSP:
    case DRAIN:
      return bad("sent by agents, not servers");
    default:
      return make_error("a packet of unknown type " + std::to_string(static_cast<int>(p.type())));
  }
  return p;
}

}  // namespace tetherd::tunnel
