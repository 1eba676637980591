import Testing

@testable import ZooKeeperNIO

@Suite("Path rules")
struct ZooKeeperPathTests {
    static func isValid(_ path: String, sequential: Bool = false) -> Bool {
        do {
            try ZooKeeperPath.validate(path, sequential: sequential)
            return true
        } catch {
            #expect(error.code == .invalidPath)
            return false
        }
    }

    @Test func validPaths() {
        for path in ["/", "/a", "/a/b", "/a.b", "/.a", "/a.", "/...", "/a/..b", "/x-1/y_2/z 3", "/ü/日本", "/a\u{1f}b"] {
            #expect(Self.isValid(path), "\(path)")
        }
        #expect(Self.isValid("/queue/item-", sequential: true))
        #expect(Self.isValid("/queue/", sequential: true))
    }

    @Test func invalidPaths() {
        for path in ["", "a", "a/b", "//", "/a/", "/a//b", "/.", "/..", "/a/.", "/a/..", "/./a", "/../a", "/a/./b", "/a\u{0}b", "/a\u{1}b", "/a\u{7f}b", "/a\u{9f}b", "/a\u{fff0}b"] {
            #expect(!Self.isValid(path), "\(path.debugDescription)")
        }
        #expect(!Self.isValid("/queue/", sequential: false))
    }
}
