import Foundation
import PopState

extension TemplateCatalog {
    /// The plugin folders to read, highest precedence first, and problems met while listing them.
    ///
    /// Each `POP_PLUGIN_PATH` entry (colon-separated) is one plugin when it holds manifest files itself, and
    /// otherwise a folder whose subfolders are plugins, like `~/.config/pop/plugins` and `/etc/pop/plugins`.
    public static func pluginFolders(
        environment: [String: String], systemDirectory: String, builtin: BuiltinSet
    ) -> ([PluginFolder], [Problem]) {
        var folders: [PluginFolder] = []
        var problems: [Problem] = []
        let fileManager = FileManager.default

        for entry in (environment["POP_PLUGIN_PATH"] ?? "").split(separator: ":").map(String.init) where !entry.isEmpty {
            var isDirectory: ObjCBool = false
            guard fileManager.fileExists(atPath: entry, isDirectory: &isDirectory), isDirectory.boolValue else {
                problems.append(
                    Problem(source: entry, message: "\(entry): named by POP_PLUGIN_PATH, but it is not a folder"))
                continue
            }
            if !manifestFiles(in: entry).isEmpty {
                folders.append(PluginFolder(name: lastComponent(entry), path: entry, location: .pluginPath))
            } else {
                folders += subfolders(of: entry, location: .pluginPath)
            }
        }

        let configHome =
            environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["HOME"].map { $0 + "/.config" }
        if let configHome {
            folders += subfolders(of: configHome + "/pop/plugins", location: .user)
        }
        folders += subfolders(of: systemDirectory, location: .system)

        let builtinDirectory: String?
        switch builtin {
        case .bundled: builtinDirectory = Self.builtinDirectory()
        case .folder(let folder): builtinDirectory = folder
        case .none: builtinDirectory = nil
        }
        if let builtinDirectory {
            folders += subfolders(of: builtinDirectory, location: .builtin).map { folder in
                var folder = folder
                folder.name = "builtin"
                return folder
            }
        } else if case .bundled = builtin {
            problems.append(
                Problem(
                    source: "builtin",
                    message: "The built-in templates were not found: the folder pop_PopTemplates.resources should sit "
                        + "beside the pop executable."))
        }
        return (folders, problems)
    }

    /// The folder holding the built-in plugins: the `BuiltinPlugins` resources shipped beside the executable (what
    /// `Bundle.module` loads), or the source tree's copy when pop runs from a build folder.
    public static func builtinDirectory() -> String? {
        let bundleName = "pop_PopTemplates.resources"
        var candidates: [URL] = [Bundle.main.bundleURL.appendingPathComponent(bundleName)]
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            candidates.append(executable.deletingLastPathComponent().appendingPathComponent(bundleName))
        }
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent())
        for candidate in candidates {
            let folder = candidate.appendingPathComponent("BuiltinPlugins").path
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue {
                return folder
            }
        }
        return nil
    }

    /// Reads every manifest of one plugin folder, in file-name order.
    static func readManifests(in folder: PluginFolder) -> ([TemplateManifest], [Problem]) {
        var manifests: [TemplateManifest] = []
        var problems: [Problem] = []
        for file in manifestFiles(in: folder.path) {
            let path = folder.path + "/" + file
            do {
                manifests.append(try TemplateManifest.load(path: path, plugin: folder.name))
            } catch {
                problems.append(Problem(source: path, message: error.message))
            }
        }
        return (manifests, problems)
    }

    static func manifestFiles(in path: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasPrefix(".") }.sorted()
    }

    private static func subfolders(of path: String, location: Location) -> [PluginFolder] {
        let fileManager = FileManager.default
        let names = (try? fileManager.contentsOfDirectory(atPath: path)) ?? []
        return names.sorted().compactMap { name in
            guard !name.hasPrefix(".") else { return nil }
            let folder = path + "/" + name
            var isDirectory: ObjCBool = false
            guard fileManager.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                return nil
            }
            return PluginFolder(name: name, path: folder, location: location)
        }
    }

    private static func lastComponent(_ path: String) -> String {
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
    }
}

extension TemplateManifest {
    /// Reads and checks the manifest at `path`; files it names are read from the same folder.
    public static func load(path: String, plugin: String) throws(PopError) -> TemplateManifest {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PopError(.system, "\(path): cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw PopError(.invalidInput, "\(path): not UTF-8 text")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        return try parse(yaml: text, file: path, plugin: plugin, directory: directory)
    }

    /// Parses manifest text; `directory` is the plugin folder holding the files the manifest names.
    public static func parse(
        yaml: String, file: String, plugin: String, directory: URL? = nil
    ) throws(PopError) -> TemplateManifest {
        try ManifestParser(file: file, plugin: plugin, directory: directory).parse(yaml: yaml)
    }
}
