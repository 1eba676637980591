import PopState

/// What the store asks of this machine for one service: run the configuration with this signature, started at least
/// as recently as this restart generation.
public struct DesiredInstance: Hashable, Sendable {
    /// The service.
    public var service: ServiceName
    /// The signature of the service's desired spec.
    public var signature: ConfigSignature
    /// The placement's restart generation; `pop restart` bumps it.
    public var restartGeneration: Int

    /// Creates a desired instance.
    public init(service: ServiceName, signature: ConfigSignature, restartGeneration: Int) {
        self.service = service
        self.signature = signature
        self.restartGeneration = restartGeneration
    }
}

/// What this machine runs for one service, as the supervisor reports it.
public struct ActualInstance: Hashable, Sendable {
    /// The service.
    public var service: ServiceName
    /// The signature of the configuration the instance was started with.
    public var signature: ConfigSignature
    /// The restart generation the instance was started at.
    public var restartGeneration: Int
    /// Whether the instance is stopped for good (stopped by request); a stopped instance that is still placed here is
    /// started again.
    public var isStopped: Bool

    /// Creates an actual instance.
    public init(service: ServiceName, signature: ConfigSignature, restartGeneration: Int, isStopped: Bool = false) {
        self.service = service
        self.signature = signature
        self.restartGeneration = restartGeneration
        self.isStopped = isStopped
    }
}

/// One step that brings this machine closer to the desired state.
public enum ReconcileAction: Hashable, Sendable, CustomStringConvertible {
    /// Why an instance is restarted.
    public enum RestartReason: Hashable, Sendable, CustomStringConvertible {
        /// The service's configuration changed.
        case configurationChanged(from: ConfigSignature, to: ConfigSignature)
        /// `pop restart` bumped the placement's restart generation.
        case restartRequested(generation: Int)
        /// A requirement slot with the `restart` policy was lost and has recovered.
        case requirementRecovered(slot: String)

        public var description: String {
            switch self {
            case .configurationChanged(let from, let to): "configuration changed from \(from.short) to \(to.short)"
            case .restartRequested(let generation): "restart requested (generation \(generation))"
            case .requirementRecovered(let slot): "requirement '\(slot)' recovered"
            }
        }
    }

    /// Start an instance that is placed here and not running.
    case start(DesiredInstance)
    /// Stop an instance that is no longer placed here.
    case stop(ServiceName)
    /// Stop the running instance and start the desired one.
    case restart(DesiredInstance, because: RestartReason)

    /// The service the action is about.
    public var service: ServiceName {
        switch self {
        case .start(let desired), .restart(let desired, _): desired.service
        case .stop(let service): service
        }
    }

    public var description: String {
        switch self {
        case .start(let desired): "start \(desired.service) at \(desired.signature.short)"
        case .stop(let service): "stop \(service)"
        case .restart(let desired, let reason): "restart \(desired.service): \(reason)"
        }
    }
}

/// The plan the agent's core makes for each service: compares the desired instance with the
/// actual one and says what to do, touching nothing.
public enum Reconciliation {
    /// The actions that bring `actual` to `desired`, for the services in `scope` (every service when `nil`).
    ///
    /// - Parameters:
    ///   - desired: What the store places on this machine, by service (only readable specs).
    ///   - actual: What runs here, by service.
    ///   - unreadable: Services whose spec or placement cannot be read; their instances are left as they are, since
    ///     one bad record must never stop a machine's workload.
    ///   - scope: The services to look at; a coalesced pass only looks at those that changed.
    /// - Returns: The actions, ordered by service name.
    public static func plan(
        desired: [ServiceName: DesiredInstance], actual: [ServiceName: ActualInstance],
        unreadable: Set<ServiceName> = [], scope: Set<ServiceName>? = nil
    ) -> [ReconcileAction] {
        let names = scope ?? Set(desired.keys).union(actual.keys)
        var actions: [ReconcileAction] = []
        for name in names.sorted() where !unreadable.contains(name) {
            if let action = plan(desired: desired[name], actual: actual[name]) {
                actions.append(action)
            }
        }
        return actions
    }

    /// The action for one service, or `nil` when it is as desired.
    public static func plan(desired: DesiredInstance?, actual: ActualInstance?) -> ReconcileAction? {
        switch (desired, actual) {
        case (nil, nil):
            return nil
        case (nil, let actual?):
            return actual.isStopped ? nil : .stop(actual.service)
        case (let desired?, nil):
            return .start(desired)
        case (let desired?, let actual?):
            if actual.isStopped { return .start(desired) }
            if actual.signature != desired.signature {
                return .restart(desired, because: .configurationChanged(from: actual.signature, to: desired.signature))
            }
            if actual.restartGeneration != desired.restartGeneration {
                return .restart(desired, because: .restartRequested(generation: desired.restartGeneration))
            }
            return nil
        }
    }
}
