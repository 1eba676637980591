import Foundation
import PopState
import TestProcesses
import Testing

@testable import PopTemplates

/// Runs the `python` template's `packages` task, as embedded in the resolved template, against a real virtual
/// environment. No network is needed: the venv's own pip is an installed distribution, and a local project is
/// installed from a folder.
@Suite("packages script", .serialized)
struct PackagesScriptTests {
    @discardableResult
    func run(_ argv: [String], in directory: String) async throws -> (status: Int32, output: String) {
        let result = try await CommandRunner.run(
            argv, environment: ProcessInfo.processInfo.environment, scratch: FileManager.default.temporaryDirectory,
            timeout: .seconds(300), workingDirectory: directory)
        return (result.status, result.output)
    }

    @Test func listsVersionTimeAndSource() async throws {
        let catalog = TemplateCatalog.discover(environment: [:], systemDirectory: "/nonexistent", builtin: .bundled)
        let template = try catalog.resolve(named: "python")
        let instance = try TemporaryFolder()
        for file in template.files {
            try instance.write(file.path, file.contents, executable: file.executable)
        }
        let spec = ServiceSpec(name: try ServiceName("svc"), template: template, options: ["command": .string("x")])
        let values = spec.placeholderValues(machine: try MachineID("m1"), instanceDirectory: instance.path)
        let started = Date().addingTimeInterval(-5)

        for step in template.setup {
            let result = try await run(try Placeholders.expand(step.command, values: values), in: instance.path)
            #expect(result.status == 0, "\(step.name): \(result.output)")
        }
        // A hand-made wheel, so installing a local file needs neither the network nor a build backend.
        try instance.write("make_wheel.py", """
            import base64, hashlib, sys, zipfile
            files = {
                "pop_demo.py": b"",
                "pop_demo-1.2.3.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: pop-demo\\nVersion: 1.2.3\\n",
                "pop_demo-1.2.3.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: pop-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
            }
            record = ""
            for name, data in files.items():
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                record += "%s,sha256=%s,%d\\n" % (name, digest, len(data))
            record += "pop_demo-1.2.3.dist-info/RECORD,,\\n"
            with zipfile.ZipFile(sys.argv[1], "w") as wheel:
                for name, data in files.items():
                    wheel.writestr(name, data)
                wheel.writestr("pop_demo-1.2.3.dist-info/RECORD", record)
            """)
        let wheel = instance.path + "/dist/pop_demo-1.2.3-py3-none-any.whl"
        try FileManager.default.createDirectory(atPath: instance.path + "/dist", withIntermediateDirectories: true)
        let made = try await run(["python3", instance.path + "/make_wheel.py", wheel], in: instance.path)
        #expect(made.status == 0, "\(made.output)")
        let install = try await run(
            [values["python"]!, "-m", "pip", "install", "--no-index", "--quiet", "--", wheel], in: instance.path)
        #expect(install.status == 0, "\(install.output)")

        let task = try #require(template.tasks.first { $0.name == "packages" })
        let json = try await run(try Placeholders.expand(task.command, values: values, arguments: ["--json"]), in: instance.path)
        #expect(json.status == 0, "\(json.output)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        let distributions = try #require(report["distributions"] as? [[String: Any]])
        let byName = Dictionary(distributions.map { (($0["name"] as? String ?? "").lowercased(), $0) }) { first, _ in first }

        let pip = try #require(byName["pip"])
        #expect((pip["version"] as? String)?.isEmpty == false)
        #expect((pip["source"] as? [String: String])?["kind"] == "index")
        let installed = try #require(pip["installed"] as? String)
        let date = try #require(ISO8601DateFormatter().date(from: installed))
        #expect(date >= started.addingTimeInterval(-1) && date <= Date().addingTimeInterval(5))

        let demo = try #require(byName["pop-demo"])
        #expect(demo["version"] as? String == "1.2.3")
        #expect((demo["source"] as? [String: String])?["kind"] == "path")
        #expect((demo["source"] as? [String: String])?["location"] == wheel)

        let table = try await run(try Placeholders.expand(task.command, values: values, arguments: []), in: instance.path)
        #expect(table.status == 0)
        let lines = table.output.split(separator: "\n")
        #expect(lines.first?.hasPrefix("NAME") == true && lines.first?.contains("SOURCE") == true)
        #expect(lines.contains { $0.hasPrefix("pop-demo ") && $0.contains("1.2.3") && $0.hasSuffix(wheel) })

        let missing = try await run(try Placeholders.expand(task.command, values: values, arguments: ["no-such-dist"]), in: instance.path)
        #expect(missing.status == 1)
        #expect(missing.output.contains("not installed: no-such-dist"))
    }
}
