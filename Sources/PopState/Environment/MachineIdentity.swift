/// Finds this machine's id: `POP_MACHINE_ID` when set (so several agents can share a host), else the system's.
public enum MachineIdentity {
    /// The machine id for `environment` (normally the process environment).
    ///
    /// The system sources are platform-specific (`MachineIdentity+Linux.swift`: /etc/machine-id, then
    /// /sys/class/dmi/id/product_uuid). Every candidate is validated as a ``MachineID``.
    public static func current(environment: [String: String]) throws(PopError) -> MachineID {
        if let override = environment["POP_MACHINE_ID"] {
            do {
                return try MachineID(override)
            } catch {
                throw PopError(
                    .invalidInput, "POP_MACHINE_ID is not a valid machine id: \(error.message)", hint: error.hint)
            }
        }
        for source in systemSources {
            guard let raw = readFirstLine(source) else { continue }
            if let id = try? MachineID(raw) { return id }
        }
        throw PopError(
            .system, "Cannot find this machine's id: none of \(systemSources.joined(separator: ", ")) holds a valid one.",
            hint: "Set POP_MACHINE_ID to a unique id for this machine.")
    }
}
