import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import ZooKeeperNIO

@Suite("Session controller")
struct ZooKeeperSessionControllerTests {
    /// An event the session's state cannot receive is logged as an error, and stops a debug build at once.
    @Test func anImpossibleEventIsLoggedAndStopsADebugBuild() async {
        #if DEBUG
        let expected = ExitTest.Condition.failure
        #else
        let expected = ExitTest.Condition.success
        #endif
        let result = await #expect(processExitsWith: expected, observing: [\.standardErrorContent]) {
            let loop = EmbeddedEventLoop()
            let logger = Logger(label: "zookeeper.test") { StreamLogHandler.standardError(label: $0) }
            let configuration = ZooKeeperConfiguration(servers: [.init(host: "127.0.0.1", port: 1)], logger: logger)
            let controller = ZooKeeperSessionController(eventLoop: loop, configuration: configuration)
            // Not started, so no connection is open: a channel becoming active is impossible.
            controller.connectionActive(0, channel: EmbeddedChannel(loop: loop))
        }
        let standardError = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(standardError.contains("zookeeper session received an event its state cannot receive"), "\(standardError)")
        #expect(standardError.contains("zk.event=connectionEstablished"), "\(standardError)")
        #expect(standardError.contains("zk.state=idle"), "\(standardError)")
    }
}
