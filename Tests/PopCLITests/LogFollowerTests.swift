import Foundation
import PopAgent
import Testing

/// `pop logs -f` reads new log text on a thread of its own, which ends with the command rather than living on.
@Suite("pop logs -f", .serialized, .timeLimit(.minutes(5)))
struct LogFollowerTests {
    /// The threads of this process named as the follower's thread.
    static func followerThreads() -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            let name = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
            return name.trimmingCharacters(in: .whitespacesAndNewlines) == LogFollower.threadName
        }.count
    }

    @Test(arguments: ["stopped", "cancelled"])
    func theThreadEndsWithItsFollower(how: String) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pop-follow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let log = folder.appendingPathComponent("stdout.log").path
        try "before\n".write(toFile: log, atomically: false, encoding: .utf8)

        let follower = try InstanceLog.follow([log])
        let appended = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try appended.seekToEnd()
        try appended.write(contentsOf: Data("after\n".utf8))
        try appended.close()
        if how == "stopped" {
            var iterator = follower.chunks.makeAsyncIterator()
            #expect(try await iterator.next()?.text == "after\n", "only what was appended")
            #expect(Self.followerThreads() == 1)
            follower.stop()
            #expect(try await iterator.next() == nil, "the stream finishes")
        } else {
            // The command's task is cancelled while it waits for more: that stops the thread too.
            let (firstSeen, first) = AsyncStream<String>.makeStream()
            let reader = Task {
                for try await chunk in follower.chunks { first.yield(chunk.text) }
            }
            var seen = firstSeen.makeAsyncIterator()
            #expect(await seen.next() == "after\n", "only what was appended")
            #expect(Self.followerThreads() == 1)
            reader.cancel()
            _ = await reader.result
        }
        await follower.finished()
        #expect(Self.followerThreads() == 0, "the follower's thread lives on")
    }
}
