import ArgumentParser
import Foundation
import PopFleetClient
import PopState

/// `pop status [NAME]`: every service, where it should run, and what each machine reports.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        _superCommandName: "pop",
        abstract: "Show services, their machines, and each instance's state, PID, signature, uptime and restarts.",
        discussion: """
            A machine whose agent is not registered shows as 'down' and its instances as 'unknown'. A signature \
            marked with * differs from the service's current configuration (a restart is under way). RESTARTS says \
            why the agent last started the instance again (crash, config-change, health, manual).

            CPU is in percent of one core (since the agent was last asked, or over the process's life), MEM the \
            resident memory of the instance's process group. On ZooKeeper they come from each machine's agent, \
            asked in parallel for at most half a second; '?' marks an agent that did not answer.

            A service rolling out behind canaries gets a line with the rollout's phase (canary, rolling, completed \
            or reverted with the reason); --json has it as the service's rollout.

            --wait STATE waits (using watches) until every instance shown is in STATE with the current signature.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "Show only this service.")
    var name: String?

    @Option(name: .long, help: ArgumentHelp("Wait until every instance is in this state (e.g. running).", valueName: "state"))
    var wait: String?

    @Option(name: .long, help: ArgumentHelp("How long --wait waits, in seconds, before failing.", valueName: "seconds"))
    var timeout: Double = 60

    func run() async throws {
        let service = try name.map { try ServiceName($0) }
        let waitState = try wait.map { raw in
            guard let state = InstanceState(rawValue: raw) else {
                throw PopError(
                    .invalidInput, "Unknown instance state '\(raw)'.",
                    hint: "States: \(InstanceState.allCases.map(\.rawValue).joined(separator: ", ")).")
            }
            return state
        }
        // The snapshot's first read holds the namespace's root and checks its layout, as opening would.
        try await CommandContext.with(global, requireNamespace: false) { context in
            // On the embedded store the instances' CPU and memory come from this host's /proc: that pass is made
            // while the store is read, on another core.
            async let localScan = context.namespace.store.isMachineLocal && waitState == nil
                ? FleetResources.scanLocal() : nil
            // Elsewhere they come from each machine's agent, which makes that pass on its host: the whole namespace's
            // agents are asked while the services are read.
            async let agentReports = !context.namespace.store.isMachineLocal && waitState == nil && service == nil
                ? FleetResources.askEvery(namespace: context.namespace) : nil
            var snapshot = try await context.namespace.status()
            if let service, !snapshot.services.contains(where: { $0.spec.name == service }),
                !snapshot.problems.contains(where: { $0.service == service.rawValue })
            {
                throw PopError(
                    .notFound, "There is no service named '\(service)'.",
                    hint: "`pop status` lists every service; `pop add` creates one.")
            }
            if let waitState {
                snapshot = try await Status.wait(
                    for: waitState, service: service, timeout: timeout, context: context, first: snapshot)
            }
            var report = StatusReport(snapshot: snapshot, only: service)
            await report.addResources(snapshot: snapshot, context: context, scan: await localScan, reports: await agentReports)
            report.addRollouts(snapshot)
            if context.json {
                try context.printJSON(report)
            } else {
                context.out.write(report.render(for: context.out))
            }
            // Damaged records are shown in the table (and JSON) beside everything readable, then reported.
            let problems = snapshot.problems.filter { service == nil || $0.service == nil || $0.service == service?.rawValue }
            if !problems.isEmpty {
                for problem in problems { context.err.writeError(problem.error) }
                throw ExitCode(PopExitCode.corruptState.rawValue)
            }
        }
    }

    /// Waits until every placement shown has an instance in `state` with the desired signature.
    static func wait(
        for state: InstanceState, service: ServiceName?, timeout: Double, context: CommandContext,
        first: StatusSnapshot
    ) async throws -> StatusSnapshot {
        /// An instance that is fatal with the current signature will not become running by itself: fail at once.
        @Sendable func hopeless(_ snapshot: StatusSnapshot) -> Bool {
            guard state != .fatal else { return false }
            return snapshot.services.filter { service == nil || $0.spec.name == service }.contains { status in
                let current = snapshot.instanceSignature(of: status)
                return status.placements.contains { placement in
                    placement.instance?.state == .fatal && placement.instance?.signature == current
                }
            }
        }
        @Sendable func satisfied(_ snapshot: StatusSnapshot) -> Bool {
            let services = snapshot.services.filter { service == nil || $0.spec.name == service }
            return services.allSatisfy { status in
                let current = snapshot.instanceSignature(of: status)
                return status.placements.allSatisfy { placement in
                    guard let instance = placement.instance else { return false }
                    return instance.state == state && instance.signature == current
                }
            }
        }
        if satisfied(first) { return first }
        if hopeless(first) {
            context.out.write(StatusReport(snapshot: first, only: service).render(for: context.out))
            throw PopError(
                .system, "An instance is fatal, so it will not become \(state.rawValue) by itself.",
                hint: "`pop logs NAME` shows its output; fix the cause, then `pop restart NAME`.")
        }
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        let namespace = context.namespace
        let result = try await namespace.read(
            { try await namespace.status() }, until: { satisfied($0) || hopeless($0) },
            wokenByChangesUnder: namespace.prefix, deadline: deadline)
        if let result, satisfied(result) { return result }
        if let result, hopeless(result) {
            context.out.write(StatusReport(snapshot: result, only: service).render(for: context.out))
            throw PopError(
                .system, "An instance is fatal, so it will not become \(state.rawValue) by itself.",
                hint: "`pop logs NAME` shows its output; fix the cause, then `pop restart NAME`.")
        }
        let latest = try await context.namespace.status()
        context.out.write(StatusReport(snapshot: latest, only: service).render(for: context.out))
        throw PopError(
            .system,
            "Timed out after \(Int(timeout)) s waiting for \(service.map { "\($0)'s instances" } ?? "every instance") to be \(state.rawValue).",
            hint: "See the table above; `pop logs NAME` shows an instance's output.")
    }
}

extension StatusReport {
    /// The table `pop status` prints.
    func render(for terminal: Terminal, now: Date = Date()) -> String {
        var table = Table("SERVICE", "MACHINE", "STATE", "PID", "CPU", "MEM", "SIGNATURE", "UPTIME", "RESTARTS", "LAST ERROR")
        var counts: [String: Int] = [:]
        for service in services {
            if service.instances.isEmpty {
                table.append([
                    Table.Cell(service.service, .bold), Table.Cell("-"), Table.Cell("not deployed", .dim),
                    Table.Cell("-"), Table.Cell("-"), Table.Cell("-"), Table.Cell(String(service.signature.prefix(8))), Table.Cell("-"),
                    Table.Cell("-"), Table.Cell(""),
                ])
            }
            for (index, row) in service.instances.enumerated() {
                counts[row.state, default: 0] += 1
                let machineText =
                    FleetPrinter.short(row.machine) + (row.hostname.map { " (\($0))" } ?? "")
                    + (row.machineUp ? "" : " down")
                    + (row.rescheduledFrom.map { " from \(FleetPrinter.short($0))" } ?? "")
                let signature = row.signature.map { String($0.prefix(8)) + (row.current ? "" : "*") } ?? "-"
                let uptime = row.state == "running" || row.state == "starting" ? row.started.map { Duration.short(since: $0, now: now) } : nil
                table.append([
                    Table.Cell(index == 0 ? service.service : "", .bold),
                    Table.Cell(machineText, row.machineUp ? nil : .red),
                    Table.Cell(row.shownState, StatusReport.color(row.state)),
                    Table.Cell(row.pid.map(String.init) ?? "-"),
                    Table.Cell(row.pid == nil ? "-" : row.cpuPercent.map { StatusReport.fixed($0, decimals: 1) + "%" } ?? "?"),
                    Table.Cell(row.pid == nil ? "-" : row.memoryBytes.map(StatusReport.bytes) ?? "?"),
                    Table.Cell(signature, row.current ? nil : .yellow),
                    Table.Cell(uptime ?? "-"),
                    Table.Cell(row.restarts.map { String($0) + (row.lastRestart.map { " (\($0))" } ?? "") } ?? "-"),
                    Table.Cell(row.state == "waiting" ? "" : row.lastError.map { $0.count > 60 ? String($0.prefix(57)) + "..." : $0 } ?? "", .red),
                ])
            }
        }
        for problem in problems {
            if let service = problem.service {
                table.append([
                    Table.Cell(service, .bold), Table.Cell("-"), Table.Cell("damaged", .red), Table.Cell("-"),
                    Table.Cell("-"), Table.Cell("-"), Table.Cell("-"), Table.Cell("-"), Table.Cell("-"),
                    Table.Cell("unreadable record " + (problem.path ?? ""), .red),
                ])
            }
        }
        var out = ""
        if services.isEmpty && problems.isEmpty {
            out += "No services. Add one with `pop add NAME --template TEMPLATE` (`pop list` shows templates).\n"
        } else {
            out += table.render(for: terminal)
        }
        for service in services {
            guard let desired = service.desired else { continue }
            let line = "\(service.service): \(service.running) of \(desired) running" + (service.reason.map { "; \($0)" } ?? "")
            out += terminal.paint(line, service.reason == nil ? .dim : .yellow) + "\n"
        }
        for service in services {
            guard let rollout = service.rollout else { continue }
            out += terminal.paint("\(service.service): \(rollout)", rollout.phase == .reverted ? .yellow : .dim) + "\n"
        }
        let instanceCount = counts.values.reduce(0, +)
        let summary = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        out += terminal.paint(
            "\(services.count) service\(services.count == 1 ? "" : "s"), \(instanceCount) instance\(instanceCount == 1 ? "" : "s")"
                + (summary.isEmpty ? "" : " (\(summary))")
                + " · \(machinesUp.count) machine\(machinesUp.count == 1 ? "" : "s") up · \(store)", .dim) + "\n"
        return out
    }

    /// 12.3M, 1.2G: memory for the table.
    static func bytes(_ count: Int64) -> String {
        let units = ["B", "K", "M", "G", "T"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count)B" : fixed(value, decimals: value < 10 ? 1 : 0) + units[unit]
    }

    /// Fills in each shown service's canary rollout, which the snapshot read with the services.
    mutating func addRollouts(_ snapshot: StatusSnapshot, now: Date = Date()) {
        let rollouts = Dictionary(
            snapshot.services.compactMap { status in status.rollout.map { (status.spec.name.rawValue, $0) } },
            uniquingKeysWith: { first, _ in first })
        guard !rollouts.isEmpty else { return }
        for index in services.indices {
            guard let rollout = rollouts[services[index].service] else { continue }
            services[index].rollout = rollout.state.report(
                current: ConfigSignature(hex: services[index].signature), policy: rollout.policy,
                instances: services[index].instances, now: now)
        }
    }

    /// Fills in CPU and memory of the instances with a process: from this host's /proc on the embedded store, else
    /// from each machine's agent (in parallel, each within half a second; those that do not answer stay unknown).
    /// `reports`, the agents' answers asked for beforehand (``FleetResources/askEvery(namespace:deadline:)``), spare
    /// asking them again.
    mutating func addResources(
        snapshot: StatusSnapshot, context: CommandContext, scan: FleetResources.LocalScan?,
        reports asked: [String: ResourceReport]? = nil
    ) async {
        let rows = services.flatMap { service in service.instances.compactMap { row in row.pid.map { (service.service, row.machine, $0) } } }
        guard !rows.isEmpty else { return }
        let reports: [String: ResourceReport]
        if let asked {
            reports = asked
        } else {
            reports = await FleetResources.gather(
                rows.map { (service: $0.0, machine: $0.1, pid: $0.2) }, records: snapshot.machines,
                namespace: context.namespace, scan: scan)
        }
        for serviceIndex in services.indices {
            for rowIndex in services[serviceIndex].instances.indices {
                let row = services[serviceIndex].instances[rowIndex]
                guard let pid = row.pid,
                    let usage = reports[row.machine]?.instances.first(where: { $0.service == services[serviceIndex].service && $0.pid == pid })
                else { continue }
                services[serviceIndex].instances[rowIndex].cpuPercent = usage.cpuPercent
                services[serviceIndex].instances[rowIndex].memoryBytes = usage.memoryBytes
            }
        }
    }

    static func color(_ state: String) -> Terminal.Color? {
        switch state {
        case "running": .green
        case "starting", "installing", "pending", "stopping", "backoff", "waiting": .yellow
        case "fatal", "unknown": .red
        default: nil
        }
    }
}
