#!/usr/bin/env python3
"""The functions pop runs, for the linker's symbol ordering file (scripts/text-order.sh).

  functions.py faults PERF_DATA BINARY ORDER   append to ORDER each function of BINARY seen first touching a page of
                                               its code in PERF_DATA (exceptions:page_fault_user events, recorded
                                               with the mmap events), in the order first seen
  functions.py filter ORDER MAP LIMIT          drop from ORDER the functions the link MAP places in input sections
                                               larger than LIMIT bytes: such a section holds a whole object's code
                                               (a library built without a section per function), and moving it
                                               would bring its unused code into the ordered part
"""
import bisect
import re
import subprocess
import sys


def read_order(path):
    try:
        with open(path) as file:
            return [line for line in file.read().split("\n") if line]
    except FileNotFoundError:
        return []


def faults(data, binary, order_path):
    symbols = []
    for line in subprocess.run(["nm", "--defined-only", "-S", "--no-demangle", binary],
                               capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW":
            symbols.append((int(fields[0], 16), max(int(fields[1], 16), 1), fields[3]))
    symbols.sort()
    starts = [symbol[0] for symbol in symbols]
    segments = []
    for line in subprocess.run(["readelf", "-l", "-W", binary], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        match = re.match(r"\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)", line)
        if match:
            segments.append(tuple(int(value, 16) for value in match.groups()))
    script = subprocess.run(["perf", "script", "-i", data, "--show-mmap-events", "-F", "pid,event,trace"],
                            capture_output=True, text=True, check=True).stdout
    mappings = {}
    known = read_order(order_path)
    seen = set(known)
    added = []
    for line in script.splitlines():
        if "PERF_RECORD_MMAP2" in line and line.rstrip().endswith(binary):
            match = re.search(r"PERF_RECORD_MMAP2 (\d+)/\d+: \[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ (\S+) ", line)
            if match:
                start, length = int(match.group(2), 16), int(match.group(3), 16)
                mappings.setdefault(int(match.group(1)), []).append((start, start + length, int(match.group(4), 16)))
            continue
        match = re.search(r"^\s*(\d+)\s+exceptions:page_fault_user: address=0x([0-9a-f]+) ip=0x([0-9a-f]+)", line)
        if not match:
            continue
        pid, ip = int(match.group(1)), int(match.group(3), 16)
        for start, end, offset in mappings.get(pid, []):
            if not start <= ip < end:
                continue
            file_offset = ip - start + offset
            address = next((virtual + file_offset - segment_offset for segment_offset, virtual, size in segments
                            if segment_offset <= file_offset < segment_offset + size), None)
            index = bisect.bisect_right(starts, address) - 1 if address is not None else -1
            if index >= 0 and symbols[index][0] <= address < symbols[index][0] + symbols[index][1]:
                name = symbols[index][2]
                if name not in seen:
                    seen.add(name)
                    added.append(name)
            break
    with open(order_path, "a") as file:
        file.writelines(name + "\n" for name in added)
    print(f"{len(added)} new functions, {len(known) + len(added)} in all")
    return len(added)


def filter_large(order_path, map_path, limit):
    order = read_order(order_path)
    wanted = set(order)
    section_size = {}
    in_text = False
    current = 0
    with open(map_path) as file:
        for line in file:
            match = re.match(r"\s*[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s(.*)$", line)
            if not match:
                continue
            rest = match.group(2)
            indent = len(rest) - len(rest.lstrip(" "))
            name = rest.strip()
            if indent == 0:
                in_text = name == ".text"
            elif in_text and ":(" in name:
                current = int(match.group(1), 16)
            elif in_text and name in wanted:
                section_size[name] = current
    kept = [name for name in order if section_size.get(name, 0) <= limit]
    with open(order_path, "w") as file:
        file.writelines(name + "\n" for name in kept)
    print(f"kept {len(kept)} of {len(order)} functions")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "faults":
        faults(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 5 and sys.argv[1] == "filter":
        filter_large(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
