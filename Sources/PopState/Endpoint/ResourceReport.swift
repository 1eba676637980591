/// What an agent's endpoint answers to `/resources`: what each of its instances uses now.
///
/// The one declaration of that answer, used by the agent, `pop status` and the tests.
public struct ResourceReport: Codable, Hashable, Sendable {
    /// One instance.
    public struct Instance: Codable, Hashable, Sendable {
        /// The service.
        public var service: String
        /// The leader's pid (the process group's id).
        public var pid: Int32
        /// CPU use in percent of one core: since the previous request for this instance, or over its life on the first.
        public var cpuPercent: Double
        /// Resident memory of its process group, in bytes.
        public var memoryBytes: Int64
        /// How many processes its group has.
        public var processes: Int

        /// Creates a row.
        public init(service: String, pid: Int32, cpuPercent: Double, memoryBytes: Int64, processes: Int) {
            self.service = service
            self.pid = pid
            self.cpuPercent = cpuPercent
            self.memoryBytes = memoryBytes
            self.processes = processes
        }
    }

    /// The machine.
    public var machine: String
    /// Its instances with a process.
    public var instances: [Instance]

    /// Creates a report.
    public init(machine: String, instances: [Instance]) {
        self.machine = machine
        self.instances = instances
    }
}
