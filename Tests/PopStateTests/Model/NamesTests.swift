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
}
