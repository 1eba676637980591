"""List the distributions installed in this Python environment: version, time of installation and source.

Run with the environment's own interpreter (the `python` template's `packages` task does). The source is the
package index, unless pip recorded a direct URL (PEP 610 direct_url.json): then it is that URL, a VCS URL with its
commit, or a local path. The time of installation is when the installer wrote the distribution's RECORD file.
"""

import argparse
import datetime
import json
import os
import sys
from importlib import metadata
from urllib.parse import unquote, urlparse


def metadata_folder(distribution):
    """The .dist-info or .egg-info folder of a distribution, if it is on disk."""
    path = getattr(distribution, "_path", None)
    return str(path) if path is not None else None


def installed_at(folder):
    """When the distribution was installed: the modification time of RECORD, INSTALLER or the folder itself."""
    if folder is None:
        return None
    for name in ("RECORD", "INSTALLER", "METADATA", "PKG-INFO"):
        candidate = os.path.join(folder, name)
        if os.path.exists(candidate):
            return os.path.getmtime(candidate)
    return os.path.getmtime(folder) if os.path.exists(folder) else None


def source_of(distribution):
    """Where the distribution came from, as (kind, location): index, url, vcs or path."""
    text = distribution.read_text("direct_url.json")
    if not text:
        return ("index", os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple"))
    try:
        direct = json.loads(text)
    except ValueError:
        return ("unknown", "unreadable direct_url.json")
    url = direct.get("url", "")
    if "vcs_info" in direct:
        vcs = direct["vcs_info"]
        commit = vcs.get("commit_id", "")
        return ("vcs", "%s+%s@%s" % (vcs.get("vcs", "vcs"), url, commit) if commit else url)
    if url.startswith("file://"):
        path = unquote(urlparse(url).path)
        if direct.get("dir_info", {}).get("editable"):
            return ("path", path + " (editable)")
        return ("path", path)
    return ("url", url)


def collect(names):
    wanted = {name.lower().replace("_", "-") for name in names}
    rows = []
    seen = set()
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"] or "?"
        key = name.lower().replace("_", "-")
        if key in seen or (wanted and key not in wanted):
            continue
        seen.add(key)
        folder = metadata_folder(distribution)
        timestamp = installed_at(folder)
        kind, location = source_of(distribution)
        installer = (distribution.read_text("INSTALLER") or "").strip() or None
        rows.append({
            "name": name,
            "version": distribution.version,
            "installed": datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
            .isoformat(timespec="seconds").replace("+00:00", "Z") if timestamp is not None else None,
            "source": {"kind": kind, "location": location},
            "installer": installer,
        })
    rows.sort(key=lambda row: row["name"].lower())
    missing = sorted(wanted - seen)
    return rows, missing


def table(rows):
    headers = ("NAME", "VERSION", "INSTALLED (UTC)", "SOURCE")
    lines = [(row["name"], row["version"], (row["installed"] or "-").replace("T", " ").rstrip("Z"),
              row["source"]["location"] if row["source"]["kind"] != "index"
              else "index " + row["source"]["location"]) for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *lines)]
    out = []
    for line in [headers] + lines:
        out.append("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths[:-1])) + "  " + str(line[-1]))
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("names", nargs="*", help="only these distributions")
    options = parser.parse_args()
    rows, missing = collect(options.names)
    if options.json:
        json.dump({"python": sys.version.split()[0], "prefix": sys.prefix, "distributions": rows,
                   "missing": missing}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(table(rows))
        print("%d distributions in %s (Python %s)" % (len(rows), sys.prefix, sys.version.split()[0]))
        for name in missing:
            print("not installed: %s" % name, file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
