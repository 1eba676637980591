import ZooKeeperNIO

/// The digest credentials (`user:password`) pop authenticates with to a protected ZooKeeper namespace.
///
/// The password never appears in a description, an error message or a log line: ``description`` names only the user
/// and where the credentials came from.
public struct StoreCredentials: Hashable, Sendable, CustomStringConvertible {
    /// The digest user name.
    public let user: String
    /// The password.
    public let password: String
    /// Where the credentials came from, such as `POP_AUTH` or a file's path (for messages).
    public let source: String

    /// Creates credentials after checking the user name and password.
    public init(user: String, password: String, source: String) throws(PopError) {
        try Self.validate(user: user, source: source)
        guard !password.isEmpty else {
            throw PopError(.invalidInput, "The credentials from \(source) have an empty password.", hint: Self.formHint)
        }
        guard !password.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw PopError(
                .invalidInput, "The password from \(source) contains a control character.", hint: Self.formHint)
        }
        self.user = user
        self.password = password
        self.source = source
    }

    /// Parses `user:password` (the password may itself contain `:`). The text is never echoed in an error.
    public init(parsing text: String, source: String) throws(PopError) {
        guard let colon = text.firstIndex(of: ":") else {
            throw PopError(.invalidInput, "The credentials from \(source) are not of the form user:password.", hint: Self.formHint)
        }
        try self.init(
            user: String(text[..<colon]), password: String(text[text.index(after: colon)...]), source: source)
    }

    /// New credentials for `user` with a random 32-character password from the system's secure generator.
    public static func generate(user: String, source: String) throws(PopError) -> StoreCredentials {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        // 64 symbols, so each character carries 6 bits and none is favoured: 192 bits in all.
        let password = String((0..<32).map { _ in alphabet[Int(generator.next() % 64)] })
        return try StoreCredentials(user: user, password: password, source: source)
    }

    /// Checks a digest user name: printable, no `:` (ZooKeeper splits at the first one), no spaces, at most 64 bytes.
    public static func validate(user: String, source: String) throws(PopError) {
        guard !user.isEmpty else {
            throw PopError(.invalidInput, "The credentials from \(source) have an empty user name.", hint: formHint)
        }
        guard user.utf8.count <= 64,
            !user.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f || $0 == ":" })
        else {
            throw PopError(
                .invalidInput,
                "The user name \(NameRules.printable(user)) from \(source) is not valid: use up to 64 characters without spaces, control characters or ':'.",
                hint: formHint)
        }
    }

    /// `user:password`, the form POP_AUTH and credentials files hold.
    public var pair: String { user + ":" + password }

    /// The ZooKeeper digest identity these credentials authenticate as: `user:base64(sha1(user:password))`.
    public var digestID: String { ZooKeeperACL.digest(user: user, password: password) }

    /// The ACL pop gives every node it creates with these credentials: all rights to this digest identity, none to
    /// anyone else.
    public var acl: [ZooKeeperACL] { ZooKeeperACL.digestAll(user: user, password: password) }

    public var description: String { "user '\(user)' (from \(source))" }

    static let formHint =
        "Give credentials as user:password in POP_AUTH, or as one line user:password in a credentials file of mode 600."
}
