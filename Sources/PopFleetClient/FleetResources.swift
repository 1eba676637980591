import Foundation
import PopAgent
import PopState

/// CPU and memory of instances for `pop status`: asked of the agents' endpoints in parallel, each within a short
/// deadline (a machine that does not answer in time is shown as unknown), or read from this host's `/proc` on the
/// embedded store.
public enum FleetResources {
    /// CPU and memory of `instances` (service, machine, leader's pid), by machine: from this host's `/proc` on the
    /// embedded store, else from the agents of `records` (in parallel, each within `deadline`; those that do not answer
    /// are missing). What `pop status` and the dashboard show.
    ///
    /// `scan`, a pass over `/proc` made beforehand (``scanLocal()``), spares a second one on the embedded store.
    public static func gather(
        _ instances: [(service: String, machine: String, pid: Int32)], records: [MachineRecord], namespace: PopNamespace,
        deadline: Duration = .milliseconds(500), scan: LocalScan? = nil
    ) async -> [String: ResourceReport] {
        guard !instances.isEmpty else { return [:] }
        if namespace.store.isMachineLocal {
            let scan = scan ?? scanLocal(groups: Set(instances.map(\.pid)))
            return Dictionary(grouping: instances, by: \.machine).reduce(into: [:]) { reports, group in
                reports[group.key] = local(machine: group.key, instances: group.value.map { ($0.service, $0.pid) }, scan: scan)
            }
        }
        let machines = Set(instances.map(\.machine))
        let asked = records.filter { machines.contains($0.id.rawValue) && $0.endpoint != nil }
        guard !asked.isEmpty, let key = try? await namespace.endpointKey() else { return [:] }
        return await ask(asked, client: EndpointClient(key: key), deadline: deadline)
    }

    /// What every registered machine's agent answers within `deadline`, by machine id, for a command that asks before
    /// it knows which machines run instances: `pop status` of the whole namespace asks while it reads the services,
    /// since an agent's answer (a pass over its host's `/proc`) takes as long as those reads. Empty when the machines
    /// or the namespace's endpoint key cannot be read (the snapshot's own reads report why). The key is read only
    /// once an agent serves an endpoint, which it made the key for, so this writes nothing.
    public static func askEvery(namespace: PopNamespace, deadline: Duration = .milliseconds(500)) async -> [String: ResourceReport] {
        let records = (try? await namespace.machines())?.filter { $0.endpoint != nil } ?? []
        guard !records.isEmpty, let key = try? await namespace.endpointKey() else { return [:] }
        return await ask(records, client: EndpointClient(key: key), deadline: deadline)
    }

    /// What each machine's agent answered within `deadline`, by machine id; machines missing did not answer.
    public static func ask(
        _ records: [MachineRecord], client: EndpointClient, deadline: Duration = .milliseconds(500)
    ) async -> [String: ResourceReport] {
        // A connection that cannot be made ends with the deadline too (the race below waits for its loser).
        var quick = client
        quick.connectTimeout = FleetReader.timeAmount(deadline)
        let client = quick
        return await withTaskGroup(of: (String, ResourceReport?).self) { group in
            for record in records {
                guard let text = record.endpoint, let address = EndpointAddress(text) else { continue }
                group.addTask {
                    let answer = try? await withThrowingTaskGroup(of: ResourceReport?.self) { race in
                        race.addTask {
                            try await client.get(
                                address, path: "/resources", query: [], readTimeout: FleetReader.timeAmount(deadline)
                            ) { answer -> ResourceReport? in
                                guard answer.status == 200 else { return nil }
                                return try JSONDecoder().decode(ResourceReport.self, from: Data(try await answer.text().utf8))
                            }
                        }
                        race.addTask {
                            try await Task.sleep(for: deadline)
                            return nil
                        }
                        defer { race.cancelAll() }
                        return try await race.next() ?? nil
                    }
                    return (record.id.rawValue, answer ?? nil)
                }
            }
            var reports: [String: ResourceReport] = [:]
            for await (machine, report) in group {
                if let report { reports[machine] = report }
            }
            return reports
        }
    }

    /// What this host's process groups use, read from `/proc` at one moment.
    public struct LocalScan: Sendable {
        #if os(Linux)
        var usage: [Int32: ProcessGroupUsage]
        #endif
        var time: Double
    }

    /// One pass over this host's `/proc`: the groups of `groups`, or every group when `nil`. A command may make it
    /// while it reads the store, since the pass does not depend on what it reads.
    public static func scanLocal(groups: Set<Int32>? = nil) -> LocalScan {
        #if os(Linux)
        let usage = ProcessGroupSampler.sample(groups: groups)
        return LocalScan(usage: usage, time: ProcessGroupSampler.now())
        #else
        return LocalScan(time: 0)
        #endif
    }

    /// The instances with these leaders' pids on this host, from `scan` (CPU over each process's life).
    public static func local(machine: String, instances: [(service: String, pid: Int32)], scan: LocalScan) -> ResourceReport {
        #if os(Linux)
        return ResourceReport(
            machine: machine,
            instances: instances.compactMap { instance in
                guard let group = scan.usage[instance.pid] else { return nil }
                return ResourceReport.Instance(
                    service: instance.service, pid: instance.pid,
                    cpuPercent: ProcessGroupSampler.cpuPercent(group, at: scan.time, previous: nil),
                    memoryBytes: group.rssBytes, processes: group.processes)
            })
        #else
        return ResourceReport(machine: machine, instances: [])
        #endif
    }
}
