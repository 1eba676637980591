import PopState

/// An instance's command, environment, setup steps and files, worked out from its service's stored spec: every
/// placeholder substituted, one argv element at a time.
public struct InstanceBlueprint: Hashable, Sendable {
    /// The service.
    public var service: ServiceName
    /// The signature of the spec the blueprint comes from.
    public var signature: ConfigSignature
    /// The instance's folder; setup steps, the command and tasks run in it.
    public var directory: String
    /// The command's argv.
    public var command: [String]
    /// The complete environment of the instance's processes.
    public var environment: [String: String]
    /// Setup steps, the Python environment's first, with placeholders substituted.
    public var setup: [SetupStep]
    /// Files to write into the folder before anything runs (paths relative to it).
    public var files: [TemplateFile]
    /// The health check with placeholders substituted, when the template has one that applies.
    public var health: HealthCheck?
    /// The placeholder values, for tasks.
    public var values: [String: String]
    /// The file (relative to ``directory``) whose existence says the environment has every requirement installed:
    /// the template's packages and the recorded ones, under its constraints. `nil` when there is nothing to install.
    public var environmentMarker: String?

    /// The folder of the Python virtual environment, for python templates.
    public var virtualEnvironment: String? {
        values["venv"]
    }

    /// Works out the blueprint of `spec` on `machine` in `directory`.
    ///
    /// - Parameters:
    ///   - signature: The configuration signature read from the store with the spec (the SHA-1 of its node's data);
    ///     by default the spec's own ``ServiceSpec/signature``, which is the same for a spec pop wrote.
    ///   - packages: The packages recorded with the service by `pop run NAME install`, installed after the
    ///     template's own.
    ///   - baseEnvironment: Variables every instance starts from (such as `PATH`, `HOME`, `LANG`).
    ///   - relations: The relation data the instance starts with (`requires.db.addresses` and the like).
    /// - Throws: ``PopError`` with `.invalidInput` when a placeholder is unknown or a file path escapes the folder.
    public init(
        spec: ServiceSpec, signature: ConfigSignature? = nil, machine: MachineID, directory: String, packages: [String],
        baseEnvironment: [String: String], relations: [String: String] = [:]
    ) throws(PopError) {
        let template = spec.template
        let values = spec.placeholderValues(machine: machine, instanceDirectory: directory, relations: relations)
        self.service = spec.name
        self.signature = signature ?? spec.signature
        self.directory = directory
        self.values = values
        self.command = try Placeholders.expand(template.command, values: values)
        guard !command.isEmpty, !command[0].isEmpty else {
            throw PopError(.invalidInput, "The service '\(spec.name)' has an empty command.")
        }

        var environment = baseEnvironment
        environment["POP_SERVICE"] = spec.name.rawValue
        environment["POP_MACHINE"] = machine.rawValue
        environment["POP_INSTANCE_DIR"] = directory
        if let venv = values["venv"] {
            environment["VIRTUAL_ENV"] = venv
            environment["PATH"] = venv + "/bin" + (baseEnvironment["PATH"].map { ":" + $0 } ?? "")
            environment.removeValue(forKey: "PYTHONHOME")
        }
        for (key, value) in template.environment {
            environment[key] = try Placeholders.substitute(value, values: values)
        }
        self.environment = environment

        var setup: [SetupStep] = []
        var files: [TemplateFile] = []
        var environmentMarker: String?
        if let python = template.python, let venv = values["venv"] {
            setup.append(SetupStep(name: "venv", command: [python.python, "-m", "venv", venv], creates: "venv/bin/python"))
            // Always written: the `install` task hands it to pip with --constraint.
            files.append(
                TemplateFile(
                    path: "constraints.txt",
                    contents: python.constraints.map { $0 + "\n" }.joined()))
            let requirements = python.packages + packages.filter { !python.packages.contains($0) }
            if !requirements.isEmpty {
                var pip = [venv + "/bin/python", "-m", "pip", "install", "--disable-pip-version-check"]
                if !python.constraints.isEmpty { pip += ["--constraint", directory + "/constraints.txt"] }
                pip += ["--"] + requirements
                // The marker names the exact requirement set, so a changed set is installed at the next start while
                // an unchanged one is not installed again.
                let marker = ".pop/pip-" + Self.digest(requirements + ["--"] + python.constraints)
                environmentMarker = marker
                setup.append(SetupStep(name: "pip", command: pip, creates: marker))
                setup.append(
                    SetupStep(
                        name: "pip-done",
                        command: [venv + "/bin/python", "-c", "import sys; open(sys.argv[1], 'w').close()", marker],
                        creates: marker))
            }
        }
        // A resolved python template carries its own `venv` and `pip` steps; the ones above replace them (they also
        // install the recorded packages and are skipped when already done), so running both would build the
        // environment twice and run pip again at every start.
        for step in template.setup where !(template.python != nil && Self.isEnvironmentStep(step)) {
            var substituted = step
            substituted.command = try Placeholders.expand(step.command, values: values)
            for (key, value) in step.environment {
                substituted.environment[key] = try Placeholders.substitute(value, values: values)
            }
            setup.append(substituted)
        }
        for file in template.files {
            try Self.checkRelative(file.path, service: spec.name)
            files.append(file)
        }
        self.setup = setup
        self.files = files
        self.environmentMarker = environmentMarker

        if let check = template.health, check.applies(to: spec.options) {
            var substituted = check
            if let port = check.port { substituted.port = try Placeholders.substitute(port, values: values) }
            if let url = check.url { substituted.url = try Placeholders.substitute(url, values: values) }
            self.health = substituted
        } else {
            self.health = nil
        }
    }

    /// The environment of a task run in this instance: the instance's, plus `POP_TASK` and one `POP_OPTION_<NAME>`
    /// per option (upper-cased, `-` as `_`).
    public func taskEnvironment(task: String, options: [String: OptionValue]) -> [String: String] {
        var environment = self.environment
        environment["POP_TASK"] = task
        for (name, value) in options {
            environment["POP_OPTION_" + Self.variableName(name)] = value.description
        }
        return environment
    }

    /// `admin-user` → `ADMIN_USER`.
    static func variableName(_ option: String) -> String {
        String(option.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    static func checkRelative(_ path: String, service: ServiceName) throws(PopError) {
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !path.hasPrefix("/"), !components.contains(where: { $0 == ".." || $0.isEmpty }) else {
            throw PopError(
                .invalidInput,
                "The file '\(path)' of service '\(service)' is not a relative path inside the instance folder.")
        }
    }

    /// Whether `step` is one the template resolver generates for a python template (`venv` creating
    /// `venv/bin/python`, or `pip` installing the template's packages), rather than a step the template wrote itself.
    static func isEnvironmentStep(_ step: SetupStep) -> Bool {
        switch step.name {
        case "venv":
            return step.creates == "venv/bin/python" && Array(step.command.dropFirst()) == ["-m", "venv", "{venv}"]
        case "pip":
            return step.creates == nil && step.environment.isEmpty
                && Array(step.command.prefix(4)) == ["{python}", "-m", "pip", "install"]
        default:
            return false
        }
    }

    /// A short FNV-1a digest naming a requirement set (not a security measure: it only tells sets apart).
    static func digest(_ parts: [String]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in parts.joined(separator: "\n").utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
