import PopState
import Testing

@Suite("Placeholders")
struct PlaceholdersTests {
    let values = ["port": "8080", "service": "web", "command": "python3 -m http.server 'a b'"]

    @Test func substitutesInsideElements() throws {
        #expect(try Placeholders.substitute("http://127.0.0.1:{port}/{service}", values: values) == "http://127.0.0.1:8080/web")
        #expect(try Placeholders.expand(["--port={port}", "{service}"], values: values) == ["--port=8080", "web"])
    }

    @Test func doubledBracesAreLiteral() throws {
        #expect(try Placeholders.substitute("{{port}} is {port}}}", values: values) == "{port} is 8080}")
        #expect(try Placeholders.substitute(Placeholders.escape("awk '{print $1}'"), values: [:]) == "awk '{print $1}'")
    }

    @Test func unknownPlaceholderIsNamed() {
        #expect {
            try Placeholders.substitute("--port={prot}", values: values)
        } throws: { error in
            let error = error as! PopError
            return error.code == .invalidInput && error.message.contains("{prot}") && (error.hint ?? "").contains("{port}")
        }
    }

    @Test func malformedTextIsAnError() {
        #expect(throws: PopError.self) { try Placeholders.substitute("{port", values: values) }
        #expect(throws: PopError.self) { try Placeholders.substitute("port}", values: values) }
        #expect(throws: PopError.self) { try Placeholders.substitute("{a b}", values: values) }
        #expect(throws: PopError.self) { try Placeholders.substitute("{}", values: values) }
    }

    @Test func argumentsExpandAsWholeElement() throws {
        let argv = ["pip", "install", "--", "{args}"]
        #expect(try Placeholders.expand(argv, values: [:], arguments: ["lxml==5.3.0", "-e x"]) == ["pip", "install", "--", "lxml==5.3.0", "-e x"])
        #expect(try Placeholders.expand(argv, values: [:], arguments: []) == ["pip", "install", "--"])
        #expect(throws: PopError.self) { try Placeholders.expand(argv, values: [:]) }
        #expect(throws: PopError.self) { try Placeholders.expand(["x{args}"], values: [:], arguments: ["a"]) }
    }

    @Test func wordsExpandAsWholeElement() throws {
        #expect(try Placeholders.expand(["{words:command}"], values: values) == ["python3", "-m", "http.server", "a b"])
        #expect(try Placeholders.expand(["{words:command}"], values: ["command": ""]) == [])
        #expect(throws: PopError.self) { try Placeholders.expand(["x={words:command}"], values: values) }
        #expect(throws: PopError.self) { try Placeholders.substitute("{words:command}", values: values) }
        #expect(throws: PopError.self) { try Placeholders.expand(["{words:command}"], values: ["command": "'open"]) }
    }

    /// A command line given as an option is split into words first, then each word's placeholders are substituted
    /// once: the port reaches a program that takes it as an argument, and no value is ever scanned again.
    @Test func aCommandLineOptionUsesTheOtherOptions() throws {
        let values = ["command": "python3 -m http.server {port} --directory '{dir} x' {{literal}}", "port": "8081", "dir": "/srv"]
        #expect(
            try Placeholders.expand(["{words:command}"], values: values)
                == ["python3", "-m", "http.server", "8081", "--directory", "/srv x", "{literal}"])
        // A value with spaces stays one word; a value holding a placeholder or shell syntax stays literal.
        for hostile in ["a b", "{port}", "{{", "$(id)", "x; rm -rf /", "'"] {
            let argv = try Placeholders.expand(["{words:command}"], values: ["command": "echo {value}", "value": hostile, "port": "1"])
            #expect(argv == ["echo", hostile], "\(hostile)")
        }
        #expect {
            try Placeholders.expand(["{words:command}"], values: ["command": "awk {print}"])
        } throws: { error in
            let error = error as! PopError
            return error.message.contains("{print}") && (error.hint ?? "").contains("'{{'")
        }
        #expect(throws: PopError.self) { try Placeholders.expand(["{words:command}"], values: ["command": "x {args}"]) }
    }

    @Test func hostileValuesStayOneLiteralElement() throws {
        for hostile in ["x; rm -rf /", "$(id)", "`id`", "a && b | c > /tmp/x", "{port}", "'quoted'", "*"] {
            let argv = try Placeholders.expand(["echo", "{value}"], values: ["value": hostile])
            #expect(argv == ["echo", hostile])
        }
    }

    @Test func referencesAreListed() throws {
        #expect(try Placeholders.references(in: "{a}-{b}") == [.value("a"), .value("b")])
        #expect(try Placeholders.references(in: "{args}", wholeElement: true) == [.arguments])
        #expect(try Placeholders.references(in: "{words:x}", wholeElement: true) == [.words("x")])
        #expect(throws: PopError.self) { try Placeholders.references(in: "{args}") }
    }

    @Test func serviceValuesIncludeRuntimeAndEmptyOptionalOptions() throws {
        let template = ResolvedTemplate(
            name: "t", options: [TemplateOption(name: "port", type: .port), TemplateOption(name: "mode", type: .string)],
            command: ["x"], python: PythonEnvironment())
        let spec = ServiceSpec(name: try ServiceName("web"), template: template, options: ["mode": .string("fast")])
        let values = spec.placeholderValues(machine: try MachineID("m1"), instanceDirectory: "/srv/pop/web")
        #expect(values["port"] == "")
        #expect(values["mode"] == "fast")
        #expect(values["service"] == "web")
        #expect(values["machine"] == "m1")
        #expect(values["venv"] == "/srv/pop/web/venv")
        #expect(values["python"] == "/srv/pop/web/venv/bin/python")
    }
}

@Suite("Word splitting")
struct WordSplittingTests {
    @Test(arguments: [
        ("a b  c", ["a", "b", "c"]),
        ("  leading and trailing  ", ["leading", "and", "trailing"]),
        ("'single quoted' \"double quoted\"", ["single quoted", "double quoted"]),
        ("it\\'s", ["it's"]),
        ("\"a \\\"b\\\" \\\\ \\$x \\n\"", ["a \"b\" \\ $x \\n"]),
        ("'' \"\"", ["", ""]),
        ("pre'mid dle'post", ["premid dlepost"]),
        ("x; rm -rf /", ["x;", "rm", "-rf", "/"]),
        ("echo $(id) `id` $HOME *", ["echo", "$(id)", "`id`", "$HOME", "*"]),
        ("'$(id)'", ["$(id)"]),
        ("a\\ b", ["a b"]),
        ("line\\\ncontinued", ["linecontinued"]),
        ("tab\tseparated\nlines", ["tab", "separated", "lines"]),
        ("", []),
    ])
    func splits(line: String, expected: [String]) throws {
        #expect(try Placeholders.splitWords(line) == expected)
    }

    @Test(arguments: ["'open", "\"open", "a 'b c", "trailing\\", "\"esc\\"])
    func rejectsUnterminated(line: String) {
        #expect {
            try Placeholders.splitWords(line)
        } throws: { error in
            let message = (error as! PopError).message
            return message.contains("unterminated") || message.contains("backslash")
        }
    }

    @Test func unterminatedQuoteSaysWhere() {
        #expect {
            try Placeholders.splitWords("run 'x")
        } throws: { error in
            (error as! PopError).message.contains("single quote starting at character 5")
        }
    }
}
