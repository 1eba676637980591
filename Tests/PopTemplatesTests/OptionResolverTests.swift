import PopState
import PopTemplates
import Testing

@Suite("Option values")
struct OptionResolverTests {
    let resolver = OptionResolver(
        options: [
            TemplateOption(name: "port", type: .port, defaultValue: .int(8080), help: "HTTP port"),
            TemplateOption(name: "workers", type: .int, defaultValue: .int(2), minimum: 1, maximum: 16),
            TemplateOption(name: "debug", type: .bool, defaultValue: .bool(false)),
            TemplateOption(name: "mode", type: .enum, defaultValue: .string("fast"), choices: ["fast", "safe"]),
            TemplateOption(name: "command", type: .string, help: "what to run", required: true),
            TemplateOption(name: "label", type: .string),
        ], templateName: "web")

    func message(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as PopError {
            #expect(error.code == .invalidInput)
            return error.message + " | " + (error.hint ?? "")
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func fillsDefaultsAndParsesTypes() throws {
        let values = try resolver.resolve([
            ("command", "x; rm -rf /"), ("port", "9000"), ("debug", "yes"), ("mode", "safe"), ("workers", "16"),
        ])
        #expect(
            values == [
                "command": .string("x; rm -rf /"), "port": .int(9000), "debug": .bool(true), "mode": .string("safe"),
                "workers": .int(16),
            ])
        #expect(values["label"] == nil)
    }

    @Test func acceptsDashedNames() throws {
        #expect(try resolver.resolve([("--command", "x"), ("--port", "1")])["port"] == .int(1))
    }

    @Test func wrongTypeSaysWhatWasExpected() {
        #expect(message { _ = try resolver.resolve([("command", "x"), ("port", "abc")]) }?.hasPrefix("--port expects a port number 1-65535, got 'abc'.") == true)
        #expect(message { _ = try resolver.resolve([("command", "x"), ("port", "70000")]) }?.hasPrefix("--port expects a port number 1-65535, got '70000'.") == true)
        #expect(message { _ = try resolver.resolve([("command", "x"), ("port", "0")]) } != nil)
        #expect(message { _ = try resolver.resolve([("command", "x"), ("workers", "many")]) }?.hasPrefix("--workers expects a whole number, got 'many'.") == true)
        #expect(message { _ = try resolver.resolve([("command", "x"), ("debug", "maybe")]) }?.hasPrefix("--debug expects true or false, got 'maybe'.") == true)
    }

    @Test func outOfRangeNamesTheRange() {
        #expect(message { _ = try resolver.resolve([("command", "x"), ("workers", "0")]) }?.hasPrefix("--workers must be 1-16, got '0'.") == true)
        #expect(message { _ = try resolver.resolve([("command", "x"), ("workers", "17")]) }?.hasPrefix("--workers must be 1-16, got '17'.") == true)
    }

    @Test func choicesAreListed() {
        let text = message { _ = try resolver.resolve([("command", "x"), ("mode", "quick")]) }
        #expect(text?.hasPrefix("--mode must be one of: fast, safe; got 'quick'.") == true)
    }

    @Test func unknownOptionListsTheValidOnes() {
        let text = message { _ = try resolver.resolve([("command", "x"), ("prot", "1")]) } ?? ""
        #expect(text.contains("has no option --prot"))
        #expect(text.contains("Did you mean --port?"))
        #expect(text.contains("--port, --workers, --debug, --mode, --command, --label"))
    }

    @Test func missingRequiredIsNamed() {
        let text = message { _ = try resolver.resolve([("port", "1")]) } ?? ""
        #expect(text.contains("needs --command (what to run)"))
    }

    @Test func repeatedOptionIsRefused() {
        #expect(message { _ = try resolver.resolve([("command", "x"), ("port", "1"), ("port", "2")]) }?.contains("more than once") == true)
    }

    @Test func configStartsFromCurrentValues() throws {
        let current: [String: OptionValue] = ["command": .string("run"), "port": .int(9000), "mode": .string("safe"), "gone": .int(1)]
        let updated = try resolver.update(current, with: [("port", "9001")])
        #expect(updated["port"] == .int(9001))
        #expect(updated["command"] == .string("run"))
        #expect(updated["mode"] == .string("safe"))
        #expect(updated["workers"] == .int(2))
        #expect(updated["gone"] == nil)
        #expect(message { _ = try resolver.update(current, with: [("port", "x")]) } != nil)
    }

    @Test func secretsAreMasked() {
        let option = TemplateOption(name: "admin-password", type: .string, secret: true)
        #expect(option.displayValue(.string("hunter2")) == "********")
        #expect(option.displayValue(.string("")) == "")
        #expect(TemplateOption(name: "p", type: .port).displayValue(.int(80)) == "80")
    }
}
