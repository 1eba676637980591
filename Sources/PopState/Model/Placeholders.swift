/// `{name}` placeholders in a template's argv elements, environment values and health URL, and the word rules that
/// split a command line into argv elements without any shell.
///
/// Syntax, in template text:
/// - `{name}` is replaced by the value named `name` (an option or a runtime value) anywhere inside a string.
/// - `{{` and `}}` stand for a literal `{` and `}`.
/// - An argv element that is exactly `{words:name}` expands to the words of that value, split by ``splitWords(_:)``
///   (zero or more elements), each word then having its own `{name}` placeholders substituted once: a command line
///   given as an option can hand the program its port (`python3 -m http.server {port}`). It may not appear inside a
///   larger element.
/// - A task argv element that is exactly `{args}` expands to the task's arguments, one element each.
///
/// Substituted values are never scanned again, so braces, quotes, `;`, `$(...)` or backticks in an option value stay
/// literal text inside the element (or word) that named it.
public enum Placeholders {
    /// The values the agent supplies at run time, with what each one means.
    public static let runtimeNames: [String: String] = Dictionary(
        uniqueKeysWithValues: RuntimeValue.allCases.map { ($0.rawValue, $0.meaning) })

    /// Runtime values that exist only for templates with a Python environment.
    public static let pythonRuntimeNames: Set<String> = Set(RuntimeValue.allCases.filter(\.needsPython).map(\.rawValue))

    /// The whole-element placeholder that expands to a task's arguments.
    public static let argumentsElement = "{args}"

    /// One placeholder found in template text.
    public enum Reference: Hashable, Sendable, CustomStringConvertible {
        /// `{name}`: the value's text.
        case value(String)
        /// `{words:name}`: the value split into words, as a whole argv element.
        case words(String)
        /// `{args}`: a task's arguments, as a whole argv element.
        case arguments

        /// The name of the value the reference reads, if any.
        public var name: String? {
            switch self {
            case .value(let name), .words(let name): name
            case .arguments: nil
            }
        }

        /// The placeholder as written in a template.
        public var description: String {
            switch self {
            case .value(let name): "{\(name)}"
            case .words(let name): "{words:\(name)}"
            case .arguments: "{args}"
            }
        }
    }

    // MARK: Parsing

    private enum Segment: Equatable {
        case literal(String)
        case placeholder(String)
    }

    /// Splits template text into literal text and placeholder names, handling `{{` and `}}`.
    private static func segments(_ text: String) throws(PopError) -> [Segment] {
        var result: [Segment] = []
        var literal = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            let next = text.index(after: index)
            if character == "{" {
                if next < text.endIndex, text[next] == "{" {
                    literal.append("{")
                    index = text.index(after: next)
                    continue
                }
                guard let close = text[next...].firstIndex(of: "}") else {
                    throw PopError(
                        .invalidInput, "Unterminated placeholder in \(quoted(text)): '{' has no closing '}'.",
                        hint: "Write '{{' for a literal '{'.")
                }
                let name = String(text[next..<close])
                guard isValidName(name) else {
                    throw PopError(
                        .invalidInput, "Invalid placeholder '{\(name)}' in \(quoted(text)).",
                        hint: "A placeholder is {name}, {words:name} or {args}, where a name uses letters, digits, "
                            + "'_' and '-'. Write '{{' and '}}' for literal braces.")
                }
                if !literal.isEmpty {
                    result.append(.literal(literal))
                    literal = ""
                }
                result.append(.placeholder(name))
                index = text.index(after: close)
            } else if character == "}" {
                guard next < text.endIndex, text[next] == "}" else {
                    throw PopError(
                        .invalidInput, "Unmatched '}' in \(quoted(text)).", hint: "Write '}}' for a literal '}'.")
                }
                literal.append("}")
                index = text.index(after: next)
            } else {
                literal.append(character)
                index = next
            }
        }
        if !literal.isEmpty { result.append(.literal(literal)) }
        return result
    }

    private static func isValidName(_ raw: String) -> Bool {
        let name = raw.hasPrefix("words:") ? String(raw.dropFirst("words:".count)) : raw
        guard let first = name.unicodeScalars.first, first != "-" else { return false }
        // Dots separate the parts of relation data: {requires.db.addresses}.
        guard !name.hasSuffix("."), !name.contains("..") else { return false }
        return name.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", "-", ".": true
            default: false
            }
        }
    }

    private static func reference(_ name: String) -> Reference {
        if name == "args" { return .arguments }
        if name.hasPrefix("words:") { return .words(String(name.dropFirst("words:".count))) }
        return .value(name)
    }

    /// Every placeholder in `text`, in order; throws when the text is malformed (an unmatched brace, a bad name).
    ///
    /// With `wholeElement` set, `text` is one argv element, so `{args}` and `{words:name}` are allowed when they are
    /// the entire element; elsewhere they are errors.
    public static func references(in text: String, wholeElement: Bool = false) throws(PopError) -> [Reference] {
        let parts = try segments(text)
        var references: [Reference] = []
        for part in parts {
            guard case .placeholder(let name) = part else { continue }
            let found = reference(name)
            if found != .value(name), !(wholeElement && parts.count == 1) {
                throw PopError(
                    .invalidInput, "'\(found)' in \(quoted(text)) must be a whole argv element on its own.",
                    hint: "Put '\(found)' in a list element by itself, for example [\"prog\", \"\(found)\"].")
            }
            references.append(found)
        }
        return references
    }

    // MARK: Substitution

    /// Replaces every `{name}` in `text` with its value; for environment values, health URLs and ports.
    ///
    /// An unknown name is an error naming it. `{args}` and `{words:name}` are errors here.
    public static func substitute(_ text: String, values: [String: String]) throws(PopError) -> String {
        var result = ""
        for part in try segments(text) {
            switch part {
            case .literal(let literal):
                result += literal
            case .placeholder(let name):
                let found = reference(name)
                guard found == .value(name) else {
                    throw PopError(
                        .invalidInput, "'\(found)' in \(quoted(text)) can only be a whole argv element.",
                        hint: "It expands to several arguments, so it cannot be part of a single string.")
                }
                result += try value(named: name, in: values, text: text)
            }
        }
        return result
    }

    /// Expands an argv: `{name}` is substituted inside each element, an element that is exactly `{words:name}` becomes
    /// the words of that value, and an element that is exactly `{args}` becomes `arguments` (for tasks; `nil`
    /// elsewhere, where `{args}` is an error).
    public static func expand(
        _ argv: [String], values: [String: String], arguments: [String]? = nil
    ) throws(PopError) -> [String] {
        var result: [String] = []
        for element in argv {
            let parts = try segments(element)
            if parts.count == 1, case .placeholder(let name) = parts[0] {
                switch reference(name) {
                case .arguments:
                    guard let arguments else {
                        throw PopError(
                            .invalidInput, "'{args}' in \(quoted(element)) is only available in task commands.")
                    }
                    result += arguments
                    continue
                case .words(let wordsName):
                    result += try commandLine(named: wordsName, values: values, element: element)
                    continue
                case .value:
                    break
                }
            }
            result.append(try substitute(element, values: values))
        }
        return result
    }

    /// The words of the command line in value `name`, each with its own placeholders substituted once.
    ///
    /// The line is split first, so a substituted value is always part of one word and is never scanned again: an
    /// option's value can neither add a word nor bring in a placeholder of its own.
    private static func commandLine(
        named name: String, values: [String: String], element: String
    ) throws(PopError) -> [String] {
        let line = try value(named: name, in: values, text: element)
        let words: [String]
        do {
            words = try splitWords(line)
        } catch {
            throw PopError(
                .invalidInput, "The value of '\(name)' cannot be split into words: \(error.message)", hint: error.hint)
        }
        var result: [String] = []
        for word in words {
            do {
                result.append(try substitute(word, values: values))
            } catch {
                throw PopError(
                    .invalidInput, "The value of '\(name)', \(quote(line)): \(error.message)",
                    hint: (error.hint.map { $0 + " " } ?? "") + "Placeholders such as {port} may be used in it; write "
                        + "'{{' and '}}' for literal braces.")
            }
        }
        return result
    }

    private static func value(named name: String, in values: [String: String], text: String) throws(PopError) -> String {
        guard let value = values[name] else {
            let known = values.keys.sorted().map { "{\($0)}" }.joined(separator: ", ")
            throw PopError(
                .invalidInput, "Unknown placeholder '{\(name)}' in \(quoted(text)).",
                hint: known.isEmpty ? "No placeholders are defined here." : "Known placeholders: \(known).")
        }
        return value
    }

    /// The placeholder values for a service: every declared option (an option without a value substitutes as the empty
    /// string) plus the runtime values (`service`, `machine`, `instance_dir`, and for python templates `venv` and
    /// `python`); runtime values win over options of the same name, which manifests cannot declare anyway.
    public static func values(
        options declared: [TemplateOption], values: [String: OptionValue], runtime: [String: String]
    ) -> [String: String] {
        var result: [String: String] = [:]
        for option in declared {
            result[option.name] = values[option.name]?.description ?? ""
        }
        for (name, value) in values where result[name] == nil {
            result[name] = value.description
        }
        result.merge(runtime) { _, runtime in runtime }
        return result
    }

    /// Doubles every brace in `literal`, so it survives substitution unchanged.
    public static func escape(_ literal: String) -> String {
        literal.replacingOccurrences(of: "{", with: "{{").replacingOccurrences(of: "}", with: "}}")
    }

    // MARK: Word splitting

    /// Splits a command line into argv elements by shell-like word rules, without any shell.
    ///
    /// - Blanks (space, tab, newline) separate words.
    /// - `'...'` keeps everything literally. `"..."` keeps everything literally except `\"`, `\\`, `\$`, `` \` ``
    ///   and backslash-newline. Outside quotes a backslash makes the next character literal.
    /// - There are no variables, globbing, command substitution, pipes or separators: `$(id)`, `` `id` ``, `*`, `;`
    ///   and `&&` are ordinary characters.
    /// - An unterminated quote or a trailing backslash is an error saying where it starts.
    public static func splitWords(_ line: String) throws(PopError) -> [String] {
        enum Quote { case none, single, double }
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote = Quote.none
        var quoteStart = 0
        var characters = Array(line).makeIterator()
        var position = 0
        while let character = characters.next() {
            position += 1
            switch quote {
            case .single:
                if character == "'" { quote = .none } else { current.append(character) }
            case .double:
                if character == "\"" {
                    quote = .none
                } else if character == "\\" {
                    guard let escaped = characters.next() else {
                        throw unterminated("double quote", at: quoteStart, in: line)
                    }
                    position += 1
                    switch escaped {
                    case "\"", "\\", "$", "`": current.append(escaped)
                    case "\n": break
                    default:
                        current.append("\\")
                        current.append(escaped)
                    }
                } else {
                    current.append(character)
                }
            case .none:
                switch character {
                case " ", "\t", "\n", "\r":
                    if inWord {
                        words.append(current)
                        current = ""
                        inWord = false
                    }
                case "'":
                    quote = .single
                    quoteStart = position
                    inWord = true
                case "\"":
                    quote = .double
                    quoteStart = position
                    inWord = true
                case "\\":
                    guard let escaped = characters.next() else {
                        throw PopError(
                            .invalidInput, "The command line \(quoted(line)) ends with a lone backslash.",
                            hint: "Write '\\\\' for a literal backslash.")
                    }
                    position += 1
                    if escaped != "\n" {
                        current.append(escaped)
                        inWord = true
                    }
                default:
                    current.append(character)
                    inWord = true
                }
            }
        }
        switch quote {
        case .single: throw unterminated("single quote", at: quoteStart, in: line)
        case .double: throw unterminated("double quote", at: quoteStart, in: line)
        case .none: break
        }
        if inWord { words.append(current) }
        return words
    }

    private static func unterminated(_ what: String, at column: Int, in line: String) -> PopError {
        PopError(
            .invalidInput, "The command line \(quoted(line)) has an unterminated \(what) starting at character \(column).",
            hint: "Close the quote, or escape it with a backslash to mean a literal quote character.")
    }

    /// Quotes text for a message, escaping control characters and shortening long text.
    public static func quote(_ text: String) -> String {
        NameRules.printable(text)
    }

    private static func quoted(_ text: String) -> String {
        quote(text)
    }
}

extension ServiceSpec {
    /// Checks that every placeholder of the command, the setup steps, the environment and the health check can be
    /// substituted, and that a command line given as an option splits into words: what the agent will do, done before
    /// the spec is written, so bad input is refused by `pop add` and `pop config` rather than by every agent.
    public func checkPlaceholders() throws(PopError) {
        var relations: [String: String] = [:]
        for reference in relationReferences() { relations[reference.placeholder] = "relation" }
        let values = placeholderValues(
            machine: try MachineID("machine"), instanceDirectory: "/instance", relations: relations)
        _ = try Placeholders.expand(template.command, values: values)
        for step in template.setup {
            _ = try Placeholders.expand(step.command, values: values)
            for value in step.environment.values { _ = try Placeholders.substitute(value, values: values) }
        }
        for value in template.environment.values { _ = try Placeholders.substitute(value, values: values) }
    }

    /// The placeholder values for one instance of this service: its options plus the runtime values.
    ///
    /// `instanceDirectory` is the instance's absolute folder; for python templates `{venv}` is `instanceDirectory/venv`
    /// and `{python}` is its `bin/python`.
    /// `relations` holds the relation data (`requires.db.addresses` and the like) the instance is started with.
    public func placeholderValues(
        machine: MachineID, instanceDirectory: String, relations: [String: String] = [:]
    ) -> [String: String] {
        let venv = instanceDirectory.hasSuffix("/") ? instanceDirectory + "venv" : instanceDirectory + "/venv"
        var runtime: [String: String] = [:]
        for value in Placeholders.RuntimeValue.allCases where template.python != nil || !value.needsPython {
            runtime[value.rawValue] =
                switch value {
                case .service: name.rawValue
                case .machine: machine.rawValue
                case .instanceDirectory: instanceDirectory
                case .venv: venv
                case .python: venv + "/bin/python"
                }
        }
        runtime.merge(relations) { _, relation in relation }
        return Placeholders.values(options: template.options, values: options, runtime: runtime)
    }
}

extension Placeholders {
    /// A value the agent supplies at run time: the one list of them, for templates, the manifest checks and the agent.
    public enum RuntimeValue: String, CaseIterable, Sendable {
        case service
        case machine
        case instanceDirectory = "instance_dir"
        case venv
        case python

        /// What the value is, for `pop describe` and the manifest checks' messages.
        public var meaning: String {
            switch self {
            case .service: "the service's name"
            case .machine: "the id of the machine running the instance"
            case .instanceDirectory: "the instance's folder (absolute path); setup steps, the command and tasks run in it"
            case .venv: "the instance's Python virtual environment, {instance_dir}/venv (python templates only)"
            case .python: "the virtual environment's interpreter, {venv}/bin/python (python templates only)"
            }
        }

        /// Whether only templates with a Python environment have it.
        public var needsPython: Bool { self == .venv || self == .python }
    }
}
