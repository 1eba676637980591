/// pop's home folder and the paths under it.
///
/// `POP_HOME` when set, else `$XDG_STATE_HOME/pop`, else `~/.local/state/pop`. It holds the embedded store
/// (`store.sqlite`) and one folder per machine id for that machine's agent: `machines/<id>/agent.pid` and the
/// instance folders `machines/<id>/instances/<service>/`.
public struct PopHome: Hashable, Sendable {
    /// The home folder.
    public let path: String

    /// The home folder at `path`.
    public init(path: String) {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.path = trimmed
    }

    /// The home folder chosen by `environment` (normally the process environment).
    public init(environment: [String: String]) throws(PopError) {
        if let home = environment["POP_HOME"], !home.isEmpty {
            guard home.hasPrefix("/") else {
                throw PopError(.invalidInput, "POP_HOME must be an absolute path (got \(NameRules.printable(home))).")
            }
            self.init(path: home)
        } else if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            self.init(path: state + "/pop")
        } else if let user = environment["HOME"], user.hasPrefix("/") {
            self.init(path: user + "/.local/state/pop")
        } else {
            throw PopError(
                .invalidInput, "Cannot choose pop's home folder: neither POP_HOME, XDG_STATE_HOME nor HOME is set.",
                hint: "Set POP_HOME to a folder for pop's state.")
        }
    }

    /// The folder holding the embedded store.
    public var storeFolder: String { path }
    /// The embedded store's database file.
    public var storeFile: String { path + "/" + EmbeddedStore.databaseName }
    /// The folder of the agent for `machine`.
    public func machineFolder(_ machine: MachineID) -> String { path + "/machines/" + machine.rawValue }
    /// The pid file of the agent for `machine`.
    public func agentPIDFile(_ machine: MachineID) -> String { machineFolder(machine) + "/agent.pid" }
    /// The folder holding `machine`'s instance folders.
    public func instancesFolder(_ machine: MachineID) -> String { machineFolder(machine) + "/instances" }
    /// The folder of `machine`'s instance of `service`.
    public func instanceFolder(_ machine: MachineID, _ service: ServiceName) -> String {
        instancesFolder(machine) + "/" + service.rawValue
    }

    /// Creates `folder` (and its parents) private to this user, refusing one that others can write.
    public func ensurePrivateFolder(_ folder: String) throws(PopError) {
        try PrivateFiles.ensureFolder(folder)
    }
}
