#!/usr/bin/env python3
"""Runs a command and prints {"wall_s", "cpu_s", "max_rss_kib", "code"} as JSON: whole-process
timing, CPU time (user + system, all its threads and children) and peak RSS (getrusage of the
child), the same way for Sluice and for every peer tool."""
import json, resource, subprocess, sys, time

start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "max_rss_kib": usage.ru_maxrss, "code": proc.returncode,
                  "stderr": proc.stderr.decode(errors="replace")[-2000:]}))
