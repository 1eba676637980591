import Foundation

extension InstanceRecord {
    /// The record held in `json`, read by ``JSONObjectReader``; `nil` when the reader does not take it (decode it
    /// with ``PopJSON/decoder()`` then).
    public init?(json: [UInt8]) {
        guard let object = JSONObjectReader(json),
            let machine = object.fields["machine"].flatMap(JSONObjectReader.name) as MachineID?,
            let pid = object.optional("pid", JSONObjectReader.integer) as Int32??,
            let signature = object.string("signature"),
            let state = object.fields["state"].flatMap(JSONObjectReader.raw) as InstanceState?,
            let since = object.date("since"),
            let started = object.optional("started", JSONObjectReader.date),
            let restarts = object.integer("restarts", as: Int.self),
            let lastError = object.optional("lastError", JSONObjectReader.string),
            let lastRestart = object.optional("lastRestart", JSONObjectReader.raw) as LifecycleEvent.RestartReason??
        else { return nil }
        self.init(
            machine: machine, pid: pid, signature: ConfigSignature(hex: signature), state: state, since: since,
            started: started, restarts: restarts, lastError: lastError, lastRestart: lastRestart)
    }
}

extension MachineRecord {
    /// The record held in `json`, read by ``JSONObjectReader``; `nil` when the reader does not take it.
    public init?(json: [UInt8]) {
        guard let object = JSONObjectReader(json),
            let id = object.fields["id"].flatMap(JSONObjectReader.name) as MachineID?,
            let hostname = object.string("hostname"),
            let addresses = object.fields["addresses"].flatMap(JSONObjectReader.strings),
            let agentVersion = object.string("agentVersion"),
            let started = object.date("started"),
            let agentPID = object.integer("agentPID", as: Int32.self),
            let endpoint = object.optional("endpoint", JSONObjectReader.string)
        else { return nil }
        self.init(
            id: id, hostname: hostname, addresses: addresses, agentVersion: agentVersion, started: started,
            agentPID: agentPID, endpoint: endpoint)
    }
}

extension Placement {
    /// The placement held in `json`, read by ``JSONObjectReader``; `nil` when the reader does not take it.
    public init?(json: [UInt8]) {
        guard let object = JSONObjectReader(json),
            let deployed = object.date("deployed"),
            let restartGeneration = object.integer("restartGeneration", as: Int.self),
            let scheduled = object.optional("scheduled", JSONObjectReader.bool),
            let rescheduledFrom = object.optional("rescheduledFrom", JSONObjectReader.name) as MachineID??
        else { return nil }
        self.init(
            deployed: deployed, restartGeneration: restartGeneration, scheduled: scheduled,
            rescheduledFrom: rescheduledFrom)
    }
}

extension OptionValue {
    /// An option's value as the decoder reads it: `true` or `false`, an integer, or a string.
    static func read(_ value: JSONObjectReader.Value) -> OptionValue? {
        switch value {
        case .bool(let flag): .bool(flag)
        case .string(let text): .string(text)
        case .number: JSONObjectReader.integer(value).map(OptionValue.int)
        case .null, .object, .array: nil
        }
    }
}
