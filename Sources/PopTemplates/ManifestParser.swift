import Foundation
import PopState
import Yams

/// Reads a YAML manifest into a ``TemplateManifest``, checking every field and naming the file, line and field of
/// the first problem.
struct ManifestParser {
    /// The manifest file, as shown in messages.
    let file: String
    /// The plugin's name.
    let plugin: String
    /// The plugin folder, for files the manifest names; `nil` when parsing text that has no folder.
    let directory: URL?

    static let topLevelKeys = [
        "name", "description", "base", "options", "remove-options", "setup", "command", "environment",
        "stop-signal", "stop-timeout", "health", "tasks", "python", "files", "requires", "provides",
    ]
    static let optionKeys = [
        "type", "default", "help", "required", "minimum", "maximum", "choices", "secret", "shared",
    ]
    static let requirementKeys = ["interface", "condition", "policy", "debounce"]
    static let setupKeys = ["name", "command", "creates", "environment"]
    static let taskKeys = ["description", "command", "records-packages"]
    static let healthKeys = ["tcp", "http", "interval", "timeout", "grace-period", "when"]
    static let pythonKeys = ["interpreter", "packages", "constraints", "constraints-file"]
    static let fileKeys = ["path", "executable"]
    /// Option names that would collide with the command line's own flags or with placeholders.
    static let reservedOptionNames: Set<String> = ["template", "host", "prefix", "json", "help", "version", "args", "words", "requires",
    ]

    // MARK: Errors

    func failure(_ node: Node?, _ field: String?, _ text: String) -> PopError {
        PopError(
            .invalidInput, TemplateManifest.message(file: file, line: node?.mark?.line, field: field, text),
            hint: "See docs/templates.md for the manifest format.")
    }

    func yamlFailure(_ error: any Error) -> PopError {
        guard let yamlError = error as? YamlError else {
            return PopError(.invalidInput, "\(file): not valid YAML: \(error)")
        }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { "\($0.text) " } ?? ""
            return PopError(.invalidInput, "\(file):\(mark.line): not valid YAML: \(detail)\(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return PopError(
                .invalidInput,
                "\(file):\(context.mark.line): the key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) "
                    + "appears more than once in the same mapping")
        default:
            return PopError(.invalidInput, "\(file): not valid YAML: \(yamlError)")
        }
    }

    // MARK: Scalars and collections

    func mapping(_ node: Node, _ field: String) throws(PopError) -> Node.Mapping {
        guard let mapping = node.mapping else {
            throw failure(node, field, "expected a mapping of keys to values, found \(kind(of: node))")
        }
        return mapping
    }

    func string(_ node: Node, _ field: String) throws(PopError) -> String {
        guard let scalar = node.scalar else {
            throw failure(node, field, "expected a text value, found \(kind(of: node))")
        }
        return scalar.string
    }

    func int(_ node: Node, _ field: String) throws(PopError) -> Int {
        guard let scalar = node.scalar, let value = Int(scalar.string.trimmingCharacters(in: .whitespaces)) else {
            throw failure(node, field, "expected a whole number, found \(describe(node))")
        }
        return value
    }

    func bool(_ node: Node, _ field: String) throws(PopError) -> Bool {
        guard let scalar = node.scalar, let value = OptionResolver.parseBool(scalar.string) else {
            throw failure(node, field, "expected true or false, found \(describe(node))")
        }
        return value
    }

    func stringList(_ node: Node, _ field: String) throws(PopError) -> [String] {
        guard let sequence = node.sequence else {
            if node.scalar != nil {
                throw failure(
                    node, field,
                    "expected a list of arguments, found the text \(describe(node)); write it as a list such as "
                        + "[\"prog\", \"--flag\", \"{option}\"], since pop never runs a shell")
            }
            throw failure(node, field, "expected a list, found \(kind(of: node))")
        }
        var result: [String] = []
        for (index, element) in sequence.enumerated() {
            result.append(try string(element, "\(field) element \(index + 1)"))
        }
        return result
    }

    func stringMap(_ node: Node, _ field: String) throws(PopError) -> [String: TemplateManifest.Located<String>] {
        var result: [String: TemplateManifest.Located<String>] = [:]
        for (key, value) in try mapping(node, field) {
            let name = try string(key, field)
            guard isEnvironmentName(name) else {
                throw failure(
                    key, field,
                    "'\(name)' is not a valid environment variable name (letters, digits and '_', not starting with a digit)")
            }
            result[name] = TemplateManifest.Located(try string(value, "\(field) '\(name)'"), line: value.mark?.line ?? 0)
        }
        return result
    }

    /// A duration: a whole number of seconds, or a number with `ms`, `s` or `m`.
    func duration(_ node: Node, _ field: String) throws(PopError) -> Int {
        let text = try string(node, field).trimmingCharacters(in: .whitespaces)
        let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000)]
        var milliseconds: Int?
        if let seconds = Int(text) {
            milliseconds = seconds * 1000
        } else {
            for (suffix, factor) in units where text.hasSuffix(suffix) {
                if let number = Int(text.dropLast(suffix.count)) {
                    milliseconds = number * factor
                    break
                }
            }
        }
        guard let milliseconds, milliseconds >= 0, milliseconds <= 86_400_000 else {
            throw failure(
                node, field, "expected a duration such as 10, 10s, 500ms or 2m (at most a day), found '\(text)'")
        }
        return milliseconds
    }

    /// Rejects keys outside `allowed`, suggesting the nearest allowed one.
    func checkKeys(_ mapping: Node.Mapping, allowed: [String], _ field: String?) throws(PopError) {
        for key in mapping.keys {
            let name = try string(key, field ?? "key")
            if !allowed.contains(name) {
                var text = "unknown field '\(name)'"
                if let suggestion = OptionResolver.nearest(to: name, in: allowed) {
                    text += "; did you mean '\(suggestion)'?"
                } else {
                    text += "; known fields are \(allowed.joined(separator: ", "))"
                }
                throw failure(key, field, text)
            }
        }
    }

    func kind(of node: Node) -> String {
        switch node {
        case .scalar: "the text \(describe(node))"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    func describe(_ node: Node) -> String {
        guard let scalar = node.scalar else { return kind(of: node) }
        let text = scalar.string
        return text.count > 60 ? "'\(text.prefix(57))...'" : "'\(text)'"
    }

    func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_": true
            default: false
            }
        }
    }

    /// Checks that `path` is relative and stays inside its folder.
    func checkRelativePath(_ path: String, _ node: Node, _ field: String) throws(PopError) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if path.isEmpty || path.hasPrefix("/") || parts.contains("..") || parts.contains("") || path.contains("\0") {
            throw failure(
                node, field, "'\(path)' must be a relative path inside the folder, without '..' or empty parts")
        }
    }
}
