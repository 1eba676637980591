import PopState

/// What the service view shows: the template's options with their values, secrets masked, and where it runs.
///
/// A secret option's value is never included: only whether it is set.
struct ServiceDetails: Encodable, Sendable {
    struct Option: Encodable, Sendable {
        var name: String
        var type: String
        var help: String
        var required: Bool
        var secret: Bool
        /// The value as text; nil when unset, and always nil for a secret.
        var value: String?
        /// Whether a value is set (for a secret, the only thing shown).
        var isSet: Bool
        /// The default as text; nil when none, and always nil for a secret.
        var defaultValue: String?
        var choices: [String]?
        var minimum: Int?
        var maximum: Int?
    }

    var name: String
    var template: String
    var version: Int32
    var signature: String
    var options: [Option]
    var machines: [String]
    var maxParallel: Int?
    /// The service's history; nil while pop records none (the page leaves the section out). Its lifecycle events
    /// come as a stream of their own (`/api/services/NAME/events`).
    var history: [String]?

    init(service: VersionedService, placed: [MachineID], rollout: Rollout?) {
        let spec = service.spec
        name = spec.name.rawValue
        template = spec.template.name
        version = service.version
        signature = service.signature.hex
        options = spec.template.options.map { option in
            let value = spec.options[option.name]
            return Option(
                name: option.name, type: option.type.rawValue, help: option.help, required: option.required,
                secret: option.secret, value: option.secret ? nil : value?.description, isSet: value != nil,
                defaultValue: option.secret ? nil : option.defaultValue?.description, choices: option.choices,
                minimum: option.minimum, maximum: option.maximum)
        }
        machines = placed.sorted().map(\.rawValue)
        maxParallel = rollout?.maxParallel
        history = nil
    }
}
