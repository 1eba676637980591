import Foundation
import PopState

extension Agent {
    /// Works out the instance's configuration and writes its files and its restart generation.
    func prepare(_ launch: InstanceLaunch) throws -> InstanceConfiguration {
        let name = launch.desired.service
        let blueprint = try InstanceBlueprint(
            spec: launch.spec, signature: launch.desired.signature, machine: machine,
            directory: configuration.instanceDirectory(name), packages: launch.packages,
            baseEnvironment: configuration.instanceBaseEnvironment, relations: launch.relations)
        let instance = try instanceConfiguration(blueprint, template: launch.spec.template)
        try InstanceFolder.prepare(blueprint, stateDirectory: configuration.stateDirectory(name))
        try PlacementMemory.write(launch.desired.restartGeneration, to: configuration.stateDirectory(name))
        return instance
    }

    /// The supervisor's view of a blueprint.
    func instanceConfiguration(_ blueprint: InstanceBlueprint, template: ResolvedTemplate) throws -> InstanceConfiguration {
        let name = blueprint.service
        do {
            return InstanceConfiguration(
                name: name, signature: blueprint.signature, command: blueprint.command,
                environment: blueprint.environment, workingDirectory: blueprint.directory,
                logDirectory: configuration.logDirectory(name), stateDirectory: configuration.stateDirectory(name),
                setup: blueprint.setup, stopSignal: template.stopSignal,
                stopTimeoutMilliseconds: template.stopTimeoutMilliseconds,
                health: try blueprint.health.map { (check) throws(SupervisorError) in try HealthProbe(check) },
                restartPolicy: configuration.restartPolicy, logRotation: configuration.logRotation)
        } catch {
            throw error.popError
        }
    }
}
