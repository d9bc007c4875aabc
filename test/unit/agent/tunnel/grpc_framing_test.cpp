#include "agent/tunnel/grpc_framing.h"

#include <gtest/gtest.h>

namespace tetherd::tunnel {
namespace {

std::string packet_bytes(const Packet& p) {
  return frame_message(p.SerializeAsString());
}

Packet dial(std::string address, std::int64_t random) {
  Packet p;
  p.set_type(DIAL_REQ);
  p.mutable_dialrequest()->set_protocol("tcp");
  p.mutable_dialrequest()->set_address(std::move(address));
  p.mutable_dialrequest()->set_random(random);
  return p;
}

TEST(GrpcFraming, APrefixIsAZeroFlagAndABigEndianLength) {
  const std::string framed = frame_message("abc");
  EXPECT_EQ(framed, std::string("\0\0\0\0\3abc", 8));
}

TEST(GrpcFraming, APacketIsAppendedFramedAfterWhatIsQueued) {
  Packet data;
  data.set_type(DATA);
  data.mutable_data()->set_connectid(3);
  data.mutable_data()->set_data(std::string(70000, 'x'));  // a length above 16 bits
  std::string queue = "queued";
  append_framed(queue, data);
  append_framed(queue, dial("127.0.0.1:6443", 9));
  EXPECT_EQ(queue, "queued" + packet_bytes(data) + packet_bytes(dial("127.0.0.1:6443", 9)));
}

TEST(GrpcFraming, MessagesCutAnywhereComeOutWholeAndInOrder) {
  const std::string stream = packet_bytes(dial("127.0.0.1:6443", 7)) +
                             packet_bytes(dial("127.0.0.1:6443", 8)) + frame_message("");
  for (std::size_t cut = 1; cut <= stream.size(); ++cut) {
    MessageReader reader(1 << 20);
    std::vector<std::string> got;
    for (std::size_t at = 0; at < stream.size(); at += cut) {
      ASSERT_TRUE(reader.feed(std::string_view(stream).substr(at, cut)));
      while (reader.has_message())
        got.push_back(reader.next());
    }
    ASSERT_EQ(got.size(), 3u) << "cut every " << cut;
    EXPECT_EQ(decode_packet(got[1])->dialrequest().random(), 8);
    EXPECT_TRUE(got[2].empty());
    EXPECT_EQ(reader.partial_bytes(), 0u);
  }
}

TEST(GrpcFraming, ATooLongMessageIsRefusedFromItsPrefixAlone) {
  MessageReader reader(100);
  std::string prefix("\0\0\0\0\x65", 5);  // 101 bytes announced, none sent
  auto fed = reader.feed(prefix);
  ASSERT_FALSE(fed);
  EXPECT_NE(fed.error().message.find("above the limit of 100"), std::string::npos);
  EXPECT_EQ(reader.partial_bytes(), 0u) << "nothing kept";
  EXPECT_FALSE(reader.feed(frame_message("x"))) << "out of step for good";
}

TEST(GrpcFraming, ACompressedMessageIsRefused) {
  MessageReader reader(100);
  auto fed = reader.feed(std::string("\1\0\0\0\1x", 6));
  ASSERT_FALSE(fed);
  EXPECT_NE(fed.error().message.find("compressed"), std::string::npos);
}

TEST(GrpcFraming, PacketsAreCheckedAgainstTheirType) {
  Packet no_payload;
  no_payload.set_type(DIAL_REQ);
  EXPECT_FALSE(decode_packet(no_payload.SerializeAsString()));

  Packet data;
  data.set_type(DATA);
  data.mutable_data()->set_connectid(0);
  auto bad = decode_packet(data.SerializeAsString());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "DATA: connectID 0");

  Packet from_an_agent;
  from_an_agent.set_type(DIAL_RSP);
  from_an_agent.mutable_dialresponse();
  EXPECT_FALSE(decode_packet(from_an_agent.SerializeAsString()));

  EXPECT_FALSE(decode_packet(std::string("\xff\xff\xff", 3))) << "not protobuf";
  EXPECT_TRUE(decode_packet(dial("127.0.0.1:6443", 1).SerializeAsString()));
}

TEST(GrpcFraming, UnknownFieldsOfNewerServersAreSkipped) {
  // Packet field 9 and DialRequest field 4 (forks' additions) do not stop
  // an agent that does not know them.
  std::string bytes = dial("127.0.0.1:6443", 3).SerializeAsString();
  bytes += std::string("\x4a\x02hi", 4);  // field 9, length-delimited
  auto p = decode_packet(bytes);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->dialrequest().address(), "127.0.0.1:6443");
}

}  // namespace
}  // namespace tetherd::tunnel
