import Foundation
import PopTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A log flood with the real agent: a service that writes 300 MB in 256 KiB writes, as fast as it can.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct LogFloodTests {
    /// Each log file stays within the documented limit (10 MiB) at every moment, the folder within (keep + 1) limits per
    /// file, the agent does not copy the logs (well under 0.5 s of its CPU per 100 MB), and the instance runs on.
    @Test func aFloodStaysWithinTheLogLimitAtEveryMoment() async throws {
        try await withFaultMachine { pop in
            let megabytes = 300
            try await pop.ok(
                "add", "flood", "--template", "command", "--command",
                "sh -c 'dd if=/dev/zero bs=256K count=\(megabytes * 4) status=none; echo flood-end; exec sleep 100000'")
            try await pop.ok("start")
            let agent = try #require(pop.agentPID())
            let logs = pop.instanceFolder("flood") + "/logs"
            try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
            let sampler = try FolderSizeSampler(folder: logs, prefix: "stdout.log")
            let ticksBefore = try cpuTicks(agent)
            try await pop.ok("deploy", "flood")
            // Every byte went through the log writer once the line after the flood is in the file.
            #expect(await Waiting.file(logs + "/stdout.log", within: .seconds(120)) { $0.hasSuffix("flood-end\n") })
            let peak = sampler.stop()
            let agentSeconds = Double(try cpuTicks(agent) - ticksBefore) / Double(sysconf(Int32(_SC_CLK_TCK)))

            let limit = 10 << 20
            #expect(peak.largestFile <= limit, "a log file reached \(peak.largestFile) bytes")
            #expect(peak.total <= 6 * limit, "the stdout files reached \(peak.total) bytes (over \(peak.samples) samples)")
            // A rotated piece and its index share the limit. The flood has no newline: a read (up to 64 KiB) that does
            // not fit whole goes to the next piece, so a full piece lacks less than one read.
            let kept = ["", ".1", ".2", ".3", ".4", ".5"].map {
                fileSize(logs + "/stdout.log" + $0) + fileSize(logs + "/stdout.idx" + $0)
            }
            #expect(kept.dropFirst().allSatisfy { $0 <= limit && $0 > limit - 65536 - 4096 }, "the rotated files are full: \(kept)")
            #expect(!FileManager.default.fileExists(atPath: logs + "/stdout.log.6"))
            #expect(
                agentSeconds < 0.5 * Double(megabytes) / 100,
                "the agent used \(agentSeconds) s of CPU for \(megabytes) MB of logs")
            let instance = try await pop.statusReport().services.first { $0.service == "flood" }?.instances.first
            #expect(instance?.state == "running" && instance?.restarts == 0, "\(String(describing: instance))")
        }
    }
}

/// utime + stime of every thread of `pid`, in clock ticks.
func cpuTicks(_ pid: Int32) throws -> Int {
    let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
    return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
}

func fileSize(_ path: String) -> Int {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_size) : 0
}
