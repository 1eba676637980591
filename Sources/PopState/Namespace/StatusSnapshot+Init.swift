extension StatusSnapshot {
    /// A snapshot made of its parts, for readers built on it (the dashboard) and their tests.
    public static func assembled(
        store: String, machines: [MachineRecord], services: [ServiceStatus], problems: [Problem] = []
    ) -> StatusSnapshot {
        StatusSnapshot(store: store, machines: machines, services: services, problems: problems)
    }
}

extension StatusSnapshot.ServiceStatus {
    /// A service's status made of its parts.
    public static func assembled(
        spec: ServiceSpec, version: Int32, signature: ConfigSignature, placements: [StatusSnapshot.PlacementStatus]
    ) -> Self {
        Self(spec: spec, version: version, signature: signature, placements: placements)
    }
}

extension StatusSnapshot.PlacementStatus {
    /// A placement's status made of its parts.
    public static func assembled(machine: MachineID, placement: Placement, instance: InstanceRecord?) -> Self {
        Self(machine: machine, placement: placement, instance: instance)
    }
}
