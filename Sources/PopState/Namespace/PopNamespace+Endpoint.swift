extension PopNamespace {
    /// The namespace's endpoint key, created when missing (a namespace made before there was one).
    ///
    /// Reading it needs the rights the namespace's credentials give, so only their holders learn it.
    public func endpointKey() async throws -> EndpointKey {
        try await checkLayout()
        let path = paths.endpointKey
        for _ in 0..<3 {
            do {
                let node = try await store.get(path)
                guard let key = EndpointKey(nodeData: node.data) else {
                    throw PopError(
                        .corruptState, "The node \(path) in the \(store) does not hold an endpoint key.",
                        hint: "Delete it; the next agent or command makes a new one.", path: path)
                }
                return key
            } catch let error as PopError where error.code == .notFound {
                do {
                    _ = try await store.create(path, data: EndpointKey.generate().nodeData, mode: .persistent)
                } catch let error as PopError where error.code == .conflict {
                    // Made meanwhile by another agent or command: read that one.
                }
            }
        }
        throw PopError(.conflict, "The endpoint key at \(path) keeps changing; try again.", path: path)
    }
}
