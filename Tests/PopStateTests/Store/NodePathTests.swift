import Testing
@testable import PopState

/// The path rules every store applies (``NodePath/validate(_:)``), each broken alone and in combination.
struct NodePathTests {
    @Test(arguments: [
        "/", "/a", "/pop/services/web", "/a/b.c", "/a/...", "/..a", "/a./b", "/.x/y", "/é/ü", "/a/b c", "/-/_",
    ])
    func validPathsPass(_ path: String) throws {
        #expect(NodePath.problem(path) == nil)
        try NodePath.validate(path)
    }

    @Test(arguments: [
        ("", "must start with '/'"),
        ("relative", "must start with '/'"),
        ("a/b", "must start with '/'"),
        ("/trailing/", "must not end with '/'"),
        ("//", "must not end with '/'"),
        ("/a/\u{1}", "contains a control character"),
        ("/a\u{7f}", "contains a control character"),
        ("/a\nb", "contains a control character"),
        ("/a\u{0}b", "contains a control character"),
        ("/a//b", "contains an empty component ('//')"),
        ("//a", "contains an empty component ('//')"),
        ("/.", "contains '.' or '..'"),
        ("/..", "contains '.' or '..'"),
        ("/a/../b", "contains '.' or '..'"),
        ("/a/./b", "contains '.' or '..'"),
        ("/a/..", "contains '.' or '..'"),
        // Several rules broken: the first in the order the rules are stated.
        ("/a//\u{1}", "contains a control character"),
        ("/a/..//b", "contains an empty component ('//')"),
        ("/a\u{1}/", "must not end with '/'"),
    ])
    func invalidPathsNameTheirProblem(_ path: String, _ problem: String) {
        #expect(NodePath.problem(path) == problem, "path \(path.debugDescription)")
        #expect {
            try NodePath.validate(path)
        } throws: { error in
            guard let error = error as? PopError else { return false }
            return error.code == .invalidInput && error.message.contains(problem)
        }
    }
}
