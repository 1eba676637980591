#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import PopAgent
import PopFleetClient
import PopTestSupport
import PopState
import TestProcesses
import Testing

/// The agent's endpoint served in this process: who gets in, the journals it streams, its metrics and resources.
@Suite(.timeLimit(.minutes(5)))
struct EndpointTests {
    static let credentials = try! StoreCredentials(user: "ops", password: "correct-horse", source: "test")

    func port(_ address: EndpointAddress) -> Int {
        if case .tcp(_, let port) = address.location { return port }
        return 0
    }

    /// Reads frames from `answer` until `done` says enough.
    func frames(_ answer: inout EndpointClient.Answer, until done: ([JournalFrame]) -> Bool) async throws -> [JournalFrame] {
        var decoder = JournalFrameDecoder()
        var frames: [JournalFrame] = []
        while !done(frames), let buffer = try await answer.next() { frames += try decoder.decode(buffer.readableBytesView) }
        return frames
    }

    func texts(_ frames: [JournalFrame]) -> [String] {
        frames.compactMap { if case .line(let line) = $0 { String(decoding: line.text, as: UTF8.self) } else { nil } }
    }

    @Test func strangersGet401AndLearnNothing() async throws {
        try await EndpointFixture.with(credentials: Self.credentials) { fixture in
            let port = port(fixture.address)
            let other = EndpointKey.generate()
            let targets = ["/logs?service=web&streams=stdout", "/events", "/metrics", "/resources", "/nowhere", "/"]
            for target in targets {
                let attempts: [[String: String]] = [
                    [:],
                    ["Authorization": "Basic " + Data("ops:wrong".utf8).base64EncodedString()],
                    ["Authorization": "Basic " + Data("intruder:correct-horse".utf8).base64EncodedString()],
                    ["Authorization": "Bearer " + other.scrapeToken],
                    ["Authorization": "Bearer " + fixture.key.scrapeToken + "x"],
                    ["Authorization": RequestSignature.authorization(method: "GET", target: target, key: other)],
                    ["Authorization": RequestSignature.authorization(method: "GET", target: "/elsewhere", key: fixture.key)],
                    ["Authorization": "Pop-HMAC-SHA256 t=1,n=00,s=AAAA"],
                ]
                for headers in attempts {
                    let response = try await RawHTTP.get(host: "127.0.0.1", port: port, target: target, headers: headers)
                    #expect(response.status == 401, "\(target) \(headers): \(response)")
                    #expect(response.body == "unauthorized\n", "\(target) \(headers): \(response)")
                }
            }
            // The namespace's user and password, and the scrape token, open /metrics and nothing else.
            let basic = "Basic " + Data("ops:correct-horse".utf8).base64EncodedString()
            #expect(try await RawHTTP.get(host: "127.0.0.1", port: port, target: "/metrics", headers: ["Authorization": basic]).status == 200)
            #expect(try await RawHTTP.get(host: "127.0.0.1", port: port, target: "/events", headers: ["Authorization": basic]).status == 401)
            let bearer = "Bearer " + fixture.key.scrapeToken
            #expect(try await RawHTTP.get(host: "127.0.0.1", port: port, target: "/metrics", headers: ["Authorization": bearer]).status == 200)
            // A signed request for an unknown path is answered: 404.
            let signed = RequestSignature.authorization(method: "GET", target: "/nowhere", key: fixture.key)
            let notFound = try await RawHTTP.get(host: "127.0.0.1", port: port, target: "/nowhere", headers: ["Authorization": signed])
            #expect(notFound.status == 404)
            // Every answer is dated (RFC 9110), to the second of its sending.
            let before = time(nil)
            let dated = try await RawHTTP.get(host: "127.0.0.1", port: port, target: "/metrics", headers: ["Authorization": bearer])
            let after = time(nil)
            let dates = (before...after).map { HTTPDate.format(secondsSinceEpoch: $0) }
            #expect(dated.header("Date").map(dates.contains) == true, "\(dated.header("Date") ?? "no Date") not in \(dates)")
        }
    }

    @Test func logsAreStreamedAndFollowed() async throws {
        try await EndpointFixture.with { fixture in
            let folder = try fixture.logsFolder("web")
            let first = try LogWriterProcess(folder: folder, files: ["stdout.log", "stderr.log"], maximumBytes: 1 << 20, keep: 2)
            first.write("one\ntwo\nthree\n")
            first.write("oops\n", to: 1)
            first.finish()
            let client = EndpointClient(key: fixture.key)
            let web = try ServiceName("web")
            // The last two lines of the instance (both streams merged), then the end.
            let tail = JournalRequest(service: web, start: .tail(2))
            let got = try await client.get(fixture.address, path: "/logs", query: tail.queryItems, readTimeout: .seconds(60)) { answer in
                #expect(answer.status == 200)
                return try await frames(&answer) { $0.contains { if case .end = $0 { true } else { false } } }
            }
            #expect(texts(got) == ["three", "oops"])

            // Following: the initial lines, then what a new writer writes, woken by inotify.
            let follow = JournalRequest(service: web, start: .tail(1), follow: true, heartbeatMilliseconds: 20)
            try await client.get(fixture.address, path: "/logs", query: follow.queryItems, readTimeout: .seconds(60)) { answer in
                let initial = try await frames(&answer) { !texts($0).isEmpty }
                #expect(texts(initial) == ["oops"])
                let next = try LogWriterProcess(folder: folder, files: ["stdout.log", "stderr.log"], maximumBytes: 1 << 20, keep: 2)
                next.write("four\n")
                next.finish()
                let more = try await frames(&answer) { texts($0).contains("four") }
                #expect(texts(more) == ["four"])
                // Idle, it still says how far it is complete (heartbeats).
                let beats = try await frames(&answer) { frames in frames.filter { if case .watermark = $0 { true } else { false } }.count >= 3 }
                #expect(texts(beats).isEmpty)
            }
            // A bad pattern is refused by the agent.
            let bad = JournalRequest(service: web, grep: "(")
            let status = try await client.get(fixture.address, path: "/logs", query: bad.queryItems, readTimeout: .seconds(60)) { answer in
                (answer.status, try await answer.text())
            }
            #expect(status.0 == 400 && status.1.contains("not valid"), "\(status)")
        }
        // The follow ended with its client: no watch thread is left.
        #expect(Self.threads(named: FolderWatch.threadName) == 0)
    }

    @Test func metricsPassPromtoolAndCountWhatHappened() async throws {
        try await EndpointFixture.with(credentials: Self.credentials) { fixture in
            let sleeper = try ChildProcess(["sleep", "60"], environment: ["PATH": "/usr/bin:/bin"])
            defer { sleeper.signalGroup(SIGKILL) }
            let web = try ServiceName("web")
            let signature = ConfigSignature(hex: String(repeating: "ab", count: 20))
            fixture.journal.update(
                InstanceStatus(
                    name: web, state: .running, pid: sleeper.pid, signature: signature, since: Date(), started: Date(),
                    restarts: 1, lastError: nil))
            fixture.journal.record(LifecycleEvent(.exited, service: "web", exitCode: 3))
            fixture.journal.record(LifecycleEvent(.restarted, service: "web", reason: .crash))
            fixture.journal.record(LifecycleEvent(.health, service: "web", healthy: true))
            fixture.journal.record(LifecycleEvent(.taskFinished, service: "web", task: "packages", succeeded: true))
            fixture.journal.setStoreConnected(true)
            let basic = "Basic " + Data("ops:correct-horse".utf8).base64EncodedString()
            let response = try await RawHTTP.get(
                host: "127.0.0.1", port: port(fixture.address), target: "/metrics", headers: ["Authorization": basic])
            #expect(response.status == 200)
            let text = response.body
            let check = try await runProgram(["promtool", "check", "metrics"], input: text)
            #expect(check.status == 0, "promtool: \(check.output)\n\(text)")
            let samples = MetricSample.parse(text)
            func value(_ name: String, _ extra: [String: String] = [:], machineOnly: Bool = false) -> Double? {
                let labels = (machineOnly ? ["machine": "m1"] : ["machine": "m1", "service": "web"]).merging(extra) { $1 }
                return samples.first { $0.name == name && $0.labels == labels }?.value
            }
            #expect(value("pop_instance_up") == 1, "\(text)")
            #expect(value("pop_instance_state", ["state": "running"]) == 1)
            for state in InstanceState.allCases where state != .running {
                #expect(value("pop_instance_state", ["state": state.rawValue]) == 0)
            }
            #expect(value("pop_instance_restarts_total", ["reason": "crash"]) == 1)
            #expect(value("pop_instance_last_exit_code") == 3)
            #expect(value("pop_health_check_up") == 1)
            #expect(value("pop_task_runs_total", ["task": "packages", "result": "succeeded"]) == 1)
            #expect(value("pop_agent_store_connected", machineOnly: true) == 1)
            #expect(value("pop_build_info", ["version": "test"], machineOnly: true) == 1)
            #expect((value("pop_instance_memory_rss_bytes") ?? 0) > 100_000, "\(text)")
            #expect(abs((value("pop_instance_start_time_seconds") ?? 0) - Date().timeIntervalSince1970) < 60)
            #expect(value("pop_instance_cpu_seconds_total") != nil)
            #expect(!text.contains("job=") && !text.contains("instance="))

            // Resources: the sleeper's group, one process.
            let client = EndpointClient(key: fixture.key)
            let report = try await client.get(fixture.address, path: "/resources", query: [], readTimeout: .seconds(60)) { answer in
                try JSONDecoder().decode(ResourceReport.self, from: Data(try await answer.text().utf8))
            }
            let row = try #require(report.instances.first)
            #expect(row.service == "web" && row.pid == sleeper.pid && row.processes == 1 && row.memoryBytes > 100_000, "\(report)")

            // An instance that goes is no longer shown.
            fixture.journal.remove(web)
            let after = try await RawHTTP.get(
                host: "127.0.0.1", port: port(fixture.address), target: "/metrics", headers: ["Authorization": basic])
            #expect(!after.body.contains("service=\"web\""), "\(after.body)")
        }
    }

    @Test func tlsAndUnixSockets() async throws {
        try await withTemporaryFolder { folder in
            let certificate = folder + "/cert.pem"
            let key = folder + "/key.pem"
            let made = try await runProgram([
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                "-subj", "/CN=pop-test", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate,
            ])
            #expect(made.status == 0, "\(made.output)")
            try await EndpointFixture.with(tls: .init(certificate: certificate, key: key)) { fixture in
                #expect(fixture.address.tls)
                let folder = try fixture.logsFolder("web")
                try "over tls\n".write(toFile: folder + "/stdout.log", atomically: false, encoding: .utf8)
                let client = EndpointClient(key: fixture.key, environment: ["POP_TLS_CA": certificate])
                let request = JournalRequest(service: try ServiceName("web"), streams: [.stdout], start: .beginning)
                // Read timeouts are generous: on a loaded machine the handshake alone took seconds.
                let got = try await client.get(fixture.address, path: "/logs", query: request.queryItems, readTimeout: .seconds(60)) { answer in
                    try await frames(&answer) { $0.contains { if case .end = $0 { true } else { false } } }
                }
                #expect(texts(got) == ["over tls"])
                // A client that does not trust the certificate gets nothing.
                await #expect(throws: (any Error).self) {
                    try await EndpointClient(key: fixture.key, environment: [:]).get(
                        fixture.address, path: "/logs", query: request.queryItems, readTimeout: .seconds(5)) { _ in 0 }
                }
            }
            let socket = folder + "/agent.sock"
            try await EndpointFixture.with(listen: .unix(path: socket)) { fixture in
                #expect(fixture.address.description == "unix://" + socket)
                let client = EndpointClient(key: fixture.key)
                let status = try await client.get(fixture.address, path: "/resources", query: [], readTimeout: .seconds(60)) { $0.status }
                #expect(status == 200)
            }
        }
    }

    /// An endpoint that accepts the connection and never answers (the kernel completes the handshake of a socket
    /// that listens and is never accepted from): the request fails saying the agent said nothing for the read
    /// timeout, not with the channel's own error.
    @Test func aSilentEndpointIsReportedAsSilent() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 4) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let client = EndpointClient(key: EndpointKey.generate())
        let target = EndpointAddress(.tcp(host: "127.0.0.1", port: port))
        do {
            _ = try await client.get(target, path: "/resources", query: [], readTimeout: .milliseconds(300)) { $0.status }
            Issue.record("a silent endpoint answered")
        } catch let error as PopError {
            #expect(error.code == .storeUnreachable)
            #expect(error.message.contains("sent nothing for 0.3 s"), "\(error)")
            #expect(error.message.contains("127.0.0.1:\(port)"), "\(error)")
        }
    }

    static func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            ((try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.count
    }
}

/// One sample of Prometheus's text format: `name{label="value",...} number`.
struct MetricSample: Hashable {
    var name: String
    var labels: [String: String]
    var value: Double

    static func parse(_ text: String) -> [MetricSample] {
        text.split(separator: "\n").compactMap { line -> MetricSample? in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                return nil
            }
            let series = line[..<space]
            guard let open = series.firstIndex(of: "{") else { return MetricSample(name: String(series), labels: [:], value: value) }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { labels[String(parts[0])] = String(parts[1].dropFirst().dropLast()) }
            }
            return MetricSample(name: String(series[..<open]), labels: labels, value: value)
        }
    }
}
