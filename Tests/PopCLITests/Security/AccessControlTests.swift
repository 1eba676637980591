import Foundation
import PopTestSupport
import PopState
import TestProcesses
import Testing

/// `pop init --auth` on a real ZooKeeper, checked from outside with kazoo.
@Suite(.timeLimit(.minutes(10)))
struct AccessControlTests {
    /// What acl_probe.py reports.
    struct ProbeReport: Decodable {
        var paths: [String]
        var acls: [String: [[AnyScalar]]]
        var results: [String: [String: String]]
        var outsider_connected: Bool
        var insider_session_unchanged: Bool
    }

    /// A JSON scalar of an ACL entry: the permissions number, or the scheme and id strings.
    enum AnyScalar: Decodable, Hashable {
        case number(Int)
        case text(String)

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(Int.self) {
                self = .number(number)
            } else {
                self = .text(try container.decode(String.self))
            }
        }
    }

    static let prefix = ["--prefix", "/team/pop"]

    @Test func outsidersCanNeitherReadNorChangeAnyNodeWhileThePasswordHolderWorksNormally() async throws {
        try await SecurityFixture.with() { fixture in
            let password = "pw-" + UUID().uuidString
            let auth = "ops:" + password
            var outputs: [CommandResult] = []

            // The password given on the command line is never printed back.
            let initialized = try await fixture.run(["init", "--auth", auth] + Self.prefix, auth: nil)
            #expect(initialized.status == 0, "\(initialized)")
            #expect(initialized.stdout.contains("only digest user 'ops'"), "\(initialized)")
            outputs.append(initialized)

            // With the credentials pop works as usual, and every node it creates gets the same ACL.
            for arguments in [
                ["add", "web", "--template", "command", "--command", "sleep 1000"],
                ["deploy", "web", "m1"],
                ["config", "web", "--command", "sleep 2000"],
                ["status"], ["status", "web", "--json"], ["config", "web"], ["machines"],
                ["add", "other", "--template", "command", "--command", "true"],
            ] {
                let result = try await fixture.run(arguments + Self.prefix, auth: auth)
                #expect(result.status == 0, "pop \(arguments): \(result)")
                outputs.append(result)
            }
            #expect(outputs[5].stdout.contains("web"))

            let digest = try StoreCredentials(parsing: auth, source: "test").digestID
            for outsider in ["ops:wrong-" + UUID().uuidString, nil] {
                let data = try await Kazoo.run("acl_probe.py", [fixture.host, "/team", auth] + (outsider.map { [$0] } ?? []))
                let report = try JSONDecoder().decode(ProbeReport.self, from: data)
                // The walk saw the prefix's parent, the namespace and the nodes the commands above created.
                for path in ["/team", "/team/pop", "/team/pop/machines", "/team/pop/services", "/team/pop/services/web",
                    "/team/pop/services/web/machines/m1", "/team/pop/services/other"]
                {
                    #expect(report.paths.contains(path), "\(path) missing from \(report.paths)")
                }
                for path in report.paths {
                    #expect(
                        report.acls[path] == [[.number(31), .text("digest"), .text(digest)]],
                        "\(path) has ACL \(String(describing: report.acls[path]))")
                    let results = report.results[path] ?? [:]
                    for operation in ["get", "getChildren", "getACL", "set", "setACL", "create"] {
                        #expect(results[operation] == "NoAuthError", "\(operation) \(path) as \(outsider ?? "nobody"): \(results)")
                    }
                    // The topmost node's parent is the operator's open chroot, so ZooKeeper checks its delete against
                    // that; the node is never empty (it holds the namespace), so the delete still fails.
                    #expect(
                        results["delete"] == (path == "/team" ? "NotEmptyError" : "NoAuthError"),
                        "delete \(path) as \(outsider ?? "nobody"): \(results)")
                    #expect(results["stillExists"] == "ok", "\(path) was deleted by an outsider")
                }
                #expect(report.outsider_connected, "the outsider's connection was dropped")
                #expect(report.insider_session_unchanged, "the credential holder's session was disturbed")
            }

            // pop itself with wrong or missing credentials: a prompt, clear permission error (exit 7) naming no secret.
            let wrong = "wrong-" + UUID().uuidString
            for (auth, expected) in [("ops:" + wrong, "user 'ops'"), (nil, "has no credentials")] {
                for arguments in [["status"], ["add", "intruder", "--template", "command", "--command", "id"], ["deploy", "web", "m2"], ["init", "--force"]] {
                    let result = try await fixture.run(arguments + Self.prefix, auth: auth)
                    let elapsed = result.elapsed
                    #expect(result.status == 7, "pop \(arguments) as \(auth ?? "nobody"): \(result)")
                    #expect(result.stderr.contains("refused access") && result.stderr.contains(expected), "\(result)")
                    // Refused at once, not after the 5 s connect timeout of a client that took the refusal for a lost
                    // connection (that would also exit 5, not 7); the bound leaves room for a loaded machine.
                    #expect(elapsed < .seconds(30), "pop \(arguments) took \(elapsed)")
                    #expect(!result.stderr.contains(wrong) && !result.stdout.contains(wrong))
                    outputs.append(result)
                }
            }
            // Nothing an outsider tried changed the state.
            let status = try await fixture.run(["status", "--json"] + Self.prefix, auth: auth)
            #expect(status.status == 0 && !status.stdout.contains("intruder") && !status.stdout.contains("m2"), "\(status)")
            outputs.append(status)

            for result in outputs {
                #expect(!result.stdout.contains(password) && !result.stderr.contains(password), "the password leaked: \(result)")
            }
        }
    }

    @Test func aGeneratedSecretIsPrintedOnceSavedPrivatelyAndUsedFromTheFile() async throws {
        try await SecurityFixture.with() { fixture in
            let file = fixture.scratch.appendingPathComponent("credentials").path
            let initialized = try await fixture.pop.run(
                ["init", "--auth", "agents", "--save-credentials"], extraEnvironment: ["POP_AUTH_FILE": file])
            #expect(initialized.status == 0, "\(initialized)")
            let line = initialized.stdout.split(separator: "\n").first { $0.contains("shown only now") }
            let pair = try #require(line.map { String($0.split(separator: " ").last ?? "") })
            #expect(pair.hasPrefix("agents:") && pair.count == "agents:".count + 32, "\(initialized)")
            #expect(try String(contentsOfFile: file, encoding: .utf8) == pair + "\n")
            let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            #expect(mode == 0o600)

            // The file is where pop and its agents find the credentials.
            let status = try await fixture.pop.run(["status"], extraEnvironment: ["POP_AUTH_FILE": file])
            #expect(status.status == 0, "\(status)")
            #expect(!status.stdout.contains(pair) && !status.stderr.contains(pair))
            let other = try await fixture.pop.run(["add", "web", "--template", "command", "--command", "true"], extraEnvironment: ["POP_AUTH_FILE": file])
            #expect(other.status == 0, "\(other)")

            // A credentials file others can read is refused, with the command that fixes it.
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
            let refused = try await fixture.pop.run(["status"], extraEnvironment: ["POP_AUTH_FILE": file])
            #expect(refused.status == 7, "\(refused)")
            #expect(refused.stderr.contains("chmod 600 \(file)"), "\(refused)")
            #expect(!refused.stderr.contains(pair))

            // The default location is used when POP_AUTH_FILE is not set.
            let defaultFile = fixture.scratch.appendingPathComponent("pop/credentials").path
            try FileManager.default.createDirectory(
                atPath: fixture.scratch.appendingPathComponent("pop").path, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: defaultFile, contents: Data((pair + "\n").utf8), attributes: [.posixPermissions: 0o600])
            let fromDefault = try await fixture.pop.run(["status"])
            #expect(fromDefault.status == 0, "\(fromDefault)")

            // Saving never overwrites an existing file, and is refused before the store is touched.
            let again = try await fixture.pop.run(
                ["init", "--force", "--auth", "agents", "--save-credentials"], extraEnvironment: ["POP_AUTH_FILE": defaultFile])
            #expect(again.status == 4, "\(again)")
            #expect(try await fixture.pop.run(["status", "web"]).status == 0)
        }
    }

    @Test func authOnTheEmbeddedStoreOrSaveWithoutAuthIsAUsageError() async throws {
        try await PopRunner.with { pop in
            let embedded = try await pop.run(["init", "--auth", "ops:secret-value"])
            #expect(embedded.status == 2, "\(embedded)")
            #expect(embedded.stderr.contains("embedded store") && !embedded.stderr.contains("secret-value"), "\(embedded)")
            let save = try await pop.run(["init", "--save-credentials"])
            #expect(save.status == 2, "\(save)")
            let malformed = try await pop.run(["init", "--auth", "bad user:secret-value"], extraEnvironment: ["POP_HOST": "127.0.0.1:1"])
            #expect(malformed.status == 2, "\(malformed)")
            #expect(!malformed.stderr.contains("secret-value"), "\(malformed)")
        }
    }
}
