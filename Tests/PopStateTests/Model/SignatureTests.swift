import Foundation
import Testing
@testable import PopState

/// Pins the canonical encoding and signature of a fixed spec: they must be equal on every machine and in every run,
/// so any change here restarts every instance of every service and must be deliberate.
@Suite struct SignatureTests {
    static func fixedSpec() throws -> ServiceSpec {
        let template = ResolvedTemplate(
            name: "web", description: "A small web server.", plugin: "builtin", bases: ["python"],
            options: [
                TemplateOption(name: "port", type: .port, defaultValue: .int(8080), help: "Port to listen on."),
                TemplateOption(name: "debug", type: .bool, defaultValue: .bool(false)),
            ],
            setup: [SetupStep(name: "venv", command: ["python3", "-m", "venv", "env"], creates: "env/bin/python")],
            command: ["env/bin/python", "-m", "http.server", "{port}"],
            environment: ["B": "2", "A": "1/x"],
            health: HealthCheck(kind: .tcp, port: "{port}"),
            tasks: [TemplateTask(name: "packages", command: ["env/bin/pip", "list"])],
            python: PythonEnvironment(packages: ["lxml==5.2.1"]))
        return ServiceSpec(
            name: try ServiceName("web"), template: template,
            options: ["port": .int(8081), "debug": .bool(true), "name": .string("café")])
    }

    static let goldenEncoding = #"{"name":"web","options":{"debug":true,"name":"café","port":8081},"template":{"bases":["python"],"command":["env/bin/python","-m","http.server","{port}"],"description":"A small web server.","environment":{"A":"1/x","B":"2"},"files":[],"health":{"gracePeriodMilliseconds":60000,"intervalMilliseconds":1000,"kind":"tcp","port":"{port}","timeoutMilliseconds":1000},"name":"web","options":[{"default":8080,"help":"Port to listen on.","name":"port","required":false,"secret":false,"type":"port"},{"default":false,"help":"","name":"debug","required":false,"secret":false,"type":"bool"}],"plugin":"builtin","python":{"constraints":[],"packages":["lxml==5.2.1"],"python":"python3"},"setup":[{"command":["python3","-m","venv","env"],"creates":"env/bin/python","environment":{},"name":"venv"}],"stopSignal":"TERM","stopTimeoutMilliseconds":10000,"tasks":[{"command":["env/bin/pip","list"],"description":"","name":"packages","recordsPackages":false}]}}"#
    static let goldenSignature = "0d21ae6165303dd76be3a55cac00e096e3c394ac"

    @Test func canonicalEncodingIsPinned() throws {
        let encoding = String(decoding: try Self.fixedSpec().canonicalEncoding(), as: UTF8.self)
        #expect(encoding == Self.goldenEncoding)
    }

    @Test func signatureIsPinned() throws {
        #expect(try Self.fixedSpec().signature.hex == Self.goldenSignature)
    }

    @Test func equalSpecsHaveEqualSignaturesWhateverTheConstructionOrder() throws {
        var reordered = try Self.fixedSpec()
        reordered.options = ["name": .string("café"), "debug": .bool(true), "port": .int(8081)]
        reordered.template.environment = ["A": "1/x", "B": "2"]
        #expect(reordered.signature == (try Self.fixedSpec()).signature)
        // A spec read back from its stored JSON has the same signature.
        let decoded = try PopJSON.decoder().decode(ServiceSpec.self, from: Data(reordered.canonicalEncoding()))
        #expect(decoded.signature == reordered.signature)
    }

    @Test func anyChangeChangesTheSignature() throws {
        let base = try Self.fixedSpec()
        var changes: [ServiceSpec] = []
        var spec = base
        spec.options["port"] = .int(8082)
        changes.append(spec)
        spec = base
        spec.options["debug"] = .string("true")
        changes.append(spec)
        spec = base
        spec.template.command.append("--bind")
        changes.append(spec)
        spec = base
        spec.template.environment["C"] = "3"
        changes.append(spec)
        spec = base
        spec.template.python?.packages = ["lxml==5.2.2"]
        changes.append(spec)
        spec = base
        spec.name = try ServiceName("web-2")
        changes.append(spec)
        let signatures = Set(changes.map(\.signature) + [base.signature])
        #expect(signatures.count == changes.count + 1)
        #expect(base.signature.hex.count == 40)
    }
}
