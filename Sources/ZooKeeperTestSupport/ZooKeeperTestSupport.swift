/// Starts real ZooKeeper servers for tests and benchmarks.
public enum ZooKeeperTestSupport {}
