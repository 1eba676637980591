import Foundation
import Glibc
import PopState
import Testing

@testable import PopAgent

@Suite("Local instance records")
struct LocalInstanceRecordTests {
    @Test func aRecordWrittenInPlaceReadsBackEqual() async throws {
        try await SupervisorFixture.with { fixture in
            let configuration = try fixture.configuration("web", ["sleep", "1000"])
            var record = LocalInstanceRecord(
                configuration: configuration, pid: 4242, processStartTime: 123_456_789, processGroup: 4242,
                started: Date(timeIntervalSince1970: 1_700_000_000.123), restarts: 3,
                setupStep: "pip \"quoted\" \\ back\u{1}")
            try record.write()
            #expect(try LocalInstanceRecord.read(from: configuration.stateDirectory) == record)
            // The same bytes as the canonical encoder would write, so any reader decodes it.
            let canonical = try PopJSON.canonicalEncoder().encode(record)
            let json = try LocalInstanceRecord.encodedConfiguration(configuration)
            #expect(record.encoded(configurationJSON: json) == Array(canonical))
            // A shorter record replaces a longer one in the same file.
            record.setupStep = nil
            record.restarts = 0
            try record.write(configurationJSON: json)
            #expect(try LocalInstanceRecord.read(from: configuration.stateDirectory) == record)
        }
    }

    /// An agent killed between writing a record and truncating it to its length leaves the new record followed by
    /// the old one's tail: unreadable, so it names no process (and the process it would have named never ran).
    @Test func aTornRecordNamesNoProcess() async throws {
        try await SupervisorFixture.with { fixture in
            let configuration = try fixture.configuration("torn", ["sleep", "1000"])
            let long = LocalInstanceRecord(
                configuration: configuration, pid: 1, processStartTime: 1, processGroup: 1, started: Date(), restarts: 0,
                setupStep: String(repeating: "x", count: 200))
            try long.write()
            let short = LocalInstanceRecord(
                configuration: configuration, pid: 2, processStartTime: 2, processGroup: 2, started: Date(), restarts: 0)
            let bytes = short.encoded(configurationJSON: try LocalInstanceRecord.encodedConfiguration(configuration))
            let fd = open(LocalInstanceRecord.path(in: configuration.stateDirectory), O_WRONLY)
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            close(fd)
            #expect(throws: SupervisorError.self) { try LocalInstanceRecord.read(from: configuration.stateDirectory) }
            try await fixture.withSupervisor { supervisor in
                #expect(supervisor.adopt(stateDirectory: configuration.stateDirectory) == .noRecord)
            }
        }
    }
}
