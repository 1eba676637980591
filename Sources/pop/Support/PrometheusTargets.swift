import Foundation
import PopState

/// `pop machines --prometheus FILE`: the agents' endpoints as Prometheus file_sd targets, and how to scrape them.
enum PrometheusTargets {
    /// One file_sd target group.
    struct Group: Codable, Hashable {
        var targets: [String]
        var labels: [String: String]
    }

    static func write(_ machines: [MachineRecord], to path: String, context: CommandContext, global: GlobalOptions) async throws {
        guard !path.isEmpty else {
            throw PopError(.invalidInput, "--prometheus needs a file name.")
        }
        let file = URL(fileURLWithPath: path).standardizedFileURL.path
        var groups: [Group] = []
        var skipped: [String] = []
        for machine in machines {
            guard let text = machine.endpoint, let address = EndpointAddress(text), let target = address.target else {
                skipped.append(machine.id.rawValue)
                continue
            }
            // No `machine` label on the target: every series carries its own, which would clash with it.
            groups.append(Group(targets: [target], labels: address.tls ? ["__scheme__": "https"] : [:]))
        }
        let credentials = try CommandContext.storeConfiguration(global).credentials
        let tokenFile = file + ".token"
        if credentials == nil {
            let key = try await context.namespace.endpointKey()
            try writeAtomically(Array((key.scrapeToken + "\n").utf8), to: tokenFile, mode: 0o600)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try writeAtomically(Array(try encoder.encode(groups)) + [10], to: file, mode: 0o644)
        if context.json {
            try context.printJSON(["file": file, "targets": "\(groups.count)", "tokenFile": credentials == nil ? tokenFile : ""])
            return
        }
        context.done("wrote \(groups.count) scrape target\(groups.count == 1 ? "" : "s") to \(file)")
        for machine in skipped {
            context.warn("machine \(machine) serves no network endpoint (a unix socket, or an older agent): run its agent with `pop fg --listen ADDRESS:PORT` to scrape it")
        }
        let authentication: String
        if let credentials {
            authentication = """
                    basic_auth:                      # the namespace's credentials (pop init --auth)
                      username: \(credentials.user)
                      password_file: /etc/prometheus/pop-password   # a file holding the namespace's password
                """
        } else {
            authentication = """
                    authorization:                   # the scrape token (it opens /metrics only)
                      type: Bearer
                      credentials_file: \(tokenFile)
                """
        }
        context.out.line(
            """
            Add to prometheus.yml (the file is read again whenever it changes):
            scrape_configs:
              - job_name: pop
                file_sd_configs:
                  - files: [\(file)]
            \(authentication)
            """)
    }

    /// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so that a reader never sees half.
    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else {
            throw PopError(.system, "Cannot write \(path): \(String(cString: strerror(errno))).", path: path)
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                close(fd)
                unlink(temporary)
                throw PopError(.system, "Cannot write \(path): \(String(cString: strerror(errno))).", path: path)
            }
            offset += written
        }
        fchmod(fd, mode)
        close(fd)
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw PopError(.system, "Cannot write \(path): \(String(cString: strerror(errno))).", path: path)
        }
    }
}
