import PopState

/// Parses the free-form `--OPTION VALUE` arguments of `pop add` and `pop config` into name/value pairs.
///
/// Accepted forms are `--name value`, `--name=value`, and a bare `--name` (meaning `true`, for bool options).
/// Types are checked later, against the template's declared options.
enum TemplateOptionArguments {
    static func parse(_ arguments: [String]) throws(PopError) -> [(name: String, value: String)] {
        var pairs: [(name: String, value: String)] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            guard argument.hasPrefix("--"), argument.count > 2 else {
                throw PopError(
                    .invalidInput, "Unexpected argument '\(argument)'.",
                    hint: "Template options are given as --OPTION VALUE, for example --port 8081.")
            }
            let body = argument.dropFirst(2)
            if let equals = body.firstIndex(of: "=") {
                pairs.append((String(body[..<equals]), String(body[body.index(after: equals)...])))
                index += 1
            } else if index + 1 < arguments.endIndex, !arguments[index + 1].hasPrefix("--") {
                pairs.append((String(body), arguments[index + 1]))
                index += 2
            } else {
                pairs.append((String(body), "true"))
                index += 1
            }
        }
        return pairs
    }
}

extension TemplateOptionArguments {
    /// Parses `--requires SLOT=SERVICE` values into slot → service.
    static func bindings(_ arguments: [String]) throws(PopError) -> [String: String] {
        var bindings: [String: String] = [:]
        for argument in arguments {
            let parts = argument.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw PopError(
                    .invalidInput, "--requires expects SLOT=SERVICE, got '\(argument)'.",
                    hint: "For example --requires db=cache binds the slot 'db' to the service 'cache'.")
            }
            bindings[String(parts[0])] = String(parts[1])
        }
        return bindings
    }
}
