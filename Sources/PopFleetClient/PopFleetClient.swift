/// The command line's side of the agents' endpoints.
enum PopFleetClient {}
