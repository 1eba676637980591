/// The machine agent.
public enum PopAgent {}
