/// What a configuration change of a service would do, computed without writing anything.
///
/// The one place the plan of `pop config` is worked out (the dashboard shows it before it applies a change): which
/// options change, with a secret's values never carried (only that it changed), and which instances restart. Every
/// instance of the service restarts on a configuration change, because its signature changes; with a rollout policy
/// they restart in machine-id order, ``Rollout/maxParallel`` at a time.
public struct ConfigurationPlan: Hashable, Sendable, Codable {
    /// One option whose value would change.
    public struct OptionChange: Hashable, Sendable, Codable {
        /// The option's name.
        public var option: String
        /// Whether the template marks the option secret: then ``before`` and ``after`` are nil.
        public var secret: Bool
        /// The current value as text, nil when unset or secret.
        public var before: String?
        /// The new value as text, nil when unset or secret.
        public var after: String?

        /// The options whose values differ between `current` and `proposed`, in `proposed`'s template's order (then
        /// by name); an option either template marks secret carries no values.
        public static func between(_ current: ServiceSpec, _ proposed: ServiceSpec) -> [OptionChange] {
            let secrets = Set(proposed.template.options.filter(\.secret).map(\.name))
                .union(current.template.options.filter(\.secret).map(\.name))
            let order = proposed.template.options.map(\.name)
            let names = Set(current.options.keys).union(proposed.options.keys).sorted { left, right in
                (order.firstIndex(of: left) ?? order.count, left) < (order.firstIndex(of: right) ?? order.count, right)
            }
            return names.compactMap { name in
                let before = current.options[name]
                let after = proposed.options[name]
                guard before != after else { return nil }
                let secret = secrets.contains(name)
                return OptionChange(
                    option: name, secret: secret, before: secret ? nil : before?.description,
                    after: secret ? nil : after?.description)
            }
        }

        /// The change in a few words: `--port 8080 → 8081`, `--password changed` for a secret.
        public var text: String {
            secret ? "--\(option) changed" : "--\(option) \(before ?? "unset") → \(after ?? "unset")"
        }
    }

    /// The service.
    public var service: String
    /// The configuration version the plan was computed from; applying it is a compare-and-set on this version.
    public var version: Int32
    /// The current signature.
    public var signatureBefore: String
    /// The signature after the change.
    public var signatureAfter: String
    /// The options that change, in the template's order.
    public var changes: [OptionChange]
    /// The machines whose instances restart, in the order they restart.
    public var restarts: [String]
    /// At most this many machines restart at once; nil when all restart at once.
    public var maxParallel: Int?

    /// The plan of replacing the service's `current` spec with `proposed`, for a service placed on `placed` with
    /// rollout policy `rollout`.
    public init(current service: VersionedService, proposed: ServiceSpec, placed: [MachineID], rollout: Rollout?) {
        let current = service.spec
        self.service = current.name.rawValue
        version = service.version
        signatureBefore = service.signature.hex
        signatureAfter = proposed.signature.hex
        changes = OptionChange.between(current, proposed)
        restarts = signatureBefore != signatureAfter ? placed.sorted().map(\.rawValue) : []
        maxParallel = rollout?.maxParallel
    }

    /// Whether applying the plan changes anything.
    public var changesAnything: Bool { signatureBefore != signatureAfter }
}
