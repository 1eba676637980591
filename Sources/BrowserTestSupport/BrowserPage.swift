import Foundation
import Synchronization

/// One page of the browser, driven through its DevTools session: navigate, evaluate, click, screenshot, and every
/// JavaScript error it reports.
public final class BrowserPage: Sendable {
    /// The browser-wide connection.
    public let connection: DevToolsConnection
    /// The page's session id.
    public let session: String
    /// The page's target id.
    public let targetID: String
    private let errors = Mutex<[String]>([])
    private let interrupted = Mutex<[String]>([])
    private let loads = Mutex<(count: Int, waiters: [(Int, CheckedContinuation<Void, Never>)])>((0, []))

    init(connection: DevToolsConnection, session: String, targetID: String) {
        self.connection = connection
        self.session = session
        self.targetID = targetID
    }

    /// Turns on the domains the page's checks use and starts recording JavaScript errors and console errors.
    func start() async throws {
        let session = session
        connection.onEvent { [weak self] event in
            if event.sessionID == session { self?.record(event) }
        }
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            try await send(domain)
        }
    }

    private func record(_ event: DevToolsConnection.Event) {
        switch event.method {
        case "Runtime.exceptionThrown":
            let details = event.params.object("exceptionDetails")
            let text = details?.object("exception")?.string("description") ?? details?.string("text") ?? "exception"
            errors.withLock { $0.append("exception: \(text)") }
        case "Runtime.consoleAPICalled" where event.params.string("type") == "error":
            let arguments = (event.params.fields["args"] as? [[String: Any]] ?? []).map {
                ($0["value"] as? String) ?? ($0["description"] as? String) ?? "?"
            }
            errors.withLock { $0.append("console.error: \(arguments.joined(separator: " "))") }
        case "Log.entryAdded":
            if let entry = event.params.object("entry"), entry.string("level") == "error" {
                let line = "log: \(entry.string("text") ?? "") \(entry.string("url") ?? "")"
                // The host's network changed under a load (other tests add and delete bridges and veths): not the
                // page's fault. What the page does next (retry, reconnect) is what its checks look at.
                if line.contains("net::ERR_NETWORK_CHANGED") {
                    interrupted.withLock { $0.append(line) }
                } else {
                    errors.withLock { $0.append(line) }
                }
            }
        case "Page.loadEventFired":
            let waiters = loads.withLock { loads -> [CheckedContinuation<Void, Never>] in
                loads.count += 1
                let ready = loads.waiters.filter { $0.0 <= loads.count }.map(\.1)
                loads.waiters.removeAll { $0.0 <= loads.count }
                return ready
            }
            for waiter in waiters { waiter.resume() }
        default:
            break
        }
    }

    /// The JavaScript exceptions, `console.error` calls and error log entries (failed loads) seen so far; a load
    /// the browser abandoned because the host's network changed (`net::ERR_NETWORK_CHANGED`) is not one of them.
    public var javaScriptErrors: [String] { errors.withLock { $0 } }

    /// The loads the browser abandoned because the host's network changed.
    public var loadsInterruptedByNetworkChanges: [String] { interrupted.withLock { $0 } }

    /// Sends a command to this page's session.
    @discardableResult
    public func send(_ method: String, _ params: [String: Any] = [:]) async throws -> DevToolsObject {
        try await connection.send(method, params, session: session)
    }

    /// Sets the viewport to `width`×`height` CSS pixels (a phone's when `mobile`).
    public func setViewport(width: Int, height: Int, mobile: Bool) async throws {
        try await send(
            "Emulation.setDeviceMetricsOverride",
            ["width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile])
    }

    /// Loads `url` and returns once its load event has fired.
    public func navigate(_ url: String, timeout: Duration = .seconds(30)) async throws {
        let target = loads.withLock { $0.count + 1 }
        let result = try await send("Page.navigate", ["url": url])
        if let error = result.string("errorText") { throw DevToolsError("loading \(url) failed: \(error)") }
        let arrived = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now = self.loads.withLock { loads -> Bool in
                        if loads.count >= target { return true }
                        loads.waiters.append((target, continuation))
                        return false
                    }
                    if now { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            if !first {
                // Let the waiter go, so the group can finish.
                let stale = self.loads.withLock { loads in
                    defer { loads.waiters.removeAll { $0.0 == target } }
                    return loads.waiters.filter { $0.0 == target }.map(\.1)
                }
                for waiter in stale { waiter.resume() }
            }
            group.cancelAll()
            return first
        }
        guard arrived else { throw DevToolsError("\(url) did not finish loading within \(timeout)") }
    }

    /// Evaluates `expression` in the page (awaiting it when it is a promise) and returns its JSON value.
    @discardableResult
    public func evaluate(_ expression: String) async throws -> Any? {
        let result = try await send(
            "Runtime.evaluate", ["expression": expression, "awaitPromise": true, "returnByValue": true])
        if let exception = result.object("exceptionDetails") {
            let text = exception.object("exception")?.string("description") ?? exception.string("text") ?? "exception"
            throw DevToolsError("evaluating JavaScript failed: \(text)")
        }
        return result.object("result")?.fields["value"]
    }

    /// Waits until `condition` (a JavaScript expression) is true, woken by changes of the page's DOM (a
    /// MutationObserver in the page, no polling), and returns the value of `then` at that moment. Throws when
    /// `timeout` passes first.
    @discardableResult
    public func waitFor(_ condition: String, then result: String = "true", timeout: Duration) async throws -> Any? {
        let milliseconds = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let script = """
            new Promise((resolve, reject) => {
              const check = () => { try { return (\(condition)); } catch (_) { return false; } };
              const finish = (ok) => { observer.disconnect(); clearTimeout(timer);
                ok ? resolve((() => (\(result)))()) : reject(new Error("timed out waiting for: " + \(Self.quote(condition)))); };
              const observer = new MutationObserver(() => { if (check()) finish(true); });
              const timer = setTimeout(() => finish(check()), \(milliseconds));
              observer.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
              if (check()) finish(true);
            })
            """
        return try await evaluate(script)
    }

    /// Clicks the centre of the first element matching `selector` with real mouse events.
    ///
    /// The page may move between finding the element and the press (a live grid re-rendered as figures change, on a
    /// slow machine): the press then lands on whatever is there now. So the page notes what the press landed on, and a
    /// press that missed an element matching `selector` is made again where that element is now, at most three times.
    public func click(_ selector: String) async throws {
        let quoted = Self.quote(selector)
        var missed: [String] = []
        for _ in 1...3 {
            let box = try await evaluate(
                """
                (() => { const e = document.querySelector(\(quoted)); if (!e) return null;
                  e.scrollIntoView({block: "center", inline: "center"}); const r = e.getBoundingClientRect();
                  window.__popPressed = "nothing";
                  document.addEventListener("mousedown", (event) => {
                    const target = event.target instanceof Element ? event.target : null;
                    window.__popPressed = target && target.closest(\(quoted)) ? "" : (target ? target.outerHTML.slice(0, 120) : "nothing");
                  }, { once: true, capture: true });
                  return [r.left + r.width / 2, r.top + r.height / 2]; })()
                """) as? [Double]
            guard let box, box.count == 2 else { throw DevToolsError("no element matches \(selector)") }
            for type in ["mousePressed", "mouseReleased"] {
                try await send(
                    "Input.dispatchMouseEvent",
                    ["type": type, "x": box[0], "y": box[1], "button": "left", "clickCount": 1])
            }
            let pressed = try await evaluate("window.__popPressed") as? String ?? "nothing"
            if pressed.isEmpty { return }
            missed.append(pressed)
        }
        throw DevToolsError("three presses meant for \(selector) landed elsewhere: \(missed)")
    }

    /// Clicks the first element matching `selector` until `condition` holds, and returns the value of `then` then.
    ///
    /// A press that lands on the element is not yet a click: a live grid that draws the element anew between the
    /// press and the release (its figures changed) takes the release on the new element, and the browser fires no
    /// click. So when `condition` does not hold within a few seconds the click is made again, up to three times in
    /// all, the last one waiting the whole `timeout`.
    @discardableResult
    public func click(
        _ selector: String, until condition: String, then result: String = "true", timeout: Duration
    ) async throws -> Any? {
        for _ in 1..<3 {
            try await click(selector)
            do {
                return try await waitFor(condition, then: result, timeout: .seconds(10))
            } catch let error as DevToolsError where error.description.contains("timed out waiting for") {
                continue
            }
        }
        try await click(selector)
        return try await waitFor(condition, then: result, timeout: timeout)
    }

    /// Presses a key (such as `Enter` or `Tab`) in the focused element, as the keyboard would.
    public func press(_ key: String, code: String? = nil, keyCode: Int) async throws {
        for type in ["rawKeyDown", "keyUp"] {
            try await send(
                "Input.dispatchKeyEvent",
                ["type": type, "key": key, "code": code ?? key, "windowsVirtualKeyCode": keyCode])
        }
        if key == "Enter" {
            try await send("Input.dispatchKeyEvent", ["type": "char", "text": "\r"])
        }
    }

    /// Saves a PNG screenshot of the page's viewport to `file`.
    public func screenshot(to file: URL) async throws {
        let result = try await send("Page.captureScreenshot", ["format": "png"])
        guard let base64 = result.string("data"), let data = Data(base64Encoded: base64) else {
            throw DevToolsError("no screenshot data")
        }
        try data.write(to: file)
    }

    /// Closes the page.
    public func close() async throws {
        try await connection.send("Target.closeTarget", ["targetId": targetID])
    }

    /// `text` as a JavaScript string literal.
    public static func quote(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text])) ?? Data("[\"\"]".utf8)
        let array = String(decoding: data, as: UTF8.self)
        return String(array.dropFirst().dropLast())
    }
}
