import Foundation
import Testing

/// pop claims only the platform it is built and tested on.
@Suite("platform claims")
struct PlatformTests {
    /// The repository's root, from this file's place in it.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("Package.swift declares no platform the package cannot build on, and README.md says where pop runs")
    func claimsOnlyLinux() throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        for platform in [".macOS(", ".iOS(", ".tvOS(", ".watchOS(", ".visionOS(", ".macCatalyst("] {
            #expect(!manifest.contains(platform), "Package.swift claims \(platform)")
        }
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("## Platforms"))
        #expect(readme.contains("pop runs on **Linux**"))
        let guardFile = Self.root.appendingPathComponent("Sources/PopState/Environment/Platform.swift")
        #expect(try String(contentsOf: guardFile, encoding: .utf8).contains("#if !os(Linux)"))
    }
}
