import Testing
@testable import PopState

@Suite struct NamesTests {
    @Test(arguments: ["plone", "web-2", "a", String(repeating: "a", count: 63)])
    func acceptsValidServiceNames(_ name: String) throws {
        #expect(try ServiceName(name).rawValue == name)
    }

    @Test(arguments: ["", "../x", "a/b", "Plone", "2web", "-x", "a_b", "a.b", "wéb", "a\u{7}b", String(repeating: "a", count: 64)])
    func refusesInvalidServiceNames(_ name: String) {
        #expect(throws: PopError.self) { try ServiceName(name) }
    }

    @Test func refusalNamesTheProblem() {
        do {
            _ = try ServiceName("a/b")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidInput)
            #expect(error.message.contains("'a/b'"))
        }
    }

    @Test(arguments: ["0123456789abcdef0123456789abcdef", "4C4C4544-0042-3510-8048-B4C04F4E4E32", "node-1"])
    func acceptsMachineIDs(_ id: String) throws {
        #expect(try MachineID(id).rawValue == id)
    }

    @Test(arguments: ["", "..", "a/b", "-a", "a b", "a\nb"])
    func refusesBadMachineIDs(_ id: String) {
        #expect(throws: PopError.self) { try MachineID(id) }
    }

    /// The one-pass check accepts exactly the names the rule-by-rule check accepts: every name of up to three
    /// characters from an alphabet that holds each kind of character the rules treat apart, for both kinds of name.
    @Test(arguments: [(63, false, false), (128, true, true), (2, false, false), (3, true, true)])
    func onePassCheckAgreesWithTheRules(_ maxLength: Int, _ allowUpper: Bool, _ allowDotUnderscore: Bool) {
        let alphabet = ["a", "z", "0", "9", "-", "A", "Z", ".", "_", "/", " ", "\u{7}", "\u{7f}", "é", "`", "{", "@", "[", ":"]
        var names = [""]
        var frontier = [""]
        for _ in 1...3 {
            frontier = frontier.flatMap { prefix in alphabet.map { prefix + $0 } }
            names += frontier
        }
        var accepted = 0
        for name in names {
            let fast = NameRules.isValid(
                name, maxLength: maxLength, allowUpper: allowUpper, allowDotUnderscore: allowDotUnderscore)
            let rules = (try? NameRules.check(
                name, kind: "name", maxLength: maxLength, allowUpper: allowUpper, allowDotUnderscore: allowDotUnderscore)) != nil
            #expect(fast == rules, "\(name.debugDescription): one pass \(fast), rules \(rules)")
            if fast { accepted += 1 }
        }
        // Both outcomes occur, so agreeing is not trivial.
        #expect(accepted > 10 && accepted < names.count - 10)
    }
}
