import Foundation
import PopState
import Yams

extension ManifestParser {
    /// Parses the whole manifest.
    func parse(yaml: String) throws(PopError) -> TemplateManifest {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw yamlFailure(error)
        }
        guard let root else { throw failure(nil, nil, "the manifest is empty; it needs at least 'name' and 'command'") }
        let top = try mapping(root, "manifest")
        try checkKeys(top, allowed: Self.topLevelKeys, nil)

        guard let nameNode = top["name"] else { throw failure(root, "name", "missing; every template needs a name") }
        let name = try string(nameNode, "name")
        do {
            _ = try ServiceName(name)
        } catch {
            throw failure(
                nameNode, "name",
                "'\(name)' is not a valid template name (lower-case letters, digits and dashes, starting with a letter)")
        }

        var manifest = TemplateManifest(
            file: file, plugin: plugin, name: name, nameLine: nameNode.mark?.line ?? 0, description: nil, base: nil,
            options: [], removeOptions: [], setup: [], command: nil, environment: [:], stopSignal: nil,
            stopTimeoutMilliseconds: nil, health: nil, tasks: [], python: nil, files: [])

        if let node = top["description"] {
            manifest.description = try string(node, "description").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let node = top["base"] {
            manifest.base = .init(try string(node, "base"), line: node.mark?.line ?? 0)
        }
        if let node = top["options"] { manifest.options = try options(node) }
        if let node = top["remove-options"] {
            guard let sequence = node.sequence else {
                throw failure(node, "remove-options", "expected a list of option names, found \(kind(of: node))")
            }
            for element in sequence {
                manifest.removeOptions.append(.init(try string(element, "remove-options"), line: element.mark?.line ?? 0))
            }
        }
        if let node = top["setup"] { manifest.setup = try setup(node) }
        if let node = top["command"] {
            let command = try stringList(node, "command")
            guard !command.isEmpty else { throw failure(node, "command", "must name a program to run; it is empty") }
            manifest.command = .init(command, line: node.mark?.line ?? 0)
        }
        if let node = top["environment"] { manifest.environment = try stringMap(node, "environment") }
        if let node = top["stop-signal"] {
            let name = try string(node, "stop-signal")
            guard let signal = StopSignal(parsing: name) else {
                throw failure(node, "stop-signal", "'\(name)' is not a signal pop can send; use one of \(StopSignal.names)")
            }
            manifest.stopSignal = signal
        }
        if let node = top["stop-timeout"] { manifest.stopTimeoutMilliseconds = try duration(node, "stop-timeout") }
        if let node = top["health"] { manifest.health = .init(try health(node), line: node.mark?.line ?? 0) }
        if let node = top["tasks"] { manifest.tasks = try tasks(node) }
        if let node = top["python"] { manifest.python = try python(node) }
        if let node = top["files"] { manifest.files = try files(node) }
        if let node = top["requires"] { manifest.requires = try requirements(node) }
        if let node = top["provides"] {
            let list = try stringList(node, "provides")
            for (index, interface) in list.enumerated() where (try? ServiceName(interface)) == nil {
                throw failure(
                    node, "provides element \(index + 1)",
                    "'\(interface)' is not an interface name (lower-case letters, digits and dashes, starting with a letter)")
            }
            manifest.provides = list
        }
        return manifest
    }

    // MARK: Requirements

    /// One of the cases of `type`, by name; anything else is named with the cases to use.
    func choice<Choice: RawRepresentable & CaseIterable>(
        _ node: Node, _ field: String, _ what: String, of type: Choice.Type
    ) throws(PopError) -> Choice where Choice.RawValue == String {
        let name = try string(node, "\(field) \(what)")
        guard let parsed = Choice(rawValue: name) else {
            throw failure(
                node, field,
                "unknown \(what) '\(name)'; use one of \(Choice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return parsed
    }

    func requirements(_ node: Node) throws(PopError) -> [String: TemplateManifest.Located<TemplateRequirement>] {
        var result: [String: TemplateManifest.Located<TemplateRequirement>] = [:]
        for (key, value) in try mapping(node, "requires") {
            let slot = try string(key, "requires")
            let field = "requirement '\(slot)'"
            guard (try? ServiceName(slot)) != nil else {
                throw failure(
                    key, field, "a slot name uses lower-case letters, digits and dashes, starting with a letter")
            }
            let spec = try mapping(value, field)
            try checkKeys(spec, allowed: Self.requirementKeys, field)
            var requirement = TemplateRequirement()
            if let interface = spec["interface"] {
                let name = try string(interface, "\(field) interface")
                guard (try? ServiceName(name)) != nil else {
                    throw failure(interface, field, "'\(name)' is not an interface name")
                }
                requirement.interface = name
            }
            if let condition = spec["condition"] {
                requirement.condition = try choice(condition, field, "condition", of: RequirementCondition.self)
            }
            if let policy = spec["policy"] {
                requirement.policy = try choice(policy, field, "policy", of: RequirementPolicy.self)
            }
            if let debounce = spec["debounce"] {
                requirement.debounceMilliseconds = try duration(debounce, "\(field) debounce")
            }
            result[slot] = .init(requirement, line: key.mark?.line ?? 0)
        }
        return result
    }

    // MARK: Options

    func options(_ node: Node) throws(PopError) -> [TemplateManifest.Located<TemplateOption>] {
        var result: [TemplateManifest.Located<TemplateOption>] = []
        for (key, value) in try mapping(node, "options") {
            let name = try string(key, "options")
            result.append(.init(try option(name, key: key, value), line: key.mark?.line ?? 0))
        }
        return result
    }

    func option(_ name: String, key: Node, _ node: Node) throws(PopError) -> TemplateOption {
        let field = "option '\(name)'"
        try checkOptionName(name, key, field)
        let spec = try mapping(node, field)
        try checkKeys(spec, allowed: Self.optionKeys, field)
        guard let typeNode = spec["type"] else {
            throw failure(
                node, field,
                "missing 'type'; use one of \(OptionType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let typeName = try string(typeNode, "\(field) type")
        guard let type = OptionType(rawValue: typeName) else {
            throw failure(
                typeNode, field,
                "unknown type '\(typeName)'; use one of \(OptionType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var option = TemplateOption(name: name, type: type)
        if let help = spec["help"] { option.help = try string(help, "\(field) help") }
        if let required = spec["required"] { option.required = try bool(required, "\(field) required") }
        if let secret = spec["secret"] { option.secret = try bool(secret, "\(field) secret") }
        if let shared = spec["shared"] { option.shared = try bool(shared, "\(field) shared") }
        if let minimum = spec["minimum"] {
            guard type == .int else { throw failure(minimum, field, "'minimum' applies only to int options") }
            option.minimum = try int(minimum, "\(field) minimum")
        }
        if let maximum = spec["maximum"] {
            guard type == .int else { throw failure(maximum, field, "'maximum' applies only to int options") }
            option.maximum = try int(maximum, "\(field) maximum")
        }
        if let low = option.minimum, let high = option.maximum, low > high {
            throw failure(node, field, "minimum \(low) is greater than maximum \(high)")
        }
        if let choices = spec["choices"] {
            guard type == .enum else { throw failure(choices, field, "'choices' applies only to enum options") }
            let list = try stringList(choices, "\(field) choices")
            guard !list.isEmpty else { throw failure(choices, field, "'choices' is empty") }
            guard Set(list).count == list.count else { throw failure(choices, field, "'choices' lists a value twice") }
            option.choices = list
        } else if type == .enum {
            throw failure(node, field, "an enum option needs 'choices', the list of allowed values")
        }
        if let defaultNode = spec["default"] {
            guard defaultNode.scalar != nil else {
                throw failure(defaultNode, field, "default must be a single value, found \(kind(of: defaultNode))")
            }
            if option.required {
                throw failure(defaultNode, field, "has a default, so it cannot also be required")
            }
            let raw = try string(defaultNode, field)
            if let problem = OptionResolver.defaultProblem(raw, for: option) {
                throw failure(defaultNode, field, problem)
            }
            option.defaultValue = try OptionResolver.parse(raw, for: option)
        }
        return option
    }

    func checkOptionName(_ name: String, _ key: Node, _ field: String) throws(PopError) {
        let valid =
            name.unicodeScalars.first.map { ("a"..."z").contains($0) } == true
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
            && !name.hasSuffix("-") && name.count <= 40
        guard valid else {
            throw failure(
                key, field,
                "an option name uses lower-case letters, digits and dashes and starts with a letter (it becomes --\(name))")
        }
        if Self.reservedOptionNames.contains(name) || Placeholders.runtimeNames[name] != nil {
            throw failure(
                key, field, "'\(name)' is reserved (a command-line flag or a runtime placeholder); choose another name")
        }
    }

    // MARK: Setup, tasks, health

    func setup(_ node: Node) throws(PopError) -> [TemplateManifest.Located<SetupStep>] {
        guard let sequence = node.sequence else {
            throw failure(node, "setup", "expected a list of steps, found \(kind(of: node))")
        }
        var result: [TemplateManifest.Located<SetupStep>] = []
        for (index, element) in sequence.enumerated() {
            var field = "setup step \(index + 1)"
            let spec = try mapping(element, field)
            try checkKeys(spec, allowed: Self.setupKeys, field)
            guard let nameNode = spec["name"] else { throw failure(element, field, "missing 'name'") }
            let name = try string(nameNode, field)
            field = "setup step '\(name)'"
            if result.contains(where: { $0.value.name == name }) {
                throw failure(nameNode, field, "another setup step has the same name")
            }
            guard let commandNode = spec["command"] else { throw failure(element, field, "missing 'command'") }
            let command = try stringList(commandNode, "\(field) command")
            guard !command.isEmpty else { throw failure(commandNode, field, "'command' is empty") }
            var step = SetupStep(name: name, command: command)
            if let creates = spec["creates"] {
                let path = try string(creates, "\(field) creates")
                try checkRelativePath(path, creates, "\(field) creates")
                step.creates = path
            }
            if let environment = spec["environment"] {
                step.environment = try stringMap(environment, "\(field) environment").mapValues(\.value)
            }
            result.append(.init(step, line: element.mark?.line ?? 0))
        }
        return result
    }

    func tasks(_ node: Node) throws(PopError) -> [TemplateManifest.Located<TemplateTask>] {
        var result: [TemplateManifest.Located<TemplateTask>] = []
        for (key, value) in try mapping(node, "tasks") {
            let name = try string(key, "tasks")
            let field = "task '\(name)'"
            do {
                _ = try ServiceName(name)
            } catch {
                throw failure(key, field, "a task name uses lower-case letters, digits and dashes, starting with a letter")
            }
            let spec = try mapping(value, field)
            try checkKeys(spec, allowed: Self.taskKeys, field)
            guard let commandNode = spec["command"] else { throw failure(value, field, "missing 'command'") }
            let command = try stringList(commandNode, "\(field) command")
            guard !command.isEmpty else { throw failure(commandNode, field, "'command' is empty") }
            var task = TemplateTask(name: name, command: command)
            if let description = spec["description"] { task.description = try string(description, "\(field) description") }
            if let records = spec["records-packages"] {
                task.recordsPackages = try bool(records, "\(field) records-packages")
            }
            result.append(.init(task, line: key.mark?.line ?? 0))
        }
        return result
    }

    func health(_ node: Node) throws(PopError) -> HealthCheck {
        let spec = try mapping(node, "health")
        try checkKeys(spec, allowed: Self.healthKeys, "health")
        var check: HealthCheck
        switch (spec["tcp"], spec["http"]) {
        case (let tcp?, nil):
            check = HealthCheck(kind: .tcp, port: try string(tcp, "health tcp"))
        case (nil, let http?):
            let url = try string(http, "health http")
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw failure(http, "health", "'http' must be a URL starting with http:// or https://, found '\(url)'")
            }
            check = HealthCheck(kind: .http, url: url)
        case (.some, .some):
            throw failure(node, "health", "give either 'tcp' (a port) or 'http' (a URL), not both")
        case (nil, nil):
            throw failure(node, "health", "missing 'tcp' (a port such as \"{port}\") or 'http' (a URL)")
        }
        if let interval = spec["interval"] { check.intervalMilliseconds = try duration(interval, "health interval") }
        if let timeout = spec["timeout"] { check.timeoutMilliseconds = try duration(timeout, "health timeout") }
        if let grace = spec["grace-period"] { check.gracePeriodMilliseconds = try duration(grace, "health grace-period") }
        if let when = spec["when"] { check.whenOption = try string(when, "health when") }
        guard check.intervalMilliseconds > 0, check.timeoutMilliseconds > 0 else {
            throw failure(node, "health", "'interval' and 'timeout' must be longer than zero")
        }
        return check
    }

    // MARK: Python and files

    func python(_ node: Node) throws(PopError) -> TemplateManifest.PythonSection {
        let spec = try mapping(node, "python")
        try checkKeys(spec, allowed: Self.pythonKeys, "python")
        var section = TemplateManifest.PythonSection(
            interpreter: nil, packages: [], constraints: [], line: node.mark?.line ?? 0)
        if let interpreter = spec["interpreter"] { section.interpreter = try string(interpreter, "python interpreter") }
        if let packages = spec["packages"] {
            section.packages = try stringList(packages, "python packages")
            for (index, package) in section.packages.enumerated() where package.hasPrefix("-") || package.isEmpty {
                throw failure(
                    packages, "python packages element \(index + 1)",
                    "'\(package)' is not a requirement (pip options are not allowed here)")
            }
        }
        if let constraints = spec["constraints"] { section.constraints = try stringList(constraints, "python constraints") }
        if let fileNode = spec["constraints-file"] {
            let path = try string(fileNode, "python constraints-file")
            let text = try readPluginFile(path, fileNode, "python constraints-file")
            let lines = text.split(whereSeparator: { $0.isNewline }).map { line in
                String(line).trimmingCharacters(in: .whitespaces)
            }
            section.constraints += lines.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        for (index, line) in section.constraints.enumerated() where line.hasPrefix("-") {
            throw failure(
                node, "python constraints line \(index + 1)",
                "'\(line)' is a pip option; constraints must be plain pinned requirements such as 'lxml==5.3.0'")
        }
        return section
    }

    func files(_ node: Node) throws(PopError) -> [TemplateManifest.Located<TemplateFile>] {
        guard let sequence = node.sequence else {
            throw failure(node, "files", "expected a list of paths inside the plugin folder, found \(kind(of: node))")
        }
        var result: [TemplateManifest.Located<TemplateFile>] = []
        for element in sequence {
            var executable: Bool?
            let path: String
            if element.scalar != nil {
                path = try string(element, "files")
            } else {
                let spec = try mapping(element, "files")
                try checkKeys(spec, allowed: Self.fileKeys, "files")
                guard let pathNode = spec["path"] else { throw failure(element, "files", "missing 'path'") }
                path = try string(pathNode, "files path")
                if let flag = spec["executable"] { executable = try bool(flag, "file '\(path)' executable") }
            }
            let contents = try readPluginFile(path, element, "file '\(path)'")
            let isExecutable = executable ?? isExecutableFile(path)
            result.append(.init(TemplateFile(path: path, contents: contents, executable: isExecutable), line: element.mark?.line ?? 0))
        }
        return result
    }

    func readPluginFile(_ path: String, _ node: Node, _ field: String) throws(PopError) -> String {
        try checkRelativePath(path, node, field)
        guard let directory else {
            throw failure(node, field, "names a file, but this manifest was not read from a plugin folder")
        }
        let url = directory.appendingPathComponent(path)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw failure(node, field, "cannot read '\(path)' in the plugin folder \(directory.path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw failure(node, field, "'\(path)' is not UTF-8 text; only text files can be shipped")
        }
        return text
    }

    func isExecutableFile(_ path: String) -> Bool {
        guard let directory else { return false }
        return FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent(path).path)
    }
}
