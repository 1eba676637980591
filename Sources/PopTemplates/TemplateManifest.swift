import PopState

/// One template manifest as written in a plugin, before its base templates are merged in.
///
/// Every part that can hold a placeholder keeps the line it came from, so problems found while resolving (an unknown
/// placeholder, a removed option still in use) still name the file and line.
public struct TemplateManifest: Hashable, Sendable {
    /// A value and the manifest line it was read from.
    public struct Located<Value: Hashable & Sendable>: Hashable, Sendable {
        /// The value.
        public var value: Value
        /// The 1-based line in the manifest file.
        public var line: Int

        /// Wraps a value with its line.
        public init(_ value: Value, line: Int) {
            self.value = value
            self.line = line
        }
    }

    /// The `python` section: a virtual environment for each instance.
    public struct PythonSection: Hashable, Sendable {
        /// The interpreter that creates the environment, if the manifest names one.
        public var interpreter: String?
        /// Requirements pip installs.
        public var packages: [String]
        /// Pinned constraint lines (from `constraints` and `constraints-file`).
        public var constraints: [String]
        /// Where the section starts.
        public var line: Int
    }

    /// The manifest file, as shown in messages.
    public var file: String
    /// The plugin holding the manifest.
    public var plugin: String
    /// The template's name.
    public var name: String
    /// Where `name` is written.
    public var nameLine: Int
    /// The description, if given (a derived template otherwise inherits its base's).
    public var description: String?
    /// The base template's name.
    public var base: Located<String>?
    /// Options declared here, in order.
    public var options: [Located<TemplateOption>]
    /// Names of base options this template drops.
    public var removeOptions: [Located<String>]
    /// Setup steps declared here.
    public var setup: [Located<SetupStep>]
    /// The command, if declared here.
    public var command: Located<[String]>?
    /// Environment variables declared here.
    public var environment: [String: Located<String>]
    /// The stop signal, if declared here.
    public var stopSignal: StopSignal?
    /// The stop timeout, if declared here.
    public var stopTimeoutMilliseconds: Int?
    /// The health check, if declared here.
    public var health: Located<HealthCheck>?
    /// Tasks declared here.
    public var tasks: [Located<TemplateTask>]
    /// The Python environment section, if any.
    public var python: PythonSection?
    /// Files shipped by the plugin, with their contents read.
    public var files: [Located<TemplateFile>]
    /// Requirement slots declared here, by name.
    public var requires: [String: Located<TemplateRequirement>] = [:]
    /// Interfaces provided, if declared here (they replace the base's).
    public var provides: [String]?

    /// Formats a manifest problem as `file:line: field: message`.
    static func message(file: String, line: Int?, field: String?, _ text: String) -> String {
        var result = file
        if let line { result += ":\(line)" }
        result += ": "
        if let field { result += "\(field): " }
        return result + text
    }
}
