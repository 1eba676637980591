import Foundation
import PopState
import PopTemplates

/// What the dashboard's buttons do: the same namespace operations as `pop restart`, `deploy`, `undeploy` and
/// `config`, each checked first and written atomically.
struct DashboardActions: Sendable {
    let namespace: PopNamespace

    /// The service view's data.
    func details(_ name: ServiceName) async throws -> ServiceDetails {
        let (history, entries) = try await namespace.historyEntries(name)
        let placed = try await namespace.placements(name)
        return ServiceDetails(
            service: history.current, placed: Array(placed.keys), rollout: try await namespace.rollout(name),
            history: entries)
    }

    /// Restarts the service's instances on `machines` (every placed one when nil); returns the machines asked.
    func restart(_ name: ServiceName, machines: [MachineID]?) async throws -> [MachineID] {
        if let machines {
            try await requirePlaced(name, machines)
        }
        return try await namespace.restart(name, machines: machines)
    }

    /// Places the service on `machines`; returns those it was not on yet.
    func deploy(_ name: ServiceName, machines: [MachineID]) async throws -> [MachineID] {
        guard !machines.isEmpty else {
            throw DashboardError(.invalidInput, "Choose at least one machine to deploy \(name) to.")
        }
        _ = try await namespace.service(name)
        return try await namespace.deploy(name, machines: machines)
    }

    /// Takes the service off `machines`; returns those it was on.
    func undeploy(_ name: ServiceName, machines: [MachineID]) async throws -> [MachineID] {
        guard !machines.isEmpty else {
            throw DashboardError(.invalidInput, "Choose at least one machine to undeploy \(name) from.")
        }
        try await requirePlaced(name, machines)
        return try await namespace.undeploy(name, machines: machines)
    }

    /// What changing `options` (name → value as text, as on the command line) would do, changing nothing.
    func plan(_ name: ServiceName, options: [String: String]) async throws -> ConfigurationPlan {
        let current = try await namespace.service(name)
        let proposed = try proposedSpec(current, options)
        let placed = try await namespace.placements(name)
        return ConfigurationPlan(
            current: current, proposed: proposed, placed: Array(placed.keys), rollout: try await namespace.rollout(name))
    }

    /// Applies the change whose plan was computed at configuration `version`; refuses (conflict) when the service
    /// changed since, so what is applied is exactly what the plan showed.
    func applyConfiguration(
        _ name: ServiceName, options: [String: String], version: Int32
    ) async throws -> ConfigurationPlan {
        let current = try await namespace.service(name)
        guard current.version == version else {
            throw DashboardError(
                .conflict, "\(name) changed since the plan was shown (version \(version), now \(current.version)).",
                hint: "Review the new plan and confirm again.")
        }
        let proposed = try proposedSpec(current, options)
        let placed = try await namespace.placements(name)
        let plan = ConfigurationPlan(
            current: current, proposed: proposed, placed: Array(placed.keys), rollout: try await namespace.rollout(name))
        guard plan.changesAnything else { return plan }
        do {
            _ = try await namespace.updateService(
                proposed, expectedVersion: version, origin: .thisProcess(
                    command: ChangeOrigin.commandText(
                        "pop config \(name) (from the dashboard)",
                        options.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }, current.spec)))
        } catch let error as PopError where error.code == .conflict {
            throw DashboardError(
                .conflict, "\(name) changed while the change was applied.", hint: "Review the new plan and confirm again.")
        }
        return plan
    }

    /// The spec with `options` applied, checked as `pop config` checks them. An error never repeats a secret's value.
    private func proposedSpec(_ current: VersionedService, _ options: [String: String]) throws -> ServiceSpec {
        var spec = current.spec
        let secrets = spec.template.options.filter(\.secret).compactMap { options[$0.name] }.filter { !$0.isEmpty }
        do {
            let ordered = spec.template.options.compactMap { option in options[option.name].map { (option.name, $0) } }
            let unknown = options.keys.filter { name in !spec.template.options.contains { $0.name == name } }.sorted()
            if let first = unknown.first {
                throw PopError(
                    .invalidInput, "The template '\(spec.template.name)' has no option '\(NameText.printable(first))'.")
            }
            spec.options = try OptionResolver(template: spec.template).update(spec.options, with: ordered)
            try spec.checkPlaceholders()
        } catch let error as PopError {
            throw DashboardError(
                DashboardError(error).code, Self.masking(secrets, in: error.message),
                hint: error.hint.map { Self.masking(secrets, in: $0) })
        }
        return spec
    }

    private func requirePlaced(_ name: ServiceName, _ machines: [MachineID]) async throws {
        let placed = try await namespace.placements(name)
        let missing = machines.filter { placed[$0] == nil }
        guard missing.isEmpty else {
            throw DashboardError(
                .notFound, "\(name) is not deployed to \(missing.map(\.rawValue).joined(separator: ", ")).")
        }
    }

    /// `text` with every secret value replaced by asterisks.
    static func masking(_ secrets: [String], in text: String) -> String {
        secrets.reduce(text) { $0.replacingOccurrences(of: $1, with: "********") }
    }
}

/// Names from requests, shown in messages with control characters escaped.
enum NameText {
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.prefix(80).map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
    }
}
