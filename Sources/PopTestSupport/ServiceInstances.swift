import Foundation
import PopState

/// A service's instances as `pop status --json` shows them, read from the store: waits until they settle, and names
/// the machines whose instance restarted, to hold against what the change's plan (`--plan --json`) predicted.
public enum ServiceInstances {
    /// The instances did not settle in time.
    public struct NotSettled: Error, CustomStringConvertible {
        /// What was waited for, and what was seen last.
        public var description: String
    }

    /// Waits (woken by changes under the namespace, not polling) until exactly `machines` show an instance of
    /// `service` and `also` holds, the instance of each machine `current` names (every machine by default) running the
    /// current signature with a PID; returns them by machine, or throws after `timeout`.
    public static func settled(
        _ namespace: PopNamespace, _ service: String, on machines: Set<String>, timeout: Duration = .seconds(60),
        _ also: @escaping @Sendable ([String: StatusReport.Instance]) -> Bool = { _ in true },
        current: @escaping @Sendable (String) -> Bool = { _ in true }
    ) async throws -> [String: StatusReport.Instance] {
        let name = try ServiceName(service)
        @Sendable func read() async throws -> [String: StatusReport.Instance] {
            let instances = StatusReport(snapshot: try await namespace.status(), only: name).service(service)?.instances ?? []
            return Dictionary(instances.map { ($0.machine, $0) }, uniquingKeysWith: { first, _ in first })
        }
        let found = try await namespace.read(
            read,
            until: { instances in
                Set(instances.keys) == machines
                    && instances.values.allSatisfy {
                        !current($0.machine) || ($0.state == InstanceState.running.rawValue && $0.pid != nil && $0.current)
                    }
                    && also(instances)
            },
            wokenByChangesUnder: namespace.prefix, deadline: .now + timeout)
        guard let found else {
            let last = (try? await read()).map { $0.values.sorted { $0.machine < $1.machine }.map(\.description) } ?? []
            throw NotSettled(description: "\(service) did not settle on \(machines.sorted()) within \(timeout); last seen: \(last)")
        }
        return found
    }

    /// The machines whose instance has another PID in `after` than in `before` (restarted, or started anew).
    public static func restarted(
        _ before: [String: StatusReport.Instance], _ after: [String: StatusReport.Instance]
    ) -> Set<String> {
        Set(after.keys.filter { before[$0]?.pid != after[$0]?.pid })
    }
}
