import PopState

/// How a person proves to the dashboard that they hold the namespace's credentials.
public enum DashboardLogin: Sendable, Hashable {
    /// The namespace is protected (`pop init --auth`): the namespace's user and password, checked against the
    /// digest identity of the namespace root's ACL, as ZooKeeper checks them.
    case namespaceCredentials(NamespaceProtection)
    /// The namespace is open (the embedded store, or ZooKeeper without `--auth`): a random token that `pop ui`
    /// prints when it starts, as Jupyter does, so only someone who can read that output gets in.
    case token(String)

    /// The login that fits `protection`: the namespace's credentials when it has them, else a new random token.
    public static func fitting(_ protection: NamespaceProtection) -> DashboardLogin {
        switch protection {
        case .digest: .namespaceCredentials(protection)
        case .open: .token(RandomToken.make())
        }
    }

    /// What the login form asks for: `password` (user and password) or `token`.
    public var kind: String {
        switch self {
        case .namespaceCredentials: "password"
        case .token: "token"
        }
    }

    /// Whether the offered proof is right; the comparison takes the same time wherever it differs.
    func accepts(user: String?, password: String?, token: String?) -> Bool {
        switch self {
        case .namespaceCredentials(let protection):
            guard let user, let password else { return false }
            return protection.accepts(user: user, password: password)
        case .token(let expected):
            guard let token else { return false }
            return ConstantTime.equal(Array(expected.utf8), Array(token.utf8))
        }
    }
}

/// Random tokens from the system's secure generator: 32 characters of a 64-symbol alphabet, 192 bits.
public enum RandomToken {
    /// A new token.
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        return String((0..<32).map { _ in alphabet[Int(generator.next() % 64)] })
    }
}
