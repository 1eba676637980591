extension LifecycleEvent {
    /// The event as one line of a journal: canonical JSON (keys sorted, slashes unescaped, absent fields left out),
    /// the bytes ``PopJSON/canonicalEncoder()`` writes, built directly, since an agent writes one per lifecycle fact.
    public var canonicalJSON: [UInt8] {
        var json = JSONObjectWriter()
        json.field("delayMilliseconds", delayMilliseconds.map(Int64.init))
        json.field("detail", detail)
        json.field("exitCode", exitCode.map(Int64.init))
        json.field("healthy", healthy)
        json.field("kind", kind.rawValue)
        json.field("pid", pid.map(Int64.init))
        json.field("reason", reason?.rawValue)
        json.field("seq", seq)
        json.field("service", service)
        json.field("signal", signal.map(Int64.init))
        json.field("signature", signature)
        json.field("succeeded", succeeded)
        json.field("task", task)
        json.field("taskID", taskID)
        json.field("time", time)
        json.field("version", version)
        return json.finish()
    }
}
