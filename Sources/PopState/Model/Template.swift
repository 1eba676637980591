/// The type of a template option, which decides how a value given on the command line is checked.
public enum OptionType: String, Hashable, Sendable, Codable, CaseIterable {
    /// A TCP port, 1-65535.
    case port
    /// An integer, optionally bounded by `minimum` and `maximum`.
    case int
    /// Free text (never passed through a shell).
    case string
    /// `true` or `false` (also accepts yes/no, on/off, 1/0 on the command line).
    case bool
    /// One of a fixed list of `choices`.
    case `enum`
}

/// A value of a template option, stored as a plain JSON scalar.
public enum OptionValue: Hashable, Sendable, Codable, CustomStringConvertible {
    case string(String)
    case int(Int)
    case bool(Bool)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else {
            self = .string(try container.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        }
    }

    /// The value as it is substituted into a `{placeholder}`.
    public var description: String {
        switch self {
        case .string(let value): value
        case .int(let value): String(value)
        case .bool(let value): value ? "true" : "false"
        }
    }
}

/// An option a template declares: its type, default, help and validation.
public struct TemplateOption: Hashable, Sendable, Codable {
    /// The option's name, used as `--name` on the command line and `{name}` in placeholders.
    public var name: String
    /// The option's type.
    public var type: OptionType
    /// The value used when none is given; `nil` with `required` means the user must give one.
    public var defaultValue: OptionValue?
    /// One line of help shown by `pop describe`.
    public var help: String
    /// Whether `pop add` refuses to proceed without a value.
    public var required: Bool
    /// Inclusive lower bound for `int` options.
    public var minimum: Int?
    /// Inclusive upper bound for `int` options.
    public var maximum: Int?
    /// The allowed values of an `enum` option.
    public var choices: [String]?
    /// Whether the value is a secret (a password): shown masked by `pop describe`, `pop config` and `pop status`.
    public var secret: Bool
    /// Whether dependents may use the value as `{requires.SLOT.NAME}` (a secret only when marked so).
    public var shared: Bool

    /// Creates an option.
    public init(
        name: String, type: OptionType, defaultValue: OptionValue? = nil, help: String = "", required: Bool = false,
        minimum: Int? = nil, maximum: Int? = nil, choices: [String]? = nil, secret: Bool = false,
        shared: Bool = false
    ) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.help = help
        self.required = required
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.secret = secret
        self.shared = shared
    }

    enum CodingKeys: String, CodingKey {
        case name, type, defaultValue = "default", help, required, minimum, maximum, choices, secret, shared
    }

    /// Encodes `shared` only when set, so options stored before it existed keep their encoding and signature.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(type, forKey: .type)
        try container.encodeIfPresent(defaultValue, forKey: .defaultValue)
        try container.encode(help, forKey: .help)
        try container.encode(required, forKey: .required)
        try container.encodeIfPresent(minimum, forKey: .minimum)
        try container.encodeIfPresent(maximum, forKey: .maximum)
        try container.encodeIfPresent(choices, forKey: .choices)
        try container.encode(secret, forKey: .secret)
        if shared { try container.encode(shared, forKey: .shared) }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try container.decode(String.self, forKey: .name)
        self.type = try container.decode(OptionType.self, forKey: .type)
        self.defaultValue = try container.decodeIfPresent(OptionValue.self, forKey: .defaultValue)
        self.help = try container.decodeIfPresent(String.self, forKey: .help) ?? ""
        self.required = try container.decodeIfPresent(Bool.self, forKey: .required) ?? false
        self.minimum = try container.decodeIfPresent(Int.self, forKey: .minimum)
        self.maximum = try container.decodeIfPresent(Int.self, forKey: .maximum)
        self.choices = try container.decodeIfPresent([String].self, forKey: .choices)
        self.secret = try container.decodeIfPresent(Bool.self, forKey: .secret) ?? false
        self.shared = try container.decodeIfPresent(Bool.self, forKey: .shared) ?? false
    }

    /// How a value of this option is shown to people: secrets are masked.
    public func displayValue(_ value: OptionValue?) -> String {
        guard let value else { return "" }
        if secret { return value.description.isEmpty ? "" : "********" }
        return value.description
    }
}

/// How the agent decides that an instance is healthy.
public struct HealthCheck: Hashable, Sendable, Codable {
    /// The kind of probe.
    public enum Kind: String, Hashable, Sendable, Codable {
        /// A TCP connection to `port` on the loopback address succeeds.
        case tcp
        /// An HTTP GET of `url` answers 2xx or 3xx.
        case http
    }

    /// The kind of probe.
    public var kind: Kind
    /// The port to probe, possibly a placeholder such as `{port}` (tcp).
    public var port: String?
    /// The URL to fetch, possibly with placeholders such as `http://127.0.0.1:{port}/` (http).
    public var url: String?
    /// Time between probes.
    public var intervalMilliseconds: Int
    /// Time one probe may take.
    public var timeoutMilliseconds: Int
    /// How long an instance may stay unhealthy after it starts before it is restarted.
    public var gracePeriodMilliseconds: Int
    /// When set, the check applies only to services where this option has a non-empty value (such as an optional
    /// `port`); otherwise the instance counts as healthy once it runs.
    public var whenOption: String?

    /// Creates a health check.
    public init(
        kind: Kind, port: String? = nil, url: String? = nil, intervalMilliseconds: Int = 1000,
        timeoutMilliseconds: Int = 1000, gracePeriodMilliseconds: Int = 60_000, whenOption: String? = nil
    ) {
        self.kind = kind
        self.port = port
        self.url = url
        self.intervalMilliseconds = intervalMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.gracePeriodMilliseconds = gracePeriodMilliseconds
        self.whenOption = whenOption
    }

    /// Whether the check applies to a service with these option values (see ``whenOption``).
    public func applies(to options: [String: OptionValue]) -> Bool {
        guard let whenOption else { return true }
        guard let value = options[whenOption] else { return false }
        return !value.description.isEmpty
    }
}

/// A command run once to prepare an instance's folder before its command starts.
public struct SetupStep: Hashable, Sendable, Codable {
    /// A short name shown in progress and errors.
    public var name: String
    /// The argv, with `{placeholder}` substitution per element. Never passed through a shell.
    public var command: [String]
    /// A path, relative to the instance folder, whose existence means the step is already done.
    public var creates: String?
    /// Environment variables for this step only, with placeholders substituted, added to the template's environment.
    /// Secrets such as an initial password go here rather than into argv, where any local user could read them.
    public var environment: [String: String]

    /// Creates a setup step.
    public init(name: String, command: [String], creates: String? = nil, environment: [String: String] = [:]) {
        self.name = name
        self.command = command
        self.creates = creates
        self.environment = environment
    }

    enum CodingKeys: String, CodingKey {
        case name, command, creates, environment
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try container.decode(String.self, forKey: .name)
        self.command = try container.decode([String].self, forKey: .command)
        self.creates = try container.decodeIfPresent(String.self, forKey: .creates)
        self.environment = try container.decodeIfPresent([String: String].self, forKey: .environment) ?? [:]
    }
}

/// A task that `pop run SERVICE TASK [ARGS]` runs in every instance's environment.
public struct TemplateTask: Hashable, Sendable, Codable {
    /// The task's name, the second argument of `pop run`.
    public var name: String
    /// One line shown when tasks are listed.
    public var description: String
    /// The argv; an element that is exactly `{args}` expands to the task's arguments, one element each.
    public var command: [String]
    /// Whether a successful run's arguments are package requirements the agent records with the service, so a new
    /// machine or a rebuilt environment installs them too (the `python` base's `install` task).
    public var recordsPackages: Bool

    /// Creates a task.
    public init(name: String, description: String = "", command: [String], recordsPackages: Bool = false) {
        self.name = name
        self.description = description
        self.command = command
        self.recordsPackages = recordsPackages
    }

    enum CodingKeys: String, CodingKey {
        case name, description, command, recordsPackages
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try container.decode(String.self, forKey: .name)
        self.description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
        self.command = try container.decode([String].self, forKey: .command)
        self.recordsPackages = try container.decodeIfPresent(Bool.self, forKey: .recordsPackages) ?? false
    }
}

/// The seed's PythonEnvironment: each instance gets its own virtual environment with these packages.
public struct PythonEnvironment: Hashable, Sendable, Codable {
    /// The interpreter used to create the virtual environment.
    public var python: String
    /// Requirements installed by pip, one requirement per element.
    public var packages: [String]
    /// Pinned constraint lines handed to pip with `-c`, for reproducible installs.
    public var constraints: [String]

    /// Creates a Python environment description.
    public init(python: String = "python3", packages: [String] = [], constraints: [String] = []) {
        self.python = python
        self.packages = packages
        self.constraints = constraints
    }
}

/// A file a plugin ships (usually a script a task or setup step names), stored with the service.
public struct TemplateFile: Hashable, Sendable, Codable {
    /// The path relative to the instance folder.
    public var path: String
    /// The file's text.
    public var contents: String
    /// Whether the file gets the executable bit.
    public var executable: Bool

    /// Creates a file.
    public init(path: String, contents: String, executable: Bool = false) {
        self.path = path
        self.contents = contents
        self.executable = executable
    }
}

/// A template with its base templates merged in: everything an agent needs, with no plugin files on its machine.
public struct ResolvedTemplate: Hashable, Sendable, Codable {
    /// The template's name, as `pop add --template` names it.
    public var name: String
    /// A paragraph shown by `pop describe`.
    public var description: String
    /// The plugin the template comes from (`builtin` for the built-in set).
    public var plugin: String
    /// The chain of base templates merged into this one, nearest first.
    public var bases: [String]
    /// The options, in declaration order.
    public var options: [TemplateOption]
    /// Steps run once in the instance folder before the command starts.
    public var setup: [SetupStep]
    /// The argv, with `{option}` placeholders substituted per element.
    public var command: [String]
    /// Extra environment variables, with placeholders substituted.
    public var environment: [String: String]
    /// The signal that asks the process to stop.
    public var stopSignal: StopSignal
    /// How long to wait after the stop signal before SIGKILL to the whole process group.
    public var stopTimeoutMilliseconds: Int
    /// An optional health check.
    public var health: HealthCheck?
    /// Tasks for `pop run`.
    public var tasks: [TemplateTask]
    /// Set for templates derived from the `python` base.
    public var python: PythonEnvironment?
    /// Scripts and other files shipped by the plugin, written into the instance folder.
    public var files: [TemplateFile]
    /// The requirement slots, by name; `nil` when the template requires nothing (so that a template without any
    /// keeps the encoding, and the signature, it had before requirements existed).
    public var requires: [String: TemplateRequirement]?
    /// The interfaces the template provides to other services' requirements; `nil` when none.
    public var provides: [String]?

    /// Creates a resolved template.
    public init(
        name: String, description: String = "", plugin: String = "builtin", bases: [String] = [],
        options: [TemplateOption] = [], setup: [SetupStep] = [], command: [String],
        environment: [String: String] = [:], stopSignal: StopSignal = .term, stopTimeoutMilliseconds: Int = 10_000,
        health: HealthCheck? = nil, tasks: [TemplateTask] = [], python: PythonEnvironment? = nil,
        files: [TemplateFile] = [], requires: [String: TemplateRequirement]? = nil, provides: [String]? = nil
    ) {
        self.name = name
        self.description = description
        self.plugin = plugin
        self.bases = bases
        self.options = options
        self.setup = setup
        self.command = command
        self.environment = environment
        self.stopSignal = stopSignal
        self.stopTimeoutMilliseconds = stopTimeoutMilliseconds
        self.health = health
        self.tasks = tasks
        self.python = python
        self.files = files
        self.requires = requires?.isEmpty == true ? nil : requires
        self.provides = provides?.isEmpty == true ? nil : provides
    }
}
