#!/usr/bin/env python3
"""A process tree's resource use, read from /proc, for benches/compare.sh.

    proctree.py cpu PID...   utime+stime in seconds of each PID and all its
                             descendants (all threads), summed
    proctree.py rss PID...   VmRSS in KiB of each PID and its descendants, summed

nginx's master and workers are one tree; a dead process counts 0.
"""
import os
import sys


def stat_fields(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses: cut at the last ')'.
    return text[text.rindex(")") + 2:].split()


def tree(roots):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(entry)
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    seen, todo = [], [int(r) for r in roots]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.append(pid)
            todo.extend(children.get(pid, []))
    return seen


def cpu(pid):
    fields = stat_fields(pid)
    if not fields:
        return 0.0
    # After the name: state(3) ppid(4) ... utime(14) stime(15), so index 11 and 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    what, roots = sys.argv[1], sys.argv[2:]
    pids = tree(roots)
    if what == "cpu":
        print(f"{sum(cpu(p) for p in pids):.2f}")
    elif what == "rss":
        print(sum(rss(p) for p in pids))
    else:
        sys.exit(f"unknown: {what}")


if __name__ == "__main__":
    main()
