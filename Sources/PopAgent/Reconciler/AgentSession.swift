import PopState

/// One store session of the agent: its namespace and the wake-ups of the loops that work in it.
struct AgentSession: Sendable {
    /// pop's records in the store, through this session's handle.
    var namespace: PopNamespace
    /// Wakes the reconcile loop.
    var reconcile: Wakeup
    /// Wakes the publish loop.
    var publish: Wakeup
    /// What this session follows in the store.
    var watches: SessionWatches

    /// The store handle.
    var store: any CoordinationStore { namespace.store }
}
