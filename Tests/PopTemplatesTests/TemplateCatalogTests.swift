import Foundation
import PopState
import Testing

@testable import PopTemplates

@Suite("Template catalog")
struct TemplateCatalogTests {
    /// A catalog over temporary folders only: no built-in set, no real home or /etc.
    func catalog(
        pluginPath: [String], home: String? = nil, system: String = "/nonexistent", builtin: TemplateCatalog.BuiltinSet = .none
    ) -> TemplateCatalog {
        var environment = ["POP_PLUGIN_PATH": pluginPath.joined(separator: ":")]
        if let home { environment["HOME"] = home }
        return TemplateCatalog.discover(environment: environment, systemDirectory: system, builtin: builtin)
    }

    @Test func mergesBaseChain() throws {
        let folder = try TemporaryFolder()
        try folder.write("base/base.yaml", """
            name: base
            description: the base
            options:
              port: {type: port, help: base port}
              color: {type: string, default: red}
              gone: {type: int, default: 1}
            setup:
              - name: prepare
                command: [prepare, "{color}"]
              - name: other
                command: [other]
            command: [serve, "{port}"]
            environment: {A: base, B: base}
            stop-timeout: 5s
            tasks:
              hello: {command: [echo, hello]}
              bye: {command: [echo, bye]}
            """)
        try folder.write("base/child.yaml", """
            name: child
            base: base
            remove-options: [gone]
            options:
              port: {type: port, default: 9000}
              size: {type: int, default: 3}
            setup:
              - name: prepare
                command: [prepare-better, "{size}"]
              - name: last
                command: [last]
            environment: {B: child, C: child}
            tasks:
              hello: {command: [echo, hi, "{args}"]}
            """)
        try folder.write("base/grandchild.yaml", "name: grandchild\nbase: child\nstop-signal: INT\n")
        let catalog = catalog(pluginPath: [folder.path])
        #expect(catalog.problems.isEmpty, "\(catalog.problems)")
        let template = try catalog.resolve(named: "grandchild")
        #expect(template.bases == ["child", "base"])
        #expect(template.plugin == "base")
        #expect(template.description == "the base")
        #expect(template.options.map(\.name) == ["port", "color", "size"])
        #expect(template.options[0].defaultValue == .int(9000))
        #expect(template.setup.map(\.name) == ["prepare", "other", "last"])
        #expect(template.setup[0].command == ["prepare-better", "{size}"])
        #expect(template.command == ["serve", "{port}"])
        #expect(template.environment == ["A": "base", "B": "child", "C": "child"])
        #expect(template.stopSignal == .int)
        #expect(template.stopTimeoutMilliseconds == 5000)
        #expect(template.tasks.map(\.name) == ["hello", "bye"])
        #expect(template.tasks[0].command == ["echo", "hi", "{args}"])
    }

    @Test func detectsBaseCycles() throws {
        let folder = try TemporaryFolder()
        try folder.write("loop/a.yaml", "name: a\nbase: b\ncommand: [x]\n")
        try folder.write("loop/b.yaml", "name: b\nbase: c\n")
        try folder.write("loop/c.yaml", "name: c\nbase: a\n")
        try folder.write("loop/fine.yaml", "name: fine\ncommand: [x]\n")
        let catalog = catalog(pluginPath: [folder.path])
        #expect(catalog.entries.map(\.name) == ["fine"])
        #expect(catalog.problems.count == 3)
        #expect(catalog.problems.contains { $0.message.hasSuffix("c.yaml:2: base: the base templates form a cycle: a -> b -> c -> a") })
        #expect {
            try catalog.resolve(named: "a")
        } throws: { error in
            (error as! PopError).message.contains("cycle")
        }
    }

    @Test func unknownBaseSuggestsName() throws {
        let folder = try TemporaryFolder()
        try folder.write("p/a.yaml", "name: a\nbase: pyton\n")
        try folder.write("p/python.yaml", "name: python\ncommand: [x]\n")
        let catalog = catalog(pluginPath: [folder.path])
        #expect(catalog.problems.map(\.message) == ["\(folder.path)/p/a.yaml:2: base: no template named 'pyton' is available; did you mean 'python'?"])
    }

    @Test func placeholdersAreCheckedAtResolution() throws {
        let folder = try TemporaryFolder()
        try folder.write("p/typo.yaml", "name: typo\noptions:\n  port: {type: port}\ncommand: [serve, \"--port={prot}\"]\n")
        try folder.write("p/venv.yaml", "name: venv\ncommand: [\"{venv}/bin/x\"]\n")
        try folder.write("p/args.yaml", "name: args\ncommand: [x, \"{args}\"]\n")
        try folder.write("p/removed.yaml", "name: removed\nbase: typo\nremove-options: [port]\ncommand: [x, \"{port}\"]\n")
        try folder.write("p/health.yaml", "name: health\ncommand: [x]\nhealth:\n  tcp: \"{port}\"\n")
        try folder.write("p/ok.yaml", "name: ok\noptions:\n  port: {type: port}\ncommand: [\"{words:port}\", \"{service}-{machine}\", \"{instance_dir}\"]\nhealth: {tcp: \"{port}\", when: port}\n")
        let catalog = catalog(pluginPath: [folder.path])
        let messages = catalog.problems.map(\.message).sorted()
        #expect(catalog.entries.map(\.name) == ["ok"])
        #expect(messages.contains { $0.hasSuffix("typo.yaml:4: command: argument 2: unknown placeholder '{prot}'; did you mean '{port}'?") })
        #expect(messages.contains { $0.hasSuffix("venv.yaml:2: command: argument 1: '{venv}' exists only for templates with a 'python' section (or a python base)") })
        #expect(messages.contains { $0.hasSuffix("args.yaml:2: command: argument 2: '{args}' is only available in task commands") })
        #expect(messages.contains { $0.hasSuffix("removed.yaml:4: command: argument 2: unknown placeholder '{port}'") })
        #expect(messages.contains { $0.hasSuffix("health.yaml:4: health: tcp: unknown placeholder '{port}'") })
    }

    @Test func brokenManifestDoesNotHideOthers() throws {
        let folder = try TemporaryFolder()
        try folder.write("good/good.yaml", "name: good\ncommand: [x]\n")
        try folder.write("bad/bad.yaml", "name: bad\ncommand: [x]\noptions:\n  port: {type: port, default: 70000}\n")
        try folder.write("bad/notes.txt", "not a manifest")
        let catalog = catalog(pluginPath: [folder.path])
        #expect(catalog.entries.map(\.name) == ["good"])
        #expect(catalog.problems.map(\.message) == ["\(folder.path)/bad/bad.yaml:4: option 'port': default 70000 is outside 1-65535"])
        #expect {
            try catalog.resolve(named: "nope")
        } throws: { error in
            let error = error as! PopError
            return error.code == .notFound && (error.hint ?? "").contains("good")
        }
    }

    @Test func precedenceFollowsDiscoveryOrder() throws {
        let first = try TemporaryFolder()
        let second = try TemporaryFolder()
        let home = try TemporaryFolder()
        let system = try TemporaryFolder()
        // POP_PLUGIN_PATH entry that is itself a plugin folder (holds manifests).
        try first.write("shared.yaml", "name: shared\ndescription: from first\ncommand: [x]\n")
        // POP_PLUGIN_PATH entry that is a folder of plugin folders.
        try second.write("two/shared.yaml", "name: shared\ndescription: from second\ncommand: [x]\n")
        try second.write("two/only-second.yaml", "name: only-second\ncommand: [x]\n")
        try home.write(".config/pop/plugins/mine/user.yaml", "name: user-one\ncommand: [x]\n")
        try home.write(".config/pop/plugins/mine/shared.yaml", "name: shared\ndescription: from home\ncommand: [x]\n")
        try system.write("site/command.yaml", "name: command\ndescription: site command\ncommand: [x]\n")
        try system.write("site/user.yaml", "name: user-one\ndescription: system\ncommand: [x]\n")
        #expect(TemplateCatalog.builtinDirectory() != nil)

        let catalog = catalog(pluginPath: [first.path, second.path], home: home.path, system: system.path, builtin: .bundled)
        #expect(catalog.problems.isEmpty, "\(catalog.problems)")
        let byName = Dictionary(uniqueKeysWithValues: catalog.entries.map { ($0.name, $0) })
        #expect(byName["shared"]?.description == "from first")
        #expect(byName["shared"]?.location == .pluginPath)
        #expect(byName["only-second"]?.plugin == "two")
        #expect(byName["user-one"]?.location == .user)
        #expect(byName["user-one"]?.plugin == "mine")
        #expect(byName["command"]?.description == "site command")
        #expect(byName["command"]?.location == .system)
        #expect(byName["plone"]?.location == .builtin)
        #expect(byName["plone"]?.plugin == "builtin")
        #expect(Set(catalog.shadowed.map { "\($0.name)@\($0.location.rawValue)" }) == ["shared@POP_PLUGIN_PATH", "shared@user", "user-one@system", "command@builtin"])
        #expect(catalog.folders.map(\.location).first == .pluginPath)
        #expect(catalog.folders.map(\.location).last == .builtin)
    }

    @Test func missingPluginPathEntryIsReported() {
        let catalog = catalog(pluginPath: ["/nonexistent/pop-plugins"])
        #expect(catalog.problems.map(\.message) == ["/nonexistent/pop-plugins: named by POP_PLUGIN_PATH, but it is not a folder"])
    }

    @Test func templatesAreSelfContainedAndEncodable() throws {
        let folder = try TemporaryFolder()
        try folder.write("tool/tool.yaml", "name: tool\ncommand: [\"{instance_dir}/bin/run.sh\"]\nfiles: [bin/run.sh]\n")
        try folder.write("tool/bin/run.sh", "#!/bin/sh\necho hi\n", executable: true)
        let template = try catalog(pluginPath: [folder.path]).resolve(named: "tool")
        #expect(template.files == [TemplateFile(path: "bin/run.sh", contents: "#!/bin/sh\necho hi\n", executable: true)])
        let data = try PopJSON.canonicalEncoder().encode(template)
        #expect(try PopJSON.decoder().decode(ResolvedTemplate.self, from: data) == template)
    }
}
