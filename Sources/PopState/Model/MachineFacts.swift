import Foundation

/// What pop keeps about a machine beyond its agent's registration: its labels, whether it is drained, and since when
/// it has been missing. A persistent node (`<root>/facts/<machine-id>`), so it outlives the agent's session.
public struct MachineFacts: Hashable, Sendable, Codable {
    /// Labels such as `zone=a`, set by `pop machines label` or by the agent at start (`pop fg --label`).
    public var labels: [String: String]
    /// Set by `pop drain`: services deployed by count move off the machine, and none is placed on it.
    public var drained: Bool
    /// Since when the scheduler has seen the machine without a registration while it holds placements made by count;
    /// `nil` while its agent is registered. Kept in the store so that a new scheduler resumes the same clock.
    public var absentSince: Date?

    /// Creates a machine's facts.
    public init(labels: [String: String] = [:], drained: Bool = false, absentSince: Date? = nil) {
        self.labels = labels
        self.drained = drained
        self.absentSince = absentSince
    }

    /// Whether the facts say nothing (a node holding them can be left out).
    public var isEmpty: Bool { labels.isEmpty && !drained && absentSince == nil }

    /// The labels as `key=value` text, sorted by key.
    public var labelText: String {
        labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}

/// Machine labels: `KEY=VALUE` parsing and the rules for keys and values.
///
/// A key is 1 to 63 lower-case letters, digits, `-`, `_` or `.`, starting with a letter or digit; a value is 0 to 63
/// letters, digits, `-`, `_` or `.`. So a label is safe in a table, a path and a shell-free argv alike.
public enum MachineLabel {
    /// Parses `KEY=VALUE`.
    public static func parse(_ text: String) throws(PopError) -> (key: String, value: String) {
        guard let equals = text.firstIndex(of: "=") else {
            throw PopError(
                .invalidInput, "The label \(NameRules.printable(text)) is not KEY=VALUE.",
                hint: "Write labels as KEY=VALUE, such as zone=a.")
        }
        let key = String(text[..<equals])
        let value = String(text[text.index(after: equals)...])
        try validateKey(key)
        try validateValue(value, key: key)
        return (key, value)
    }

    /// Parses several `KEY=VALUE` arguments; a key given twice is refused.
    public static func parse(_ texts: [String]) throws(PopError) -> [String: String] {
        var labels: [String: String] = [:]
        for text in texts {
            let (key, value) = try parse(text)
            guard labels[key] == nil else {
                throw PopError(.invalidInput, "The label key '\(key)' is given twice.", hint: "Give each key once.")
            }
            labels[key] = value
        }
        return labels
    }

    /// Checks a label key.
    public static func validateKey(_ key: String) throws(PopError) {
        let rules = "A label key is 1 to 63 lower-case letters, digits, '-', '_' or '.', starting with a letter or digit."
        guard !key.isEmpty, key.utf8.count <= 63 else {
            throw PopError(.invalidInput, "The label key \(NameRules.printable(key)) is empty or too long.", hint: rules)
        }
        let allowed = key.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "0"..."9", "-", "_", ".": true
            default: false
            }
        }
        let first = key.unicodeScalars.first!
        guard allowed, ("a"..."z").contains(first) || ("0"..."9").contains(first) else {
            throw PopError(.invalidInput, "The label key \(NameRules.printable(key)) has a character not allowed there.", hint: rules)
        }
    }

    static func validateValue(_ value: String, key: String) throws(PopError) {
        let allowed = value.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".": true
            default: false
            }
        }
        guard value.utf8.count <= 63, allowed else {
            throw PopError(
                .invalidInput, "The value \(NameRules.printable(value)) of the label '\(key)' is not allowed.",
                hint: "A label value is at most 63 letters, digits, '-', '_' or '.'.")
        }
    }
}
