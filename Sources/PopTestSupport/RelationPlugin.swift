import Foundation

/// The plugin the relation tests create: a small Python web application that counts requests in Redis (found
/// through `{requires.db.addresses}`), one variant per policy, and templates for the binding checks.
public enum RelationPlugin {
    /// The application: answers `/` with `COUNT ADDRESSES` after an INCR of its own key in the first Redis that
    /// answers, and `/health` without touching Redis (so losing Redis is a matter for its requirement's policy, not
    /// for its health check).
    public static let application = #"""
        import argparse, http.server, os, socket

        parser = argparse.ArgumentParser()
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--redis", required=True)
        parser.add_argument("--key", required=True)
        arguments = parser.parse_args()
        key = arguments.key.encode()


        def increment():
            problem = "no address"
            for address in filter(None, arguments.redis.split(",")):
                host, _, port = address.rpartition(":")
                try:
                    with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as connection:
                        connection.sendall(b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(key), key))
                        reply = b""
                        while not reply.endswith(b"\r\n"):
                            chunk = connection.recv(64)
                            if not chunk:
                                break
                            reply += chunk
                    if reply.startswith(b":"):
                        return int(reply[1:].strip())
                    problem = repr(reply)
                except OSError as error:
                    problem = str(error)
            raise RuntimeError("no Redis answered at '%s': %s" % (arguments.redis, problem))


        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/health":
                    status, body = 200, "ok"
                else:
                    try:
                        status, body = 200, "%d %s %d" % (increment(), arguments.redis, os.getpid())
                    except Exception as error:
                        status, body = 503, str(error)
                data = (body + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *arguments):
                pass


        http.server.ThreadingHTTPServer(("0.0.0.0", arguments.port), Handler).serve_forever()
        """#

    public static let counter = """
        name: counter
        description: Counts requests in Redis and answers with the count.
        base: python
        remove-options: [command]
        options:
          port:
            type: port
            default: 8000
            help: the HTTP port
        requires:
          db:
            interface: redis
            condition: healthy
            policy: wait
            debounce: 1s
        files: [counter.py]
        command: ["{python}", counter.py, --port, "{port}", --redis, "{requires.db.addresses}", --key, "{service}"]
        health:
          http: "http://127.0.0.1:{port}/health"
          interval: 500ms
          grace-period: 2m

        """

    /// The same application under the other two policies.
    public static func variant(_ policy: String) -> String {
        """
        name: counter-\(policy)
        base: counter
        requires:
          db: {interface: redis, condition: healthy, policy: \(policy), debounce: 1s}

        """
    }

    /// A template that requires anything through its slot `next`, for chains and cycles.
    public static let node = """
        name: node
        requires:
          next: {condition: started}
        command: [/bin/sleep, "100000"]

        """

    /// A template that provides nothing.
    public static let plain = """
        name: plain
        command: [/bin/sleep, "100000"]

        """

    /// Writes the plugin into a new folder under `base`; returns the folder.
    public static func write(under base: URL) throws -> URL {
        let folder = base.appendingPathComponent("plugins/relations")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let files = [
            "counter.py": application, "counter.yaml": counter, "counter-stop.yaml": variant("stop"),
            "counter-restart.yaml": variant("restart"), "node.yaml": node, "plain.yaml": plain,
        ]
        for (name, text) in files {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return folder
    }
}
