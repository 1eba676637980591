import Foundation

extension PopNamespace {
    /// Every service's spec, by name; a service whose spec cannot be read is left out.
    public func serviceSpecs() async throws -> [ServiceName: ServiceSpec] {
        let names = try await services()
        let results = try await store.read(names.map { .get(paths.service($0)) })
        var specs: [ServiceName: ServiceSpec] = [:]
        for (name, result) in zip(names, results) {
            guard let node = try? result.nodeIfExists(), let spec = try? decodeService(node, name).spec else { continue }
            specs[name] = spec
        }
        return specs
    }

    /// Checks `spec`'s requirement bindings against the other services (missing: `.notFound`; wrong interface or a
    /// cycle: `.invalidInput`), before anything is written.
    public func checkRequirements(of spec: ServiceSpec) async throws {
        guard spec.template.requires != nil else { return }
        var specs = try await serviceSpecs()
        specs.removeValue(forKey: spec.name)
        try spec.checkRequirements(against: specs)
    }

    /// Refuses (`.conflict`) to remove a service other services require, naming them.
    public func checkNoDependents(of service: ServiceName) async throws {
        let dependents = ServiceSpec.dependents(of: service, in: try await serviceSpecs())
        guard !dependents.isEmpty else { return }
        let names = dependents.map { "\($0.service) (slot '\($0.slot)')" }.joined(separator: ", ")
        throw PopError(
            .conflict, "The service '\(service)' is required by \(names).",
            hint: "Remove or rebind those first (`pop config NAME --requires SLOT=SERVICE`), or give --force.")
    }
}
