import Testing

@testable import ZooKeeperNIO

@Suite("Connect strings and paths")
struct ZooKeeperConfigurationTests {
    @Test func parsesHostsPortsAndChroot() throws {
        let configuration = try ZooKeeperConfiguration(connectString: "h1:2181, h2 ,[::1]:2182/app/x")
        #expect(configuration.servers == [.init(host: "h1", port: 2181), .init(host: "h2", port: 2181), .init(host: "::1", port: 2182)])
        #expect(configuration.chroot == "/app/x")
        #expect(try ZooKeeperConfiguration(connectString: "h:1/").chroot == nil)
    }

    @Test(arguments: ["", "h:0", "h:x", ":2181", "h1,,h2", "h/app/", "[::1", "h:2181/a//b"])
    func rejectsMalformedConnectStrings(_ text: String) {
        #expect(throws: ZooKeeperError.self) { try ZooKeeperConfiguration(connectString: text) }
        do {
            _ = try ZooKeeperConfiguration(connectString: text)
        } catch let error as ZooKeeperError {
            #expect(error.code == .invalidConnectString)
            #expect(error.message.contains("host:port"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func chrootMapping() {
        #expect(ZooKeeperPath.serverPath("/", chroot: "/app") == "/app")
        #expect(ZooKeeperPath.serverPath("/a", chroot: "/app") == "/app/a")
        #expect(ZooKeeperPath.clientPath("/app", chroot: "/app") == "/")
        #expect(ZooKeeperPath.clientPath("/app/a/b", chroot: "/app") == "/a/b")
        #expect(ZooKeeperPath.clientPath("/apple", chroot: "/app") == "/apple")
        #expect(ZooKeeperPath.clientPath("/a", chroot: "") == "/a")
    }

    @Test func everyErrorCodeHasAName() {
        let codes: [ZooKeeperError.Code] = [
            .systemError, .runtimeInconsistency, .dataInconsistency, .connectionLoss, .marshallingError, .unimplemented,
            .operationTimeout, .badArguments, .unknownSession, .newConfigNoQuorum, .reconfigInProgress, .apiError, .noNode,
            .noAuth, .badVersion, .noChildrenForEphemerals, .nodeExists, .notEmpty, .sessionExpired, .invalidCallback,
            .invalidACL, .authFailed, .sessionMoved, .notReadOnly, .ephemeralOnLocalSession, .noWatcher, .requestTimeout,
            .reconfigDisabled, .sessionClosedRequireSASLAuth, .quotaExceeded, .throttledOp,
        ]
        #expect(Set(codes.map(\.name)).count == codes.count)
        #expect(codes.allSatisfy { !$0.name.hasPrefix("UNKNOWN(") })
        #expect(ZooKeeperError.Code(rawValue: -999).name == "UNKNOWN(-999)")
        #expect(ZooKeeperError(code: .noNode, path: "/x").message == "NONODE on /x: the node does not exist")
    }
}
