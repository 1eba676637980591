import Synchronization

/// Where the dashboard listens, known once the server has bound its socket (the port may be chosen by the system).
final class ListenAddress: Sendable {
    /// The host it binds, as given to `--listen`.
    let host: String
    private let boundPort: Mutex<Int>

    init(host: String, port: Int) {
        self.host = host
        boundPort = Mutex(port)
    }

    /// The port, the bound one once the server runs.
    var port: Int {
        get { boundPort.withLock { $0 } }
        set { boundPort.withLock { $0 = newValue } }
    }

    /// The `Host` and `Origin` rules for this address.
    var origin: RequestOrigin { RequestOrigin(listenHost: host, port: port) }

    /// The session cookie's name. Browsers keep cookies per host, not per port, so each dashboard on a host names
    /// its own.
    var cookieName: String { "pop_ui_\(port)" }

    /// The address for people: `http://127.0.0.1:8765`.
    var url: String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(port)"
    }
}
