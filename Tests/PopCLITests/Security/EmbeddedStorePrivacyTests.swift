import Foundation
import PopTestExpectations
import PopTestSupport
import Testing

/// The embedded store's files through the `pop` binary: private to their owner, and refused when others can write.
@Suite struct EmbeddedStorePrivacyTests {
    func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    /// Every file and folder under `folder`, recursively.
    func everything(under folder: String) throws -> [String] {
        let names = try #require(FileManager.default.subpathsOfDirectory(atPath: folder) as [String]?)
        return names.map { folder + "/" + $0 }
    }

    @Test func theStoreFolderAndEveryFileInItArePrivate() async throws {
        try await PopRunner.with { pop in
            try await pop.ok("init")
            try await pop.ok("add", "web", "--template", "command", "--command", "sleep 1000")
            try await pop.ok("status")
            #expect(try mode(pop.home.path) == 0o700)
            let entries = try everything(under: pop.home.path)
            #expect(entries.contains(pop.home.path + "/store.sqlite"), "\(entries)")
            for entry in entries {
                let entryMode = try mode(entry)
                #expect(entryMode & 0o077 == 0, "\(entry) has mode \(String(entryMode, radix: 8)); only its owner may use it")
            }
        }
    }

    @Test(arguments: [0o777, 0o775, 0o757, 0o722])
    func aStoreFolderOthersCanWriteIsRefusedAndLeftAlone(_ folderMode: Int) async throws {
        try await PopRunner.with { pop in
            try FileManager.default.createDirectory(atPath: pop.home.path, withIntermediateDirectories: true)
            try FileManager.default.setAttributes([.posixPermissions: folderMode], ofItemAtPath: pop.home.path)
            for arguments in [["init"], ["status"], ["add", "web", "--template", "command", "--command", "true"]] {
                let result = try await pop.run(arguments)
                #expect(result.status == 7, "pop \(arguments): \(result)")
                #expect(result.stderr.contains("can be written by other users"), "\(result)")
                #expect(result.stderr.contains("chmod 700 \(pop.home.path)"), "\(result)")
            }
            #expect(try everything(under: pop.home.path).isEmpty, "pop wrote into a folder others can write")
            #expect(try mode(pop.home.path) == folderMode, "pop changed the refused folder's mode")
        }
    }

    @Test(.enabled(if: geteuid() == 0, "only root can give a folder to another user"))
    func aStoreFolderOfAnotherUserIsRefused() async throws {
        try await PopRunner.with { pop in
            try FileManager.default.createDirectory(atPath: pop.home.path, withIntermediateDirectories: true)
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: pop.home.path)
            #expect(chown(pop.home.path, 4242, 4242) == 0)
            let result = try await pop.run(["status"])
            #expect(result.status == 7, "\(result)")
            #expect(result.stderr.contains("belongs to user 4242"), "\(result)")
        }
    }

    @Test func aReadableStoreOfOursIsMadePrivateAgain() async throws {
        try await PopRunner.with { pop in
            try await pop.ok("init")
            let store = pop.home.path + "/store.sqlite"
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: pop.home.path)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: store)
            try await pop.ok("status")
            #expect(try mode(pop.home.path) == 0o700)
            #expect(try mode(store) == 0o600)
        }
    }
}
