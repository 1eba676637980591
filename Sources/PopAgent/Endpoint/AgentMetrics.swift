import CoreMetrics
import Foundation
import Metrics
import PopState
import Prometheus
import Synchronization

private typealias MetricGauge = CoreMetrics.Gauge
private typealias MetricCounter = CoreMetrics.Counter

/// The Prometheus metrics an agent serves at `/metrics`: swift-metrics instruments, one set per instance, backed by
/// a swift-prometheus registry of their own (never the process-wide one, so that several agents in one process, as in
/// tests, keep theirs apart).
///
/// Nothing is measured between scrapes: each scrape reads the instances' figures (``MachineJournal``) and one pass
/// over `/proc` (``ProcessGroupSampler``), brings the instruments up to date, and renders the registry.
/// The labels are `service` and `machine` (never `job` or `instance`, which Prometheus sets itself).
public final class AgentMetrics: Sendable {
    /// Every metric's name and help text (docs/observability.md lists them).
    public static let help: [String: String] = [
        "pop_instance_up": "Whether the instance's process runs (1) or not (0).",
        "pop_instance_state": "The instance's state: 1 for its current state, 0 for the others.",
        "pop_instance_restarts_total": "Times the agent started the instance again, by reason.",
        "pop_instance_start_time_seconds": "When the instance's current process started, in seconds since the epoch.",
        "pop_instance_last_exit_code": "The exit status of the instance's last process (128 plus the signal when a signal killed it).",
        "pop_instance_cpu_seconds_total": "CPU time used by the processes of the instance's process group.",
        "pop_instance_memory_rss_bytes": "Resident memory of the processes of the instance's process group.",
        "pop_health_check_up": "Whether the instance's last health check passed (1) or failed (0).",
        "pop_task_runs_total": "Runs of pop tasks (pop run) on this machine, by task and result.",
        "pop_agent_store_connected": "Whether the agent's session with the coordination store is up.",
        "pop_build_info": "The agent's version (always 1).",
    ]

    private let machine: MachineID
    private let factory: Factory
    private let state: Mutex<State>

    private struct State {
        var series: [ServiceName: InstanceSeries] = [:]
        var storeConnected: MetricGauge
        var buildInfo: MetricGauge
    }

    /// The instruments of one instance.
    private struct InstanceSeries {
        var up: MetricGauge
        var states: [InstanceState: MetricGauge]
        var cpu: CoreMetrics.FloatingPointCounter
        var cpuRendered: Double = 0
        var memory: MetricGauge
        var startTime: MetricGauge?
        var lastExit: MetricGauge?
        var health: MetricGauge?
        var restarts: [LifecycleEvent.RestartReason: (counter: MetricCounter, rendered: Int)] = [:]
        var tasks: [MachineJournal.TaskRunKey: (counter: MetricCounter, rendered: Int)] = [:]

        func destroy() {
            up.destroy()
            for gauge in states.values { gauge.destroy() }
            cpu.destroy()
            memory.destroy()
            startTime?.destroy()
            lastExit?.destroy()
            health?.destroy()
            for entry in restarts.values { entry.counter.destroy() }
            for entry in tasks.values { entry.counter.destroy() }
        }
    }

    /// The metrics of `machine`'s agent, version `version`.
    public init(machine: MachineID, version: String) {
        self.machine = machine
        let factory = Factory(registry: PrometheusCollectorRegistry())
        self.factory = factory
        let machineLabel = [("machine", machine.rawValue)]
        let buildInfo = MetricGauge(label: "pop_build_info", dimensions: machineLabel + [("version", version)], factory: factory)
        buildInfo.record(1)
        state = Mutex(
            State(
                storeConnected: MetricGauge(label: "pop_agent_store_connected", dimensions: machineLabel, factory: factory),
                buildInfo: buildInfo))
    }

    /// Brings the instruments up to date with `figures` and `usage` (by process group) and renders them in
    /// Prometheus's text format.
    public func render(
        _ figures: [MachineJournal.Figures], storeConnected: Bool, usage: [Int32: ProcessGroupUsage]
    ) -> [UInt8] {
        state.withLock { state in
            state.storeConnected.record(storeConnected ? 1 : 0)
            let current = Set(figures.map(\.service))
            for (service, series) in state.series where !current.contains(service) {
                series.destroy()
                state.series[service] = nil
            }
            for instance in figures {
                var series = state.series[instance.service] ?? makeSeries(instance.service)
                update(&series, instance, usage: instance.pid.flatMap { usage[$0] })
                state.series[instance.service] = series
            }
        }
        return factory.registry.emitToBuffer()
    }

    private func labels(_ service: ServiceName) -> [(String, String)] {
        [("service", service.rawValue), ("machine", machine.rawValue)]
    }

    private func makeSeries(_ service: ServiceName) -> InstanceSeries {
        let labels = labels(service)
        var states: [InstanceState: MetricGauge] = [:]
        for state in InstanceState.allCases {
            states[state] = MetricGauge(label: "pop_instance_state", dimensions: labels + [("state", state.rawValue)], factory: factory)
        }
        return InstanceSeries(
            up: MetricGauge(label: "pop_instance_up", dimensions: labels, factory: factory), states: states,
            cpu: CoreMetrics.FloatingPointCounter(label: "pop_instance_cpu_seconds_total", dimensions: labels, factory: factory),
            memory: MetricGauge(label: "pop_instance_memory_rss_bytes", dimensions: labels, factory: factory))
    }

    private func update(_ series: inout InstanceSeries, _ instance: MachineJournal.Figures, usage: ProcessGroupUsage?) {
        let labels = labels(instance.service)
        let running = instance.pid != nil && [.starting, .running, .installing].contains(instance.state)
        series.up.record(running ? 1 : 0)
        for (state, gauge) in series.states { gauge.record(state == instance.state ? 1 : 0) }
        // CPU time is a counter of the group's live processes: when it goes down (a new process), it starts again.
        let cpu = usage?.cpuSeconds ?? 0
        if cpu >= series.cpuRendered {
            series.cpu.increment(by: cpu - series.cpuRendered)
        } else {
            series.cpu.reset()
            series.cpu.increment(by: cpu)
        }
        series.cpuRendered = cpu
        series.memory.record(Double(usage?.rssBytes ?? 0))
        Self.optional(
            &series.startTime, instance.started.map { $0.timeIntervalSince1970 }, "pop_instance_start_time_seconds",
            labels, factory)
        Self.optional(&series.lastExit, instance.lastExitCode.map(Double.init), "pop_instance_last_exit_code", labels, factory)
        Self.optional(&series.health, instance.healthy.map { $0 ? 1 : 0 }, "pop_health_check_up", labels, factory)
        for (reason, count) in instance.restarts {
            var entry = series.restarts[reason] ?? (
                MetricCounter(label: "pop_instance_restarts_total", dimensions: labels + [("reason", reason.rawValue)], factory: factory), 0)
            entry.counter.increment(by: Int64(count - entry.rendered))
            entry.rendered = count
            series.restarts[reason] = entry
        }
        for (key, count) in instance.taskRuns {
            var entry = series.tasks[key] ?? (
                MetricCounter(
                    label: "pop_task_runs_total", dimensions: labels + [("task", key.task), ("result", key.result)],
                    factory: factory), 0)
            entry.counter.increment(by: Int64(count - entry.rendered))
            entry.rendered = count
            series.tasks[key] = entry
        }
    }

    /// A gauge that exists only while it has a value.
    private static func optional(
        _ gauge: inout MetricGauge?, _ value: Double?, _ name: String, _ labels: [(String, String)], _ factory: Factory
    ) {
        guard let value else {
            gauge?.destroy()
            gauge = nil
            return
        }
        if gauge == nil { gauge = MetricGauge(label: name, dimensions: labels, factory: factory) }
        gauge?.record(value)
    }

    /// swift-metrics' factory over a swift-prometheus registry, which gives every metric its help text.
    struct Factory: MetricsFactory {
        let registry: PrometheusCollectorRegistry

        private func descriptor(_ label: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: label, helpText: AgentMetrics.help[label])
        }

        func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
            registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
        }

        func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
            registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
        }

        func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
            registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
        }

        func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
            registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
        }

        func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
            registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: [.milliseconds(10), .seconds(1)])
        }

        func destroyCounter(_ handler: any CounterHandler) {
            if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
        }

        func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
            if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
        }

        func destroyRecorder(_ handler: any RecorderHandler) {
            if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        }

        func destroyMeter(_ handler: any MeterHandler) {
            if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        }

        func destroyTimer(_ handler: any TimerHandler) {
            if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
        }
    }
}
