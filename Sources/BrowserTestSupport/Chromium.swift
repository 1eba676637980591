import Foundation
import TestProcesses

#if canImport(Glibc)
import Glibc
#endif

/// A headless Chromium (Debian's `chromium`) with a fresh profile, driven through its DevTools protocol.
///
/// Use the scoped ``with(_:)``: the browser and every process it started are killed, and its profile removed, when
/// the body returns or throws.
public enum Chromium {
    /// The browser's executable: `CHROMIUM` when set, else `chromium` on the PATH.
    public static func executable(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let path = environment["CHROMIUM"], !path.isEmpty { return path }
        for folder in (environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(folder)/chromium"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw DevToolsError("chromium is not installed: run `apt-get install chromium` (scripts/test.sh does)")
    }

    /// Starts the browser, connects to it, runs `body`, then ends the browser.
    public static func with<T: Sendable>(
        startTimeout: Duration = .seconds(60), _ body: @escaping @Sendable (Browser) async throws -> T
    ) async throws -> T {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pop-chromium-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: profile) }
        let log = profile.appendingPathComponent("chromium.log")
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = profile.path
        // Its own temporary files (a singleton lock folder it cannot remove when it is killed) go with the profile.
        environment["TMPDIR"] = profile.path
        let process = try ChildProcess(
            [
                try executable(), "--headless=new", "--remote-debugging-port=0", "--user-data-dir=\(profile.path)",
                // Root cannot use the setuid sandbox; the browser only ever loads the test's own loopback pages.
                "--no-sandbox", "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
                "--disable-dev-shm-usage", "--password-store=basic", "about:blank",
            ], environment: environment, stdout: .file(log), stderr: .file(log))
        do {
            let portFile = profile.appendingPathComponent("DevToolsActivePort").path
            guard await FileArrival.wait(for: portFile, timeout: startTimeout) else {
                throw DevToolsError("chromium did not open its DevTools port within \(startTimeout): \(Self.tail(log))")
            }
            // The file is written whole, but may be seen before its second line is there.
            var lines: [Substring] = []
            for _ in 0..<100 {
                lines = ((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "").split(separator: "\n")
                if lines.count >= 2 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            guard lines.count >= 2, let port = Int(lines[0]) else {
                throw DevToolsError("chromium's DevToolsActivePort file is not PORT and PATH: \(lines)")
            }
            let result = try await DevToolsConnection.with(port: port, path: String(lines[1])) { connection in
                try await body(Browser(connection: connection))
            }
            process.signalGroup(SIGKILL)
            await process.waitForExit()
            return result
        } catch {
            process.signalGroup(SIGKILL)
            await process.waitForExit()
            throw error
        }
    }

    static func tail(_ log: URL) -> String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(10).joined(separator: "\n")
    }
}

/// A browser: opens pages (tabs), each with its own DevTools session.
public struct Browser: Sendable {
    /// The browser-wide DevTools connection.
    public let connection: DevToolsConnection

    /// Opens a new page (about:blank) of `width`×`height` CSS pixels and attaches to it.
    public func newPage(width: Int = 1280, height: Int = 800, mobile: Bool = false) async throws -> BrowserPage {
        let target = try await connection.send("Target.createTarget", ["url": "about:blank"])
        guard let targetID = target.string("targetId") else { throw DevToolsError("no target id: \(target.fields)") }
        let attached = try await connection.send("Target.attachToTarget", ["targetId": targetID, "flatten": true])
        guard let session = attached.string("sessionId") else { throw DevToolsError("no session id: \(attached.fields)") }
        let page = BrowserPage(connection: connection, session: session, targetID: targetID)
        try await page.start()
        try await page.setViewport(width: width, height: height, mobile: mobile)
        return page
    }
}
