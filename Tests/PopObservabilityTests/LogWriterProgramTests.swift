import Foundation
import Testing

@testable import PopAgent

/// `pop-log` as it is built: the kernel starts it at its own entry point, and its code calls nothing of libc, which it
/// never sets up (docs/agent.md, Logs). A call that crept in would work in this debug build, where the dynamic loader
/// resolves it, and crash each instance's log writer in the static release build.
@Suite struct LogWriterProgramTests {
    /// The `pop-log` the agent starts (the one built beside this test).
    func program() throws -> String {
        let path = LogWriter.executable
        try #require(path.hasSuffix("/pop-log"), "no pop-log beside the test: \(path)")
        return path
    }

    /// `nm ARGUMENTS`' output lines.
    func symbols(_ arguments: [String]) async throws -> [Substring] {
        let (status, output) = try await runProgram(["nm"] + arguments)
        try #require(status == 0, "nm \(arguments.joined(separator: " ")) failed (binutils installed?): \(output)")
        return output.split(separator: "\n")
    }

    @Test func theKernelStartsItAtItsOwnEntryPoint() async throws {
        let path = try program()
        let header = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)).read(upToCount: 32) ?? Data()
        try #require(header.count == 32 && header.prefix(4) == Data([0x7f, 0x45, 0x4c, 0x46]), "\(path) is not an ELF file")
        // e_entry, at byte 24 of a 64-bit ELF header, little-endian.
        let entry = header[24..<32].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let line = try #require(try await symbols([path]).first { $0.hasSuffix(" pop_log_entry") })
        #expect(UInt64(line.split(separator: " ")[0], radix: 16) == entry, "entry \(String(entry, radix: 16)), \(line)")
    }

    @Test func itsCodeCallsNoLibcFunctionButTheConstructorsExit() async throws {
        let object = (try program() as NSString).deletingLastPathComponent + "/CPopAgentLinux.build/log_writer.c.o"
        let undefined = try await symbols(["-u", object]).compactMap { $0.split(separator: " ").last.map(String.init) }
        #expect(undefined == ["_exit"], "\(object) calls \(undefined)")
    }
}
