import PopState

/// Merges a template with its chain of bases into a self-contained ``ResolvedTemplate`` and checks every placeholder.
///
/// Merge rules, applied from the root base down to the template itself:
/// - options: a redefined option replaces the base's in place; new ones are appended; `remove-options` drops
///   inherited ones;
/// - setup steps and tasks: same name replaces, new ones are appended; files: same path replaces;
/// - environment: merged, the derived value wins;
/// - command, description, stop signal, stop timeout, health check, Python interpreter: the nearest definition wins;
/// - Python packages and constraints: concatenated, base first.
///
/// A template with a `python` section gets two setup steps before all others: `venv` creates `{venv}` and `pip`
/// installs the packages with the constraints, which are written to `constraints.txt` in the instance folder.
struct TemplateResolution {
    /// The winning manifest of every template name.
    let manifests: [String: TemplateManifest]

    /// Where a merged part came from, for messages.
    struct Origin {
        var file: String
        var line: Int
        var field: String

        func failure(_ text: String, hint: String? = nil) -> PopError {
            PopError(.invalidInput, TemplateManifest.message(file: file, line: line, field: field, text), hint: hint)
        }
    }

    /// The name of the file holding a python template's pinned constraints, relative to the instance folder.
    static let constraintsFile = "constraints.txt"

    func resolve(_ name: String) throws(PopError) -> ResolvedTemplate {
        let chain = try baseChain(name)
        let own = chain[0]

        var options: [(TemplateOption, Origin)] = []
        var setup: [(SetupStep, Origin)] = []
        var tasks: [(TemplateTask, Origin)] = []
        var files: [TemplateFile] = []
        var environment: [String: (String, Origin)] = [:]
        var command: (value: [String], origin: Origin)?
        var health: (value: HealthCheck, origin: Origin)?
        var description = ""
        var stopSignal = StopSignal.term
        var stopTimeout = 10_000
        var python: PythonEnvironment?
        var requires: [String: TemplateRequirement] = [:]
        var provides: [String] = []

        for manifest in chain.reversed() {
            func origin(_ line: Int, _ field: String) -> Origin { Origin(file: manifest.file, line: line, field: field) }
            for removal in manifest.removeOptions {
                guard let index = options.firstIndex(where: { $0.0.name == removal.value }) else {
                    throw origin(removal.line, "remove-options").failure(
                        "no base of '\(manifest.name)' declares an option '\(removal.value)'")
                }
                options.remove(at: index)
            }
            for option in manifest.options {
                let entry = (option.value, origin(option.line, "option '\(option.value.name)'"))
                if let index = options.firstIndex(where: { $0.0.name == option.value.name }) {
                    options[index] = entry
                } else {
                    options.append(entry)
                }
            }
            for step in manifest.setup {
                let entry = (step.value, origin(step.line, "setup step '\(step.value.name)'"))
                if let index = setup.firstIndex(where: { $0.0.name == step.value.name }) {
                    setup[index] = entry
                } else {
                    setup.append(entry)
                }
            }
            for task in manifest.tasks {
                let entry = (task.value, origin(task.line, "task '\(task.value.name)'"))
                if let index = tasks.firstIndex(where: { $0.0.name == task.value.name }) {
                    tasks[index] = entry
                } else {
                    tasks.append(entry)
                }
            }
            for file in manifest.files {
                files.removeAll { $0.path == file.value.path }
                files.append(file.value)
            }
            for (key, value) in manifest.environment {
                environment[key] = (value.value, origin(value.line, "environment '\(key)'"))
            }
            for (slot, requirement) in manifest.requires { requires[slot] = requirement.value }
            if let own = manifest.provides { provides = own }
            if let own = manifest.command { command = (own.value, origin(own.line, "command")) }
            if let own = manifest.health { health = (own.value, origin(own.line, "health")) }
            if let own = manifest.description { description = own }
            if let own = manifest.stopSignal { stopSignal = own }
            if let own = manifest.stopTimeoutMilliseconds { stopTimeout = own }
            if let section = manifest.python {
                var merged = python ?? PythonEnvironment()
                if let interpreter = section.interpreter { merged.python = interpreter }
                for package in section.packages where !merged.packages.contains(package) {
                    merged.packages.append(package)
                }
                merged.constraints += section.constraints
                python = merged
            }
        }

        guard let command else {
            throw Origin(file: own.file, line: own.nameLine, field: "name").failure(
                "the template '\(own.name)' has no command; declare 'command' in it or in a base template")
        }

        if let python {
            setup.insert(contentsOf: Self.pythonSteps(python, origin: Origin(file: own.file, line: own.nameLine, field: "python")), at: 0)
            files.removeAll { $0.path == Self.constraintsFile }
            let text = python.constraints.isEmpty ? "" : python.constraints.joined(separator: "\n") + "\n"
            files.append(TemplateFile(path: Self.constraintsFile, contents: text))
        }

        let template = ResolvedTemplate(
            name: own.name, description: description, plugin: own.plugin, bases: chain.dropFirst().map(\.name),
            options: options.map(\.0), setup: setup.map(\.0), command: command.value,
            environment: environment.mapValues(\.0), stopSignal: stopSignal, stopTimeoutMilliseconds: stopTimeout,
            health: health?.value, tasks: tasks.map(\.0), python: python, files: files, requires: requires,
            provides: provides)

        let checker = PlaceholderCheck(
            options: Set(options.map(\.0.name)), hasPython: python != nil, slots: Set(requires.keys))
        try checker.argv(command.value, origin: command.origin, allowArguments: false)
        for (step, origin) in setup {
            try checker.argv(step.command, origin: origin, allowArguments: false)
            for (key, value) in step.environment.sorted(by: { $0.key < $1.key }) {
                try checker.text(value, origin: origin, what: "environment '\(key)'")
            }
        }
        for (task, origin) in tasks {
            try checker.argv(task.command, origin: origin, allowArguments: true)
        }
        for (key, entry) in environment.sorted(by: { $0.key < $1.key }) {
            try checker.text(entry.0, origin: entry.1, what: "value of \(key)")
        }
        if let health {
            if let port = health.value.port { try checker.text(port, origin: health.origin, what: "tcp") }
            if let url = health.value.url { try checker.text(url, origin: health.origin, what: "http") }
            if let when = health.value.whenOption, !checker.options.contains(when) {
                throw health.origin.failure("'when: \(when)' names no option of the template")
            }
        }
        return template
    }

    /// The template followed by its bases, nearest first; throws on an unknown base or a cycle.
    func baseChain(_ name: String) throws(PopError) -> [TemplateManifest] {
        guard let first = manifests[name] else {
            throw PopError(.notFound, "No template named '\(name)' is available.")
        }
        var chain = [first]
        var current = first
        while let base = current.base {
            if let index = chain.firstIndex(where: { $0.name == base.value }) {
                let cycle = (chain[index...].map(\.name) + [base.value]).joined(separator: " -> ")
                throw Origin(file: current.file, line: base.line, field: "base").failure(
                    "the base templates form a cycle: \(cycle)")
            }
            guard let next = manifests[base.value] else {
                var text = "no template named '\(base.value)' is available"
                if let nearest = OptionResolver.nearest(to: base.value, in: Array(manifests.keys)) {
                    text += "; did you mean '\(nearest)'?"
                }
                throw Origin(file: current.file, line: base.line, field: "base").failure(text)
            }
            chain.append(next)
            current = next
        }
        return chain
    }

    /// The setup steps that build a python template's virtual environment.
    static func pythonSteps(_ python: PythonEnvironment, origin: Origin) -> [(SetupStep, Origin)] {
        var steps = [
            (
                SetupStep(
                    name: "venv", command: [Placeholders.escape(python.python), "-m", "venv", "{venv}"],
                    creates: "venv/bin/python"),
                origin
            )
        ]
        if !python.packages.isEmpty {
            let command =
                [
                    "{python}", "-m", "pip", "install", "--disable-pip-version-check", "--constraint",
                    "{instance_dir}/\(constraintsFile)", "--",
                ] + python.packages.map(Placeholders.escape)
            steps.append((SetupStep(name: "pip", command: command), origin))
        }
        return steps
    }
}

/// Checks that every placeholder names an option or a runtime value that exists for the template.
struct PlaceholderCheck {
    let options: Set<String>
    let hasPython: Bool
    /// The template's requirement slots, whose relation data (`{requires.SLOT.KEY}`) may be used.
    let slots: Set<String>

    func argv(_ argv: [String], origin: TemplateResolution.Origin, allowArguments: Bool) throws(PopError) {
        for (index, element) in argv.enumerated() {
            let references: [Placeholders.Reference]
            do {
                references = try Placeholders.references(in: element, wholeElement: true)
            } catch {
                throw origin.failure("argument \(index + 1): \(error.message)", hint: error.hint)
            }
            for reference in references {
                if reference == .arguments, !allowArguments {
                    throw origin.failure(
                        "argument \(index + 1): '{args}' is only available in task commands")
                }
                try check(reference, origin: origin, what: "argument \(index + 1)")
            }
        }
    }

    func text(_ text: String, origin: TemplateResolution.Origin, what: String) throws(PopError) {
        let references: [Placeholders.Reference]
        do {
            references = try Placeholders.references(in: text)
        } catch {
            throw origin.failure("\(what): \(error.message)", hint: error.hint)
        }
        for reference in references { try check(reference, origin: origin, what: what) }
    }

    private func check(_ reference: Placeholders.Reference, origin: TemplateResolution.Origin, what: String) throws(PopError) {
        guard let name = reference.name else { return }
        if options.contains(name) { return }
        if name.hasPrefix(RelationReference.prefix) {
            guard let relation = RelationReference(name), slots.contains(relation.slot) else {
                throw origin.failure(
                    "\(what): '\(reference)' is not relation data of this template; use {requires.SLOT.KEY} with a "
                        + "slot it requires (\(slots.isEmpty ? "it requires nothing" : slots.sorted().joined(separator: ", "))) "
                        + "and KEY addresses, port or a shared option of the bound service")
            }
            return
        }
        if Placeholders.runtimeNames[name] != nil {
            if Placeholders.pythonRuntimeNames.contains(name), !hasPython {
                throw origin.failure(
                    "\(what): '\(reference)' exists only for templates with a 'python' section (or a python base)")
            }
            return
        }
        var runtime = Placeholders.runtimeNames.keys.sorted()
        if !hasPython { runtime.removeAll { Placeholders.pythonRuntimeNames.contains($0) } }
        let optionList = options.isEmpty ? "none" : options.sorted().joined(separator: ", ")
        var text = "\(what): unknown placeholder '\(reference)'"
        if let nearest = OptionResolver.nearest(to: name, in: Array(options) + runtime) {
            text += "; did you mean '{\(nearest)}'?"
        }
        throw origin.failure(
            text, hint: "Options: \(optionList). Runtime values: \(runtime.joined(separator: ", ")).")
    }
}
