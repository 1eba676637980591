import Foundation
import PopState
import Testing

@testable import PopTemplates

/// `requires`, `provides` and `shared` in manifests, relation data placeholders, and the built-in `redis` template.
@Suite("Requirements in templates")
struct RequirementTemplateTests {
    func catalog(_ folder: TemporaryFolder, builtin: TemplateCatalog.BuiltinSet = .none) -> TemplateCatalog {
        TemplateCatalog.discover(
            environment: ["POP_PLUGIN_PATH": folder.path], systemDirectory: "/nonexistent", builtin: builtin)
    }

    @Test func requirementsAreParsedAndMergedBySlot() throws {
        let folder = try TemporaryFolder()
        try folder.write("p/web.yaml", """
            name: web
            requires:
              db:
                interface: redis
                condition: started
                policy: restart
                debounce: 2s
              cache: {}
            provides: [http]
            command: [serve, "{requires.db.addresses}", "{requires.cache.port}"]
            """)
        try folder.write("p/strict.yaml", """
            name: strict
            base: web
            requires:
              db: {interface: redis, policy: stop}
            command: [serve, "{requires.db.addresses}"]
            """)
        let catalog = catalog(folder)
        #expect(catalog.problems.isEmpty, "\(catalog.problems)")
        let web = try catalog.resolve(named: "web")
        #expect(
            web.requires == [
                "db": TemplateRequirement(interface: "redis", condition: .started, policy: .restart, debounceMilliseconds: 2000),
                "cache": TemplateRequirement(),
            ])
        #expect(web.provides == ["http"])
        let strict = try catalog.resolve(named: "strict")
        #expect(strict.requires?["db"] == TemplateRequirement(interface: "redis", condition: .healthy, policy: .stop))
        #expect(strict.requires?["cache"] == TemplateRequirement())
        #expect(strict.relationReferences == [RelationReference("requires.db.addresses")!])
    }

    @Test func badRequirementsAreNamedWithTheirLine() throws {
        let folder = try TemporaryFolder()
        try folder.write("p/cond.yaml", "name: cond\nrequires:\n  db: {condition: ready}\ncommand: [x]\n")
        try folder.write("p/policy.yaml", "name: policy\nrequires:\n  db: {policy: sometimes}\ncommand: [x]\n")
        try folder.write("p/field.yaml", "name: field\nrequires:\n  db: {interfce: redis}\ncommand: [x]\n")
        try folder.write("p/slot.yaml", "name: slot\ncommand: [x, \"{requires.dbx.addresses}\"]\nrequires:\n  db: {}\n")
        try folder.write("p/form.yaml", "name: form\ncommand: [x, \"{requires.db}\"]\nrequires:\n  db: {}\n")
        let messages = catalog(folder).problems.map(\.message)
        #expect(messages.contains { $0.contains("cond.yaml:3: requirement 'db': unknown condition 'ready'; use one of started, healthy") }, "\(messages)")
        #expect(messages.contains { $0.contains("policy.yaml:3: requirement 'db': unknown policy 'sometimes'; use one of wait, stop, restart") }, "\(messages)")
        #expect(messages.contains { $0.contains("field.yaml:3: requirement 'db': unknown field 'interfce'; did you mean 'interface'?") }, "\(messages)")
        #expect(messages.contains { $0.contains("slot.yaml:2: command: argument 2: '{requires.dbx.addresses}' is not relation data of this template") }, "\(messages)")
        #expect(messages.contains { $0.contains("form.yaml:2: command: argument 2: '{requires.db}' is not relation data") }, "\(messages)")
    }

    @Test func aTemplateWithoutRequirementsKeepsItsEncoding() throws {
        // Specs stored before requirements existed must keep their signature: nothing new is encoded for them.
        let template = ResolvedTemplate(
            name: "plain", options: [TemplateOption(name: "port", type: .port, defaultValue: .int(1))], command: ["x"])
        let spec = ServiceSpec(name: try ServiceName("plain"), template: template, options: ["port": .int(1)])
        let text = String(decoding: spec.canonicalEncoding(), as: UTF8.self)
        #expect(!text.contains("requires") && !text.contains("provides") && !text.contains("shared"), "\(text)")
    }

    @Test func redisIsBuiltInAndProvidesRedis() throws {
        let folder = try TemporaryFolder()
        let catalog = catalog(folder, builtin: .bundled)
        let redis = try catalog.resolve(named: "redis")
        #expect(redis.provides == ["redis"])
        #expect(redis.options.first { $0.name == "port" }?.shared == true)
        let options = try OptionResolver(template: redis).resolve([("port", "6380")])
        let spec = ServiceSpec(name: try ServiceName("cache"), template: redis, options: options)
        let values = spec.placeholderValues(machine: try MachineID("m1"), instanceDirectory: "/srv/cache")
        let argv = try Placeholders.expand(redis.command, values: values)
        #expect(argv.first == "/usr/bin/redis-server")
        #expect(argv.contains("6380") && argv.contains("/srv/cache") && argv.contains("--daemonize"))
        #expect(redis.health?.port == "{port}")
    }
}
