/// The machine agent: ``Agent`` keeps this machine at the desired state. One pure state machine decides (the core,
/// `Core/`), one driver performs its actions (`Reconciler/`), the ``Supervisor`` runs the instances, and tasks run
/// beside them (`Tasks/`); see docs/agent.md.
public enum PopAgent {}
