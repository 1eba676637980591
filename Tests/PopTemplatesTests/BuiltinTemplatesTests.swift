import Foundation
import PopState
import Testing

@testable import PopTemplates

@Suite("Built-in templates")
struct BuiltinTemplatesTests {
    let catalog = TemplateCatalog.discover(
        environment: [:], systemDirectory: "/nonexistent", builtin: .bundled)

    @Test func everyBuiltinResolves() throws {
        #expect(catalog.problems.isEmpty, "\(catalog.problems)")
        #expect(catalog.entries.map(\.name) == ["command", "plone", "plone4", "python", "redis"])
        for entry in catalog.entries {
            let template = try catalog.resolve(named: entry.name)
            #expect(!template.description.isEmpty)
            #expect(entry.plugin == "builtin")
        }
    }

    @Test func commandSplitsTheCommandLineWithoutAShell() throws {
        let template = try catalog.resolve(named: "command")
        let options = try OptionResolver(template: template).resolve([("command", "python3 -m http.server 'a b' ; $(id)")])
        let spec = ServiceSpec(name: try ServiceName("web"), template: template, options: options)
        let values = spec.placeholderValues(machine: try MachineID("m1"), instanceDirectory: "/srv/web")
        #expect(try Placeholders.expand(template.command, values: values) == ["python3", "-m", "http.server", "a b", ";", "$(id)"])
        #expect(template.health?.applies(to: options) == false)
        let withPort = try OptionResolver(template: template).resolve([("command", "x"), ("port", "8000")])
        #expect(template.health?.applies(to: withPort) == true)
        #expect(try Placeholders.substitute(template.health?.port ?? "", values: ["port": "8000"]) == "8000")
    }

    @Test func pythonHasEnvironmentTasksAndScript() throws {
        let template = try catalog.resolve(named: "python")
        #expect(template.python?.python == "python3")
        #expect(template.setup.map(\.name) == ["venv"])
        #expect(template.setup[0].command == ["python3", "-m", "venv", "{venv}"])
        let install = try #require(template.tasks.first { $0.name == "install" })
        #expect(install.recordsPackages)
        let argv = try Placeholders.expand(
            install.command, values: ["python": "/i/venv/bin/python", "instance_dir": "/i"],
            arguments: ["lxml==5.3.0", "--index-url=http://evil"])
        #expect(argv == ["/i/venv/bin/python", "-m", "pip", "install", "--constraint", "/i/constraints.txt", "--", "lxml==5.3.0", "--index-url=http://evil"])
        #expect(template.tasks.first { $0.name == "packages" }?.recordsPackages == false)
        #expect(template.files.contains { $0.path == "scripts/packages.py" && $0.contents.contains("direct_url.json") })
        #expect(template.files.contains { $0.path == "constraints.txt" })
    }

    @Test func ploneIsPinnedAndSelfContained() throws {
        let template = try catalog.resolve(named: "plone")
        #expect(template.bases == ["python"])
        #expect(template.options.map(\.name) == ["port", "address", "admin-user", "admin-password"])
        #expect(template.options.first { $0.name == "port" }?.defaultValue == .int(8080))
        #expect(template.options.first { $0.name == "admin-password" }?.secret == true)
        let python = try #require(template.python)
        #expect(python.packages == ["setuptools", "Products.CMFPlone", "Zope[wsgi]"])
        #expect(python.constraints.contains("Products.CMFPlone==6.1.0"))
        #expect(python.constraints.contains("Zope==5.13"))
        #expect(python.constraints.allSatisfy { $0.contains("==") })
        #expect(template.setup.map(\.name) == ["venv", "pip", "instance"])
        #expect(template.setup[1].command.suffix(4) == ["--", "setuptools", "Products.CMFPlone", "Zope[wsgi]"])
        // The password reaches the setup script through its environment, never argv.
        #expect(template.setup[2].environment == ["POP_ADMIN_PASSWORD": "{admin-password}"])
        #expect(!template.setup.flatMap(\.command).contains { $0.contains("password") })
        #expect(template.files.contains { $0.path == "scripts/plone_instance.py" })
        #expect(template.files.first { $0.path == "constraints.txt" }?.contents.contains("Products.CMFPlone==6.1.0\n") == true)
        #expect(template.health?.kind == .http)
        #expect(template.health?.url == "http://127.0.0.1:{port}/")
        #expect(template.tasks.map(\.name) == ["install", "packages"])
        let options = try OptionResolver(template: template).resolve([])
        #expect(options["port"] == .int(8080))
        #expect(template.health?.applies(to: options) == true)
    }

    @Test func plone4SaysItInstallsCurrentPlone() throws {
        let plone4 = try catalog.resolve(named: "plone4")
        let plone = try catalog.resolve(named: "plone")
        #expect(plone4.description.contains("Python 2.7"))
        #expect(plone4.bases == ["plone", "python"])
        #expect(plone4.command == plone.command)
        #expect(plone4.options == plone.options)
        #expect(plone4.python == plone.python)
        #expect(plone4.setup == plone.setup)
    }
}
