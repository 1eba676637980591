import Foundation
import PopTestSupport
import TestProcesses

/// A real Prometheus server (Debian's `prometheus`) on a free loopback port, scraping what its configuration says,
/// stopped and removed when the scoped body returns.
struct PrometheusServer: Sendable {
    let port: Int
    let folder: String

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `body` with a server whose `scrape_configs` are `scrapeConfigs` (YAML, indented as list items).
    static func with<T: Sendable>(scrapeConfigs: String, _ body: @Sendable (PrometheusServer) async throws -> T) async throws -> T {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus") else {
            throw Failure(description: "prometheus is not installed (apt-get install prometheus; scripts/test.sh does it)")
        }
        return try await withTemporaryFolder { folder in
            let port = try LoopbackHTTP.freePort()
            let configuration = """
                global:
                  scrape_interval: 1s
                  scrape_timeout: 900ms
                scrape_configs:
                \(scrapeConfigs)
                """
            try configuration.write(toFile: folder + "/prometheus.yml", atomically: true, encoding: .utf8)
            let check = try await runProgram(["promtool", "check", "config", folder + "/prometheus.yml"])
            guard check.status == 0 else { throw Failure(description: "promtool check config: \(check.output)\n\(configuration)") }
            let process = try ChildProcess(
                [
                    "/usr/bin/prometheus", "--config.file=\(folder)/prometheus.yml", "--storage.tsdb.path=\(folder)/data",
                    "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
                ], environment: ["PATH": "/usr/bin:/bin"], stdout: .file(URL(fileURLWithPath: folder + "/prometheus.log")),
                stderr: .file(URL(fileURLWithPath: folder + "/prometheus.log")))
            let server = PrometheusServer(port: port, folder: folder)
            do {
                let result = try await body(server)
                await process.stop()
                return result
            } catch {
                await process.stop()
                throw error
            }
        }
    }

    /// The server's own log, for failure reports.
    var log: String { (try? String(contentsOfFile: folder + "/prometheus.log", encoding: .utf8)) ?? "" }

    /// One series of a query's answer.
    struct Series: Sendable {
        var labels: [String: String]
        var value: Double
    }

    /// Asks the HTTP API for `query` until `satisfied` holds for the answer (Prometheus scrapes every second and has no
    /// way to announce a scrape, so its API is asked again every half second), or until `timeout` passes.
    func query(_ query: String, timeout: Duration, until satisfied: ([Series]) -> Bool) async throws -> [Series] {
        let deadline = ContinuousClock.now + timeout
        var last: [Series] = []
        var lastError = ""
        while ContinuousClock.now < deadline {
            do {
                let encoded = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? query
                let response = try await LoopbackHTTP.get(port: port, path: "/api/v1/query?query=\(encoded)", timeout: 5)
                if response.status == 200 {
                    last = try Self.parse(response.body)
                    if satisfied(last) { return last }
                } else {
                    lastError = "status \(response.status): \(response.body.prefix(300))"
                }
            } catch {
                lastError = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw Failure(description: "Prometheus did not answer \(query) as expected within \(timeout); last: \(last.map { "\($0.labels)=\($0.value)" }) \(lastError)\n\(log.suffix(2000))")
    }

    /// The targets Prometheus scrapes and their health, from `/api/v1/targets`.
    func targets() async throws -> String {
        try await LoopbackHTTP.get(port: port, path: "/api/v1/targets", timeout: 5).body
    }

    static func parse(_ body: String) throws -> [Series] {
        struct Answer: Decodable {
            struct DataPart: Decodable {
                struct Result: Decodable {
                    var metric: [String: String]
                    var value: [Value]
                }
                var result: [Result]
            }
            enum Value: Decodable {
                case number(Double)
                case text(String)
                init(from decoder: any Decoder) throws {
                    let container = try decoder.singleValueContainer()
                    if let number = try? container.decode(Double.self) { self = .number(number) } else { self = .text(try container.decode(String.self)) }
                }
            }
            var data: DataPart
        }
        let answer = try JSONDecoder().decode(Answer.self, from: Data(body.utf8))
        return answer.data.result.map { result in
            var value = Double.nan
            if case .text(let text)? = result.value.last { value = Double(text) ?? .nan }
            return Series(labels: result.metric, value: value)
        }
    }
}
