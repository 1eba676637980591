import PopState

/// Refuses machine arguments a service is not deployed to, before anything is written.
enum PlacementCheck {
    /// Fails with `.notFound` naming each of `targets` that is not among `placed`, and saying where it is deployed.
    static func requireDeployed(
        _ service: ServiceName, on targets: [MachineID], placed: [MachineID: Placement]
    ) throws(PopError) {
        let missing = targets.filter { placed[$0] == nil }
        guard !missing.isEmpty else { return }
        throw PopError(
            .notFound,
            "\(service) is not deployed to \(missing.map(\.rawValue).joined(separator: ", ")).",
            hint: placed.isEmpty
                ? "It is not deployed anywhere."
                : "It is deployed to: \(placed.keys.sorted().map(\.rawValue).joined(separator: ", ")).")
    }
}
