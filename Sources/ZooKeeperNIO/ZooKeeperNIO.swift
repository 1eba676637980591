/// A native Apache ZooKeeper client on SwiftNIO.
public enum ZooKeeperNIO {}
