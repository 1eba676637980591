extension StoreCredentials {
    /// The environment variables that carry credentials: the agent removes them from every environment it gives a
    /// service or task, so programs pop runs never see them.
    public static let environmentKeys: Set<String> = ["POP_AUTH"]

    /// The credentials the environment names, or nil when it names none.
    ///
    /// In order: `POP_AUTH` (`user:password`); the file `POP_AUTH_FILE` names, which must exist; the default
    /// credentials file (`$XDG_CONFIG_HOME/pop/credentials`, else `~/.config/pop/credentials`) when it exists.
    /// Every file must be private to its owner (mode 600), or it is refused.
    public static func fromEnvironment(_ environment: [String: String]) throws(PopError) -> StoreCredentials? {
        if let pair = environment["POP_AUTH"], !pair.isEmpty {
            return try StoreCredentials(parsing: pair, source: "POP_AUTH")
        }
        if let path = environment["POP_AUTH_FILE"], !path.isEmpty {
            guard path.hasPrefix("/") else {
                throw PopError(
                    .invalidInput, "POP_AUTH_FILE must be an absolute path (got \(NameRules.printable(path))).")
            }
            let file = CredentialsFile(path: path)
            guard file.exists else {
                throw PopError(
                    .notFound, "The credentials file \(path) named by POP_AUTH_FILE does not exist.",
                    hint: "Create it with one line user:password and mode 600, or unset POP_AUTH_FILE.", path: path)
            }
            return try file.read()
        }
        if let path = CredentialsFile.defaultPath(environment: environment) {
            let file = CredentialsFile(path: path)
            if file.exists { return try file.read() }
        }
        return nil
    }

    /// Where `pop init --save-credentials` writes: `POP_AUTH_FILE`, else the default credentials file.
    public static func saveLocation(environment: [String: String]) throws(PopError) -> CredentialsFile {
        if let path = environment["POP_AUTH_FILE"], !path.isEmpty {
            guard path.hasPrefix("/") else {
                throw PopError(
                    .invalidInput, "POP_AUTH_FILE must be an absolute path (got \(NameRules.printable(path))).")
            }
            return CredentialsFile(path: path)
        }
        guard let path = CredentialsFile.defaultPath(environment: environment) else {
            throw PopError(
                .invalidInput, "Cannot choose where to save the credentials: neither POP_AUTH_FILE, XDG_CONFIG_HOME nor HOME is set.")
        }
        return CredentialsFile(path: path)
    }

    /// `environment` without the variables that carry credentials.
    public static func removingSecrets(from environment: [String: String]) -> [String: String] {
        environment.filter { !environmentKeys.contains($0.key) }
    }
}
