import NIOCore

/// An entry point for coverage-guided fuzzing of everything that decodes bytes a server sent.
///
/// It runs the frame decoder over the input (split into reads of varying sizes, as a socket delivers them) and every
/// record decoder over each decoded reply body. Each decoder must either return a value or throw a decoding error;
/// anything else (a trap, an unbounded allocation, a hang) is a bug the fuzzer reports.
package enum ZooKeeperFuzzing {
    /// Decodes `input` as a server's byte stream, the way a connection would, and discards the results.
    ///
    /// The first byte chooses the read sizes the stream is cut into and whether the stream starts with a
    /// ConnectResponse; the rest is the stream itself.
    package static func decodeServerStream(_ input: UnsafeRawBufferPointer) {
        guard let control = input.first else { return }
        let stream = input.dropFirst()
        var decoder = ZooKeeperMessageDecoder(expectingConnectResponse: control & 1 == 1)
        // Reads of 1...7 bytes, or everything at once, as a socket may deliver the stream.
        let chunk = control >> 5 == 0 ? max(stream.count, 1) : Int(control >> 5)
        var buffer = ByteBuffer()
        var offset = stream.startIndex
        while offset < stream.endIndex {
            let end = min(offset + chunk, stream.endIndex)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: stream[offset..<end]))
            offset = end
            while true {
                let message: ZooKeeperServerMessage?
                do {
                    message = try decoder.decode(buffer: &buffer)
                } catch {
                    // A connection closes on a decoding error; so does this stream.
                    return
                }
                guard let message else { break }
                if case .reply(_, _, _, let body) = message {
                    decodeReplyBody(body, chroot: control & 2 == 0 ? "" : "/app")
                }
            }
        }
    }

    /// Decodes `body` with every reply-body decoder the client has, each on its own copy.
    package static func decodeReplyBody(_ body: ByteBuffer, chroot: String) {
        func attempt<T>(_ decode: (inout ByteBuffer) throws(JuteDecodingError) -> T) {
            var copy = body
            _ = try? decode(&copy)
        }
        attempt { (reply) throws(JuteDecodingError) in
            (ZooKeeperPath.clientPath(try reply.readJuteString(), chroot: chroot), try reply.readZooKeeperStat())
        }
        attempt { (reply) throws(JuteDecodingError) in try reply.readZooKeeperStat() }
        attempt { (reply) throws(JuteDecodingError) in (try reply.readJuteBuffer(), try reply.readZooKeeperStat()) }
        attempt { (reply) throws(JuteDecodingError) in
            (try reply.readJuteStringVector().map { ZooKeeperPath.clientPath($0, chroot: chroot) }, try reply.readZooKeeperStat())
        }
        attempt { (reply) throws(JuteDecodingError) in (try reply.readZooKeeperACLs(), try reply.readZooKeeperStat()) }
        attempt { (reply) throws(JuteDecodingError) in try reply.readJuteInt() }
        attempt { (reply) throws(JuteDecodingError) in try ZooKeeperMultiResponse.decode(&reply) }
        attempt { (reply) throws(JuteDecodingError) in try reply.readWatcherEvent() }
        attempt { (reply) throws(JuteDecodingError) in try reply.readConnectResponse() }
        attempt { (reply) throws(JuteDecodingError) in
            let count = try reply.readJuteVectorCount(minimumElementSize: 8)
            var ids: [ZooKeeperACL.ID] = []
            for _ in 0..<count { ids.append(ZooKeeperACL.ID(scheme: try reply.readJuteString(), id: try reply.readJuteString())) }
            return ids
        }
    }
}
