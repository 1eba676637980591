import NIOCore
import NIOTestUtils
import Testing

@testable import ZooKeeperNIO

@Suite("Jute codec")
struct ZooKeeperCodecTests {
    static func frame(_ write: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var payload = ByteBuffer()
        write(&payload)
        var frame = ByteBuffer()
        frame.writeInteger(Int32(payload.readableBytes))
        frame.writeBuffer(&payload)
        return frame
    }

    static func replyFrame(xid: Int32, zxid: Int64, error: Int32, body: ByteBuffer = ByteBuffer()) -> ByteBuffer {
        frame {
            $0.writeInteger(xid)
            $0.writeInteger(zxid)
            $0.writeInteger(error)
            var body = body
            $0.writeBuffer(&body)
        }
    }

    static let connectResponse = ConnectResponse(
        protocolVersion: 0, timeout: 4000, sessionID: 0x1234, password: Array(repeating: 7, count: 16), readOnly: false
    )

    @Test func decoderHandlesEverySplitOfTheStream() throws {
        var stat = ByteBuffer()
        stat.writeZooKeeperStat(ZooKeeperStat(czxid: 1, mzxid: 2, version: 3, dataLength: 4, pzxid: 5))
        var event = ByteBuffer()
        event.writeInteger(Int32(3))
        event.writeInteger(Int32(3))
        event.writeJuteString("/a/b")

        var replyFrame = Self.replyFrame(xid: 1, zxid: 10, error: 0, body: stat)
        var eventFrame = Self.replyFrame(xid: -1, zxid: -1, error: 0, body: event)
        var errorFrame = Self.replyFrame(xid: 2, zxid: 11, error: -101)
        var pingFrame = Self.replyFrame(xid: -2, zxid: 11, error: 0)
        var authFrame = Self.replyFrame(xid: -4, zxid: 0, error: -115)
        var input = ByteBuffer()
        input.writeBuffer(&replyFrame)
        input.writeBuffer(&eventFrame)
        input.writeBuffer(&errorFrame)
        input.writeBuffer(&pingFrame)
        input.writeBuffer(&authFrame)
        let expected: [ZooKeeperServerMessage] = [
            .reply(xid: 1, zxid: 10, error: 0, body: stat),
            .watchEvent(WatcherEvent(type: 3, state: 3, path: "/a/b"), zxid: -1),
            .reply(xid: 2, zxid: 11, error: -101, body: ByteBuffer()),
            .pingReply,
            .authReply(error: -115),
        ]

        // The verifier replays the input many times into one decoder, so it checks the decoder past the handshake.
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(input, expected)],
            decoderFactory: { ZooKeeperMessageDecoder(expectingConnectResponse: false) }
        )

        // The handshake answer comes first on every connection: check it with the stream split at every byte.
        var stream = Self.frame { $0.writeConnectResponse(Self.connectResponse) }
        stream.writeBuffer(&input)
        for split in 0...stream.readableBytes {
            var decoder = ZooKeeperMessageDecoder()
            var buffered = ByteBuffer()
            let head = stream.getSlice(at: stream.readerIndex, length: split)!
            let tail = stream.getSlice(at: stream.readerIndex + split, length: stream.readableBytes - split)!
            var messages: [ZooKeeperServerMessage] = []
            for part in [head, tail] {
                var part = part
                buffered.writeBuffer(&part)
                while let message = try decoder.decode(buffer: &buffered) { messages.append(message) }
            }
            #expect(messages == [.connectResponse(Self.connectResponse)] + expected, "split at \(split)")
        }
    }

    @Test func oldServersOmitTheReadOnlyFlag() throws {
        var frame = Self.frame {
            $0.writeInteger(Int32(0))
            $0.writeInteger(Int32(6000))
            $0.writeInteger(Int64(42))
            $0.writeJuteBuffer(Array(repeating: 1, count: 16))
        }
        var decoder = ZooKeeperMessageDecoder()
        let message = try decoder.decode(buffer: &frame)
        #expect(message == .connectResponse(ConnectResponse(protocolVersion: 0, timeout: 6000, sessionID: 42, password: Array(repeating: 1, count: 16), readOnly: false)))
    }

    @Test func framesAboveTheLimitOrNegativeAreRefused() {
        var decoder = ZooKeeperMessageDecoder(maxFrameSize: 100, expectingConnectResponse: false)
        var large = ByteBuffer()
        large.writeInteger(Int32(101))
        #expect(throws: ZooKeeperError(code: .frameTooLarge, message: "the server sent a 101-byte frame, above the 100-byte limit (jute.maxbuffer); raise maxBufferSize if such large nodes are expected")) {
            _ = try decoder.decode(buffer: &large)
        }
        var negative = ByteBuffer()
        negative.writeInteger(Int32(-5))
        do {
            _ = try decoder.decode(buffer: &negative)
            Issue.record("a negative length must be refused")
        } catch {
            #expect(error.code == .protocolError)
        }
        // A frame exactly at the limit is fine (but truncated inside, so it is a protocol error, not a size error).
        var exact = ByteBuffer()
        exact.writeInteger(Int32(100))
        exact.writeBytes([UInt8](repeating: 0, count: 100))
        do {
            _ = try decoder.decode(buffer: &exact)
        } catch {
            #expect(error.code != .frameTooLarge)
        }
    }

    @Test func encoderWritesFramesAndRefusesLargeOnes() throws {
        let encoder = ZooKeeperMessageEncoder(maxFrameSize: 64)
        var out = ByteBuffer()
        try encoder.encode(data: .request(xid: 7, opCode: .getData, body: ByteBuffer(bytes: [1, 2, 3])), out: &out)
        #expect(Array(out.readableBytesView) == [0, 0, 0, 11, 0, 0, 0, 7, 0, 0, 0, 4, 1, 2, 3])

        var connect = ByteBuffer()
        try encoder.encode(data: .connect(.newSession(timeoutMilliseconds: 4000)), out: &connect)
        // length, protocol version, last zxid, timeout, session id, 16-byte password, read-only flag.
        #expect(connect.readableBytes == 4 + 4 + 8 + 4 + 8 + 4 + 16 + 1)
        #expect(connect.getInteger(at: 0, as: Int32.self) == 45)
        #expect(connect.getInteger(at: 16, as: Int32.self) == 4000)

        var refused = ByteBuffer()
        #expect(throws: ZooKeeperError.self) {
            try encoder.encode(data: .request(xid: 1, opCode: .setData, body: ByteBuffer(bytes: [UInt8](repeating: 0, count: 57))), out: &refused)
        }
        #expect(refused.readableBytes == 0)
    }

    @Test func recordsRoundTrip() throws {
        let stat = ZooKeeperStat(czxid: 1, mzxid: 2, ctime: 3, mtime: 4, version: 5, cversion: 6, aversion: 7, ephemeralOwner: 8, dataLength: 9, numChildren: 10, pzxid: 11)
        var buffer = ByteBuffer()
        buffer.writeZooKeeperStat(stat)
        #expect(buffer.readableBytes == ZooKeeperStat.encodedSize)
        #expect(try buffer.readZooKeeperStat() == stat)

        let acl = ZooKeeperACL.digestAll(user: "u", password: "p") + ZooKeeperACL.readOnly
        buffer.writeZooKeeperACLs(acl)
        #expect(try buffer.readZooKeeperACLs() == acl)

        buffer.writeJuteStringVector(["a", "", "ü"])
        #expect(try buffer.readJuteStringVector() == ["a", "", "ü"])

        // Null strings and buffers (-1) read as empty.
        buffer.writeInteger(Int32(-1))
        buffer.writeInteger(Int32(-1))
        #expect(try buffer.readJuteString() == "")
        #expect(try buffer.readJuteBuffer() == [])

        // A vector count larger than the bytes left is refused before allocating.
        buffer.writeInteger(Int32.max)
        #expect(throws: JuteDecodingError.truncated) { try buffer.readJuteStringVector() }
    }

    @Test func multiRequestsAndResponses() throws {
        var request = ByteBuffer()
        request.writeMulti([(.check, { $0.writePathVersion("/a", version: 3) })])
        #expect(try request.readMultiHeader() == (13, false, -1))
        #expect(try request.readJuteString() == "/a")
        #expect(try request.readJuteInt() == 3)
        #expect(try request.readMultiHeader() == (-1, true, -1))

        var response = ByteBuffer()
        for (type, error) in [(Int32(-1), Int32(0)), (-1, -101), (-1, -2)] {
            response.writeInteger(type)
            response.writeJuteBool(false)
            response.writeInteger(Int32(-1))
            response.writeInteger(error)
        }
        response.writeInteger(Int32(-1))
        response.writeJuteBool(true)
        response.writeInteger(Int32(-1))
        #expect(try ZooKeeperMultiResponse.decode(&response) == [.error(0), .error(-101), .error(-2)])
    }
}
