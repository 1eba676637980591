"""Probes a protected pop namespace with kazoo, as an outsider would.

Usage: python3 acl_probe.py HOSTS ROOT GOOD_USER:PASSWORD [BAD_USER:PASSWORD]

Walks every node under ROOT with the good credentials (recording each node's ACL), then tries every operation on
every node as a client with the bad credentials (or with none when BAD is left out). Prints one JSON object:
{"paths": [...], "acls": {path: [[perms, scheme, id], ...]}, "results": {path: {operation: outcome}},
 "outsider_connected": bool, "insider_session_unchanged": bool}
An outcome is "ok" when the operation succeeded, else the kazoo exception's class name.
"""
import json
import sys

from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE

hosts, root, good = sys.argv[1], sys.argv[2], sys.argv[3]
bad = sys.argv[4] if len(sys.argv) > 4 else None

insider = KazooClient(hosts=hosts, auth_data=[("digest", good)], timeout=10)
insider.start(timeout=10)
insider_session = insider.client_id[0]

paths = []
acls = {}
pending = [root]
while pending:
    path = pending.pop()
    paths.append(path)
    acl, _ = insider.get_acls(path)
    acls[path] = [[entry.perms, entry.id.scheme, entry.id.id] for entry in acl]
    for child in insider.get_children(path):
        pending.append(path.rstrip("/") + "/" + child)

outsider = KazooClient(hosts=hosts, auth_data=[("digest", bad)] if bad else None, timeout=10)
outsider.start(timeout=10)


def attempt(operation):
    try:
        operation()
        return "ok"
    except Exception as error:  # the outcome is the exception's name, whatever it is
        return type(error).__name__


results = {}
# Deepest first, so a delete that wrongly succeeded cannot hide the nodes below it.
for path in sorted(paths, key=lambda p: p.count("/"), reverse=True):
    results[path] = {
        "get": attempt(lambda: outsider.get(path)),
        "getChildren": attempt(lambda: outsider.get_children(path)),
        "getACL": attempt(lambda: outsider.get_acls(path)),
        "set": attempt(lambda: outsider.set(path, b"outsider")),
        "setACL": attempt(lambda: outsider.set_acls(path, OPEN_ACL_UNSAFE)),
        "create": attempt(lambda: outsider.create(path.rstrip("/") + "/outsider", b"x")),
        "delete": attempt(lambda: outsider.delete(path)),
        "stillExists": "ok" if insider.exists(path) is not None else "missing",
    }

report = {
    "paths": sorted(paths),
    "acls": acls,
    "results": results,
    "outsider_connected": outsider.connected,
    "insider_session_unchanged": insider.connected and insider.client_id[0] == insider_session,
}
outsider.stop()
outsider.close()
insider.stop()
insider.close()
print(json.dumps(report))
