import Foundation
import NIOCore
import NIOPosix

/// Sends a four-letter command (`ruok`, `srvr`, `mntr`) to a ZooKeeper server and returns its answer.
public func zooKeeperFourLetterWord(_ command: String, host: String, port: Int, timeout: TimeAmount = .seconds(2)) async throws -> String {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connectTimeout(timeout)
        .connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    return try await withThrowingTaskGroup(of: String.self) { group in
        group.addTask {
            try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: command))
                var answer = ""
                for try await buffer in inbound { answer += String(buffer: buffer) }
                return answer
            }
        }
        group.addTask {
            try await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
            channel.channel.close(promise: nil)
            throw ZooKeeperTestSupportError("\(host):\(port) did not answer '\(command)' within \(timeout)")
        }
        let answer = try await group.next()!
        group.cancelAll()
        return answer
    }
}

/// The paths a server watches, by session (`0x` and the id in hexadecimal), from `wchc`: server paths, a chroot
/// part of them.
public func zooKeeperWatches(host: String, port: Int) async throws -> [String: Set<String>] {
    let answer = try await zooKeeperFourLetterWord("wchc", host: host, port: port, timeout: .seconds(30))
    var sessions: [String: Set<String>] = [:]
    var current: String?
    for line in answer.split(separator: "\n") {
        let text = line.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("0x") {
            current = text
        } else if let session = current, !text.isEmpty {
            sessions[session, default: []].insert(text)
        }
    }
    return sessions
}

/// The paths a server watches for one session, from `wchc`.
public func zooKeeperWatchedPaths(session: Int64, host: String, port: Int) async throws -> Set<String> {
    try await zooKeeperWatches(host: host, port: port)["0x" + String(session, radix: 16)] ?? []
}
