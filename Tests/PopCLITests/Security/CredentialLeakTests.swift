import Foundation
import PopTestSupport
import TestProcesses
import Testing

/// Credentials never show in pop's output, error messages or process listing.
@Suite(.timeLimit(.minutes(5)))
struct CredentialLeakTests {
    @Test func malformedOrUnsafeCredentialsAreRefusedWithoutEchoingThem() async throws {
        try await SecurityFixture.with() { fixture in
            let secret = "S3cret-" + UUID().uuidString
            for auth in [secret, ":" + secret, "two words:" + secret, "ops:" + secret + "\u{1}"] {
                let result = try await fixture.run(["status"], auth: auth)
                #expect(result.status == 2, "POP_AUTH \(auth.debugDescription): \(result)")
                #expect(result.stderr.contains("POP_AUTH"), "\(result)")
                #expect(!result.stderr.contains(secret) && !result.stdout.contains(secret), "\(result)")
            }
            let file = fixture.scratch.appendingPathComponent("shared-credentials").path
            _ = FileManager.default.createFile(atPath: file, contents: Data("ops:\(secret)\n".utf8), attributes: [.posixPermissions: 0o640])
            let unsafe = try await fixture.pop.run(["status"], extraEnvironment: ["POP_AUTH_FILE": file])
            #expect(unsafe.status == 7, "\(unsafe)")
            #expect(unsafe.stderr.contains("chmod 600 \(file)") && !unsafe.stderr.contains(secret), "\(unsafe)")
            let missing = try await fixture.pop.run(["status"], extraEnvironment: ["POP_AUTH_FILE": file + "-missing"])
            #expect(missing.status == 3, "\(missing)")
        }
    }

    @Test func aRunningPopShowsNoCredentialsInItsProcessListing() async throws {
        try await SecurityFixture.with() { fixture in
            let secret = "S3cret-" + UUID().uuidString
            #expect(try await fixture.run(["init", "--auth", "ops"], auth: "ops:" + secret).status == 0)
            #expect(
                try await fixture.run(["add", "web", "--template", "command", "--command", "sleep 1000"], auth: "ops:" + secret).status == 0)
            #expect(try await fixture.run(["deploy", "web", "m1"], auth: "ops:" + secret).status == 0)

            // `status --wait` keeps running (no agent starts the instance), long enough to look at it from outside.
            let process = try ChildProcess(
                [try PopRunner.binary(), "status", "--wait", "running", "--timeout", "60"],
                environment: fixture.pop.processEnvironment(["POP_AUTH": "ops:" + secret]))
            do {
                #expect(!process.hasExited, "status --wait ended at once with \(String(describing: process.exitCode))")
                let pid = process.pid
                // posix_spawn (vfork) returns as soon as the new program's memory replaces the old, a moment before
                // the kernel has recorded where its arguments are: /proc/PID/cmdline reads empty until then (about
                // one read in two straight after the spawn). Nothing announces the end of an exec, so read again
                // until the arguments are there; it takes microseconds.
                var cmdline = Data()
                for _ in 0..<5_000 where cmdline.isEmpty {
                    cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
                    if cmdline.isEmpty { try await Task.sleep(for: .milliseconds(1)) }
                }
                #expect(!String(decoding: cmdline, as: UTF8.self).contains(secret), "argv holds the password")
                #expect(String(decoding: cmdline, as: UTF8.self).contains("status"))
                // The environment, which does hold it, is readable only by its owner.
                let attributes = try FileManager.default.attributesOfItem(atPath: "/proc/\(pid)/environ")
                #expect((attributes[.posixPermissions] as? Int).map { $0 & 0o077 } == 0)
            } catch {
                await process.stop()
                throw error
            }
            await process.stop()
        }
    }
}
