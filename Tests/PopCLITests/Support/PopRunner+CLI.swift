import Foundation
import PopState
import PopTestSupport

#if canImport(Glibc)
import Glibc
import TestProcesses
#endif

extension PopRunner {
    /// Opens a store handle of the test's own on the store this runner's commands use (or the one `host` names), as
    /// an agent or a damaged store would write to it.
    func openStore(host: String? = nil) async throws -> any CoordinationStore {
        let configuration = try StoreConfiguration(
            host: host, prefix: nil, environment: processEnvironment(), home: PopHome(path: home.path))
        switch configuration.kind {
        case .embedded(let folder):
            return try await EmbeddedStore.open(folder: folder, options: .init(logger: quietLogger))
        case .zooKeeper(let servers, let chroot):
            // The test's own observer: a server just restarted on a loaded machine may take longer than a command's
            // connect timeout to grant a session, and that is not what any test here is about.
            return try await ZooKeeperStore.open(servers: servers, chroot: chroot, connectTimeout: .seconds(60), logger: quietLogger)
        }
    }

    /// Runs `body` with a namespace at `prefix` on this runner's store (or the one `host` names), closing its session
    /// before returning.
    func withNamespace<T>(
        host: String? = nil, prefix: String = "/pop", _ body: (PopNamespace) async throws -> T
    ) async throws -> T {
        let store = try await openStore(host: host)
        do {
            let result = try await body(try PopNamespace(store: store, prefix: prefix))
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }

    /// Runs `body`, then stops this runner's agent and instances and removes its folder, whether `body` threw or not.
    func withAgentStoppedAfterwards<T>(_ body: () async throws -> T) async throws -> T {
        do {
            let result = try await body()
            await tearDown()
            return result
        } catch {
            await tearDown()
            throw error
        }
    }

    /// Stops the agent and kills every instance's process group that is left, waiting until they are gone.
    func tearDown() async {
        _ = try? await run(["stop"])
        var left: [Int32] = []
        if let agent = agentPID() {
            kill(agent, SIGKILL)
            left.append(agent)
        }
        for pid in instancePIDs() {
            kill(-pid, SIGKILL)
            left.append(pid)
        }
        _ = await Processes.waitForExit(left, timeout: .seconds(30))
        removeFolder()
    }

    /// The pid in this machine's agent pid file, if an agent is running.
    func agentPID() -> Int32? {
        guard let machine,
            let text = try? String(contentsOfFile: home.path + "/machines/\(machine)/agent.pid", encoding: .utf8),
            let pid = Int32(text.split(separator: "\n").first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "")
        else { return nil }
        return Processes.isAlive(pid) ? pid : nil
    }

    /// Every live process named by a local instance record on this machine (its pid and start time both match: a
    /// pid reused by another process since is left alone).
    func instancePIDs() -> [Int32] {
        guard let machine else { return [] }
        let folder = home.path + "/machines/\(machine)/instances"
        let services = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return services.compactMap { service in
            let stateFolder = folder + "/\(service)/.pop"
            for file in (try? FileManager.default.contentsOfDirectory(atPath: stateFolder)) ?? [] {
                guard let data = FileManager.default.contents(atPath: stateFolder + "/" + file),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let pid = (object["pid"] as? Int).map(Int32.init),
                    let started = object["processStartTime"] as? Int,
                    Processes.startTime(pid) == UInt64(started)
                else { continue }
                return pid
            }
            return nil
        }
    }
}

extension PopNamespace {
    /// Waits (on the store's watches, not polling) until the first instance of `service` satisfies `condition`, as
    /// `pop status --json` would show it; fails after `seconds`.
    func waitFor(
        _ service: String, within seconds: Double = 30, _ condition: @escaping @Sendable (StatusReport.Instance) -> Bool
    ) async throws -> StatusReport.Instance {
        let name = try ServiceName(service)
        let found = try await read(
            { StatusReport(snapshot: try await self.status(), only: name).service(service)?.instances.first },
            until: { $0.map(condition) ?? false }, wokenByChangesUnder: prefix,
            deadline: .now + .milliseconds(Int(seconds * 1000)))
        guard let instance = found ?? nil else {
            let last = try? await StatusReport(snapshot: status(), only: name).service(service)?.instances.first
            throw TestFailure("\(service) did not reach the expected state within \(seconds) s; last seen: \(String(describing: last))")
        }
        return instance
    }

    /// `pop status --json` as the store holds it now.
    func report(_ service: String? = nil) async throws -> StatusReport {
        StatusReport(snapshot: try await status(), only: try service.map { try ServiceName($0) })
    }
}

/// A test step that could not go on.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
