import Foundation
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
    /// One kept version of the service's spec, newest first in ``history``.
    struct Version: Encodable, Sendable {
        var version: Int32
        var time: Date
        var user: String
        var command: String
        var signature: String
        var current: Bool
        /// What this version changed against the one before it (a secret only as "changed"); nil when the version
        /// before it is no longer kept.
        var changes: [String]?
    }

    /// The versions the service's history keeps, newest first (empty for a service added by an earlier release,
    /// until its first change). Its lifecycle events come as a stream of their own (`/api/services/NAME/events`).
    var history: [Version]

    init(service: VersionedService, placed: [MachineID], rollout: Rollout?, history entries: [HistoryEntry]) {
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
        history = entries.enumerated().reversed().map { index, entry in
            let previous = index > 0 && entries[index - 1].version == entry.version - 1 ? entries[index - 1] : nil
            return Version(
                version: entry.version, time: entry.time, user: entry.user, command: entry.command,
                signature: entry.signature.short, current: entry.version == service.version,
                changes: previous.map { ConfigurationPlan.OptionChange.between($0.spec, entry.spec).map(\.text) })
        }
    }
}
