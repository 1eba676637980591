import Foundation
import PopState

/// Every template pop can use: the built-in set plus the plugins found on this machine, each resolved and checked.
///
/// Precedence, highest first: the folders of `POP_PLUGIN_PATH` in their order, `~/.config/pop/plugins`,
/// `/etc/pop/plugins`, then the built-in set. When two plugins define the same template name the one with higher
/// precedence wins and the other is listed in ``shadowed``; within one location plugins are taken in name order.
/// A manifest that cannot be read or resolved is left out and described in ``problems``; it never hides the rest.
public struct TemplateCatalog: Sendable {
    /// Where a plugin was found.
    public enum Location: String, Hashable, Sendable, Codable {
        /// A folder named by `POP_PLUGIN_PATH`.
        case pluginPath = "POP_PLUGIN_PATH"
        /// `~/.config/pop/plugins` (or `$XDG_CONFIG_HOME/pop/plugins`).
        case user
        /// `/etc/pop/plugins`.
        case system
        /// The templates shipped with pop.
        case builtin
    }

    /// A plugin folder to read manifests from.
    public struct PluginFolder: Hashable, Sendable {
        /// The plugin's name: the folder's name, or `builtin` for the built-in set.
        public var name: String
        /// The folder.
        public var path: String
        /// Where it was found.
        public var location: Location

        /// Describes a plugin folder.
        public init(name: String, path: String, location: Location) {
            self.name = name
            self.path = path
            self.location = location
        }
    }

    /// One available template, as `pop list` shows it.
    public struct Entry: Hashable, Sendable, Codable {
        /// The template's name.
        public var name: String
        /// The plugin defining it.
        public var plugin: String
        /// Its description.
        public var description: String
        /// The manifest file.
        public var source: String
        /// Where its plugin was found.
        public var location: Location
    }

    /// A manifest or plugin that could not be used, with the reason.
    public struct Problem: Hashable, Sendable, Codable, CustomStringConvertible {
        /// The file or folder concerned.
        public var source: String
        /// What is wrong, usually `file:line: field: message`.
        public var message: String

        /// The message.
        public var description: String { message }
    }

    /// The usable templates, sorted by name.
    public private(set) var entries: [Entry]
    /// Templates hidden by a template of the same name with higher precedence.
    public private(set) var shadowed: [Entry]
    /// Manifests and plugins that could not be used.
    public private(set) var problems: [Problem]
    /// The plugin folders read, in precedence order.
    public let folders: [PluginFolder]

    private var resolved: [String: ResolvedTemplate]
    private var broken: [String: PopError]

    /// Reads the given plugin folders (highest precedence first) and resolves every template.
    public init(folders: [PluginFolder], problems initialProblems: [Problem] = []) {
        self.folders = folders
        var problems = initialProblems
        var winners: [String: (manifest: TemplateManifest, folder: PluginFolder)] = [:]
        var order: [String] = []
        var shadowed: [Entry] = []
        for folder in folders {
            let (manifests, folderProblems) = Self.readManifests(in: folder)
            problems += folderProblems
            for manifest in manifests {
                guard let winner = winners[manifest.name] else {
                    winners[manifest.name] = (manifest, folder)
                    order.append(manifest.name)
                    continue
                }
                if winner.folder == folder {
                    let text = "the template '\(manifest.name)' is also defined in \(winner.manifest.file) of the same "
                        + "plugin; this one is ignored"
                    problems.append(
                        Problem(
                            source: manifest.file,
                            message: TemplateManifest.message(
                                file: manifest.file, line: manifest.nameLine, field: "name", text)))
                } else {
                    shadowed.append(Self.entry(manifest, location: folder.location))
                }
            }
        }
        var resolved: [String: ResolvedTemplate] = [:]
        var broken: [String: PopError] = [:]
        var entries: [Entry] = []
        let resolution = TemplateResolution(manifests: winners.mapValues(\.manifest))
        for name in order {
            guard let (manifest, folder) = winners[name] else { continue }
            do {
                let template = try resolution.resolve(name)
                resolved[name] = template
                var entry = Self.entry(manifest, location: folder.location)
                entry.description = template.description
                entries.append(entry)
            } catch {
                broken[name] = error
                problems.append(Problem(source: manifest.file, message: error.message))
            }
        }
        self.entries = entries.sorted { $0.name < $1.name }
        self.shadowed = shadowed
        self.problems = problems
        self.resolved = resolved
        self.broken = broken
    }

    /// Which built-in templates a catalog includes.
    public enum BuiltinSet: Sendable {
        /// The templates shipped with pop (see ``TemplateCatalog/builtinDirectory()``); reported as a problem when
        /// they cannot be found.
        case bundled
        /// The plugins in this folder instead.
        case folder(String)
        /// None, for tests that want only their own plugins.
        case none
    }

    /// Finds the plugins on this machine and reads them.
    ///
    /// - Parameters:
    ///   - environment: supplies `POP_PLUGIN_PATH`, `HOME` and `XDG_CONFIG_HOME`; injected so tests need not change
    ///     the process environment.
    ///   - systemDirectory: the system-wide plugins folder.
    ///   - builtin: which built-in templates to include.
    public static func discover(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        systemDirectory: String = "/etc/pop/plugins",
        builtin: BuiltinSet = .bundled
    ) -> TemplateCatalog {
        let (folders, problems) = pluginFolders(
            environment: environment, systemDirectory: systemDirectory, builtin: builtin)
        return TemplateCatalog(folders: folders, problems: problems)
    }

    /// The resolved template named `name`, ready to store with a service.
    ///
    /// Throws `.notFound` listing the available templates, or the template's own problem when it is broken.
    public func resolve(named name: String) throws(PopError) -> ResolvedTemplate {
        if let template = resolved[name] { return template }
        if let error = broken[name] {
            throw PopError(
                .invalidInput, "The template '\(name)' cannot be used: \(error.message)",
                hint: "Fix the manifest, or use another template (`pop list` shows them).")
        }
        let names = entries.map(\.name)
        var message = "No template named '\(name)' is available."
        if let nearest = OptionResolver.nearest(to: name, in: names) { message += " Did you mean '\(nearest)'?" }
        throw PopError(
            .notFound, message,
            hint: names.isEmpty
                ? "No templates were found; `pop list` shows the problems."
                : "Available templates: \(names.joined(separator: ", ")).")
    }

    private static func entry(_ manifest: TemplateManifest, location: Location) -> Entry {
        Entry(
            name: manifest.name, plugin: manifest.plugin, description: manifest.description ?? "",
            source: manifest.file, location: location)
    }
}
