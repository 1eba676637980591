import Foundation
import Testing
@testable import PopState

/// The PopError `body` throws, or nil (recording an issue) when it throws nothing or something else.
func refusal(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> PopError? {
    do {
        try body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    } catch {
        guard let error = error as? PopError else {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            return nil
        }
        return error
    }
}

@Suite struct StoreCredentialsTests {
    static let secret = "Sup3r-SECRET-value"

    /// Expects `body` to throw a PopError of `code` whose message and hint never contain the secret.
    func expectRefusal(
        _ code: PopError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
    ) {
        guard let error = refusal(sourceLocation: sourceLocation, body) else { return }
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(!error.description.contains(Self.secret), "the error leaks the password: \(error)", sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
    }

    @Test func parsesUserAndPasswordSplittingAtTheFirstColon() throws {
        let credentials = try StoreCredentials(parsing: "ops:pa:ss", source: "POP_AUTH")
        #expect(credentials.user == "ops")
        #expect(credentials.password == "pa:ss")
        #expect(credentials.pair == "ops:pa:ss")
        #expect(credentials.digestID.hasPrefix("ops:"))
        #expect(credentials.acl.count == 1 && credentials.acl[0].id.scheme == "digest")
        #expect(credentials.acl[0].id.id == credentials.digestID)
        #expect(credentials.acl[0].permissions == .all)
    }

    @Test func malformedCredentialsAreRefusedWithoutEchoingThem() {
        for text in [Self.secret, ":" + Self.secret, "us er:" + Self.secret, "a\u{7}b:" + Self.secret, "ops:", "ops:x\n" + Self.secret] {
            expectRefusal(.invalidInput) { _ = try StoreCredentials(parsing: text, source: "POP_AUTH") }
        }
        expectRefusal(.invalidInput) {
            _ = try StoreCredentials(parsing: String(repeating: "u", count: 65) + ":" + Self.secret, source: "POP_AUTH")
        }
    }

    @Test func descriptionNamesTheUserButNeverThePassword() throws {
        let credentials = try StoreCredentials(parsing: "ops:" + Self.secret, source: "POP_AUTH")
        #expect(credentials.description.contains("ops"))
        #expect(!credentials.description.contains(Self.secret))
        #expect(!"\(credentials)".contains(Self.secret))
        let configuration = try StoreConfiguration(
            kind: .zooKeeper(servers: [.init(host: "zk", port: 2181)], chroot: nil), credentials: credentials)
        #expect(!configuration.description.contains(Self.secret))
    }

    @Test func generatedPasswordsAreLongAndDistinct() throws {
        let first = try StoreCredentials.generate(user: "ops", source: "--auth")
        let second = try StoreCredentials.generate(user: "ops", source: "--auth")
        #expect(first.password.count == 32)
        #expect(first.password != second.password)
        #expect(first.password.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
    }

    @Test func environmentRemovingSecretsDropsPopAuth() {
        let cleaned = StoreCredentials.removingSecrets(from: ["POP_AUTH": "a:b", "PATH": "/bin", "POP_HOST": "zk"])
        #expect(cleaned == ["PATH": "/bin", "POP_HOST": "zk"])
    }
}

@Suite struct CredentialsFileTests {
    /// Runs `body` with a new folder of its own, removed once `body` has returned or thrown.
    func withFolder<T>(_ body: (String) throws -> T) throws -> T {
        let path = NSTemporaryDirectory() + "pop-credentials-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    func writeFile(_ path: String, _ text: String, mode: Int) throws {
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    @Test func aPrivateFileIsRead() throws {
        try withFolder { folder in
            let path = folder + "/credentials"
            try writeFile(path, "# pop\n\n  ops:" + StoreCredentialsTests.secret + "  \n", mode: 0o600)
            let credentials = try CredentialsFile(path: path).read()
            #expect(credentials.user == "ops")
            #expect(credentials.password == StoreCredentialsTests.secret)
            #expect(credentials.source == path)
        }
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660, 0o606, 0o666])
    func aFileOthersCanReadOrWriteIsRefusedWithTheChmodToRun(_ mode: Int) throws {
        try withFolder { folder in
            let path = folder + "/credentials"
            try writeFile(path, "ops:" + StoreCredentialsTests.secret + "\n", mode: mode)
            let error = try #require(refusal { _ = try CredentialsFile(path: path).read() })
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains(path) && error.message.contains(String(mode, radix: 8)), "\(error)")
            #expect(error.hint == "Run `chmod 600 \(path)`.")
            #expect(!error.description.contains(StoreCredentialsTests.secret))
        }
    }

    @Test(.enabled(if: geteuid() == 0, "only root can give a file to another user"))
    func aFileOfAnotherUserIsRefused() throws {
        try withFolder { folder in
            let path = folder + "/credentials"
            try writeFile(path, "ops:" + StoreCredentialsTests.secret + "\n", mode: 0o600)
            #expect(chown(path, 4242, 4242) == 0)
            let error = try #require(refusal { _ = try CredentialsFile(path: path).read() })
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains("4242"), "\(error)")
        }
    }

    @Test func malformedFilesAreRefused() throws {
        try withFolder { folder in
            let base = folder
            for (index, text) in ["", "# only a comment\n", "ops:a\nops:b\n", "no-colon-" + StoreCredentialsTests.secret].enumerated() {
                let path = base + "/credentials-\(index)"
                try writeFile(path, text, mode: 0o600)
                let error = try #require(refusal { _ = try CredentialsFile(path: path).read() }, "\(text.debugDescription)")
                #expect(error.code == .invalidInput)
                #expect(!error.description.contains(StoreCredentialsTests.secret))
            }
            let folderError = try #require(refusal { _ = try CredentialsFile(path: base).read() })
            #expect(folderError.code == .invalidInput)
        }
    }

    @Test func writeCreatesAPrivateFileAndNeverOverwrites() throws {
        try withFolder { folder in
            let path = folder + "/config/pop/credentials"
            let credentials = try StoreCredentials(parsing: "ops:" + StoreCredentialsTests.secret, source: "--auth")
            try CredentialsFile(path: path).write(credentials)
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            let folderAttributes = try FileManager.default.attributesOfItem(atPath: (path as NSString).deletingLastPathComponent)
            #expect((folderAttributes[.posixPermissions] as? Int) == 0o700)
            #expect(try CredentialsFile(path: path).read().pair == credentials.pair)
            #expect(throws: PopError.self) { try CredentialsFile(path: path).write(credentials) }
        }
    }

    @Test func theEnvironmentChoosesPopAuthThenPopAuthFileThenTheDefaultFile() throws {
        try withFolder { folder in
            let base = folder
            try FileManager.default.createDirectory(atPath: base + "/pop", withIntermediateDirectories: true)
            try writeFile(base + "/pop/credentials", "default:one\n", mode: 0o600)
            try writeFile(base + "/named", "named:two\n", mode: 0o600)

            #expect(try StoreCredentials.fromEnvironment(["XDG_CONFIG_HOME": base])?.user == "default")
            #expect(try StoreCredentials.fromEnvironment(["XDG_CONFIG_HOME": base, "POP_AUTH_FILE": base + "/named"])?.user == "named")
            #expect(
                try StoreCredentials.fromEnvironment(["XDG_CONFIG_HOME": base, "POP_AUTH_FILE": base + "/named", "POP_AUTH": "env:three"])?
                    .user == "env")
            #expect(try StoreCredentials.fromEnvironment(["XDG_CONFIG_HOME": base + "/nothing-here"]) == nil)
            #expect(try StoreCredentials.fromEnvironment([:]) == nil)
            #expect(throws: PopError.self) { try StoreCredentials.fromEnvironment(["POP_AUTH_FILE": base + "/missing"]) }
            #expect(throws: PopError.self) { try StoreCredentials.fromEnvironment(["POP_AUTH_FILE": "relative/path"]) }

            // An unsafe default file is refused too, not skipped.
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: base + "/pop/credentials")
            #expect(throws: PopError.self) { try StoreCredentials.fromEnvironment(["XDG_CONFIG_HOME": base]) }
        }
    }

    @Test func onlyZooKeeperConfigurationsCarryCredentials() throws {
        try withFolder { folder in
            let home = PopHome(path: folder)
            let environment = ["POP_AUTH": "ops:" + StoreCredentialsTests.secret]
            let zooKeeper = try StoreConfiguration(host: "127.0.0.1:2181/app", prefix: nil, environment: environment, home: home)
            #expect(zooKeeper.credentials?.user == "ops")
            #expect(!zooKeeper.description.contains(StoreCredentialsTests.secret))
            let embedded = try StoreConfiguration(host: nil, prefix: nil, environment: ["POP_AUTH": "malformed"], home: home)
            #expect(embedded.credentials == nil)
        }
    }
}
