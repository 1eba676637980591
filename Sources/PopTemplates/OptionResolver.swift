import PopState

/// Checks option values given on the command line against a template's declared options.
///
/// It needs only the ``TemplateOption`` list stored in a service's spec, so `pop config` works without the plugin
/// that defined the template.
public struct OptionResolver: Sendable {
    /// The declared options, in order.
    public let options: [TemplateOption]
    /// The template's name, used in messages.
    public let templateName: String

    /// Creates a resolver for a template's options.
    public init(options: [TemplateOption], templateName: String) {
        self.options = options
        self.templateName = templateName
    }

    /// Creates a resolver for a resolved template.
    public init(template: ResolvedTemplate) {
        self.init(options: template.options, templateName: template.name)
    }

    /// The values for a new service (`pop add`): each given value checked, defaults filled in, required ones present.
    ///
    /// `given` holds option names without dashes and raw text values, in command-line order. An option without a
    /// default that is not given is left out.
    public func resolve(_ given: [(name: String, value: String)]) throws(PopError) -> [String: OptionValue] {
        var values: [String: OptionValue] = [:]
        for option in options {
            if let value = option.defaultValue { values[option.name] = value }
        }
        try apply(given, to: &values)
        let missing = options.filter { $0.required && values[$0.name] == nil }
        if !missing.isEmpty {
            let list = missing.map { option in
                option.help.isEmpty ? "--\(option.name)" : "--\(option.name) (\(option.help))"
            }
            throw PopError(
                .invalidInput,
                "The template '\(templateName)' needs \(list.joined(separator: ", ")), which "
                    + (missing.count == 1 ? "was" : "were") + " not given.",
                hint: "For example: --\(missing[0].name) \(example(for: missing[0]))")
        }
        return values
    }

    /// The values after `pop config NAME --OPTION V`: the service's current values with the given ones changed.
    ///
    /// Options the template declares but `current` lacks get their defaults; values of options the template no
    /// longer declares are dropped.
    public func update(
        _ current: [String: OptionValue], with given: [(name: String, value: String)]
    ) throws(PopError) -> [String: OptionValue] {
        var values: [String: OptionValue] = [:]
        for option in options {
            if let value = current[option.name] ?? option.defaultValue { values[option.name] = value }
        }
        try apply(given, to: &values)
        return values
    }

    /// Checks one raw value against its option.
    public func value(_ raw: String, for name: String) throws(PopError) -> OptionValue {
        guard let option = options.first(where: { $0.name == name }) else { throw unknown(name) }
        return try Self.parse(raw, for: option)
    }

    private func apply(_ given: [(name: String, value: String)], to values: inout [String: OptionValue]) throws(PopError) {
        var seen: Set<String> = []
        for (rawName, raw) in given {
            let name = rawName.hasPrefix("--") ? String(rawName.dropFirst(2)) : rawName
            guard let option = options.first(where: { $0.name == name }) else { throw unknown(name) }
            guard seen.insert(name).inserted else {
                throw PopError(.invalidInput, "--\(name) was given more than once.", hint: "Give each option once.")
            }
            values[name] = try Self.parse(raw, for: option)
        }
    }

    private func unknown(_ name: String) -> PopError {
        let names = options.map(\.name)
        var message = "The template '\(templateName)' has no option --\(name)."
        if let nearest = Self.nearest(to: name, in: names) { message += " Did you mean --\(nearest)?" }
        let hint =
            names.isEmpty
            ? "It takes no options."
            : "Its options are: \(names.map { "--\($0)" }.joined(separator: ", ")). `pop describe \(templateName)` explains them."
        return PopError(.invalidInput, message, hint: hint)
    }

    private func example(for option: TemplateOption) -> String {
        switch option.type {
        case .port: "8080"
        case .int: String(option.minimum ?? 1)
        case .bool: "true"
        case .enum: option.choices?.first ?? "VALUE"
        case .string: "'...'"
        }
    }

    // MARK: Parsing values

    /// What is wrong with a raw value, phrased for both the command line and a manifest's default.
    enum Problem: Error {
        case notA(String)
        case outOfRange(String)
        case notAChoice([String])
    }

    /// Parses `raw` as a value of `option`, or throws a ``PopError`` such as
    /// "--port expects a port number 1-65535, got 'abc'".
    public static func parse(_ raw: String, for option: TemplateOption) throws(PopError) -> OptionValue {
        switch check(raw, for: option) {
        case .success(let value):
            return value
        case .failure(let problem):
            let shown = Placeholders.quote(raw)
            let flag = "--\(option.name)"
            let message: String
            switch (problem, option.type) {
            case (_, .port):
                message = "\(flag) expects a port number 1-65535, got \(shown)."
            case (.notA(let expected), _):
                message = "\(flag) expects \(expected), got \(shown)."
            case (.outOfRange(let range), _):
                message = "\(flag) must be \(range), got \(shown)."
            case (.notAChoice(let choices), _):
                message = "\(flag) must be one of: \(choices.joined(separator: ", ")); got \(shown)."
            }
            throw PopError(.invalidInput, message)
        }
    }

    /// Describes a problem with a manifest's default, such as "default 70000 is outside 1-65535".
    static func defaultProblem(_ raw: String, for option: TemplateOption) -> String? {
        guard case .failure(let problem) = check(raw, for: option) else { return nil }
        switch problem {
        case .notA(let expected): return "default '\(raw)' is not \(expected)"
        case .outOfRange(let range): return "default \(raw) is outside \(range)"
        case .notAChoice(let choices): return "default '\(raw)' is not one of the choices (\(choices.joined(separator: ", ")))"
        }
    }

    static func check(_ raw: String, for option: TemplateOption) -> Result<OptionValue, Problem> {
        let trimmed = raw.trimmingCharacters(in: .whitespaces)
        switch option.type {
        case .port:
            guard let number = Int(trimmed) else { return .failure(.notA("a port number 1-65535")) }
            guard (1...65535).contains(number) else { return .failure(.outOfRange("1-65535")) }
            return .success(.int(number))
        case .int:
            guard let number = Int(trimmed) else { return .failure(.notA("a whole number")) }
            switch (option.minimum, option.maximum) {
            case (let low?, let high?) where !(low...high).contains(number):
                return .failure(.outOfRange("\(low)-\(high)"))
            case (let low?, nil) where number < low:
                return .failure(.outOfRange("at least \(low)"))
            case (nil, let high?) where number > high:
                return .failure(.outOfRange("at most \(high)"))
            default:
                return .success(.int(number))
            }
        case .bool:
            guard let value = parseBool(trimmed) else { return .failure(.notA("true or false")) }
            return .success(.bool(value))
        case .enum:
            let choices = option.choices ?? []
            guard choices.contains(raw) else { return .failure(.notAChoice(choices)) }
            return .success(.string(raw))
        case .string:
            guard !raw.contains("\0") else { return .failure(.notA("text without NUL characters")) }
            return .success(.string(raw))
        }
    }

    /// Reads true/false, yes/no, on/off or 1/0, in any case.
    static func parseBool(_ raw: String) -> Bool? {
        switch raw.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true", "yes", "on", "1": true
        case "false", "no", "off", "0": false
        default: nil
        }
    }

    /// The candidate closest to `name` by edit distance, if it is close enough to be a likely typo.
    static func nearest(to name: String, in candidates: [String]) -> String? {
        var best: (String, Int)?
        for candidate in candidates {
            let distance = editDistance(Array(name), Array(candidate))
            if distance <= max(1, min(2, candidate.count / 3)), distance < (best?.1 ?? .max) {
                best = (candidate, distance)
            }
        }
        return best?.0
    }

    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var beforePrevious = Array(0...b.count)
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                // A swap of two neighbours ("prot" for "port") counts as one edit.
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], beforePrevious[j - 2] + 1)
                }
            }
            beforePrevious = previous
            previous = current
        }
        return previous[b.count]
    }
}
