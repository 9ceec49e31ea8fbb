#!/usr/bin/env python3
"""Which call sites allocate the most large blocks: bytes allocated (size × calls) per site from a
heaptrack file, grouped by the innermost frames whose file is under a crate's `src/` (BENCHMARKS.md, issue #29).

heaptrack_print sorts by peak, by calls or by temporary allocations; memory that an allocator keeps
resident for its purge delay follows the bytes allocated in large blocks, which it does not show.

    cargo build --profile profiling --features system-allocator
    heaptrack -o churn target/profiling/sluice run --config c.yaml --listen 127.0.0.1:4620 &   # load, then stop it
    scripts/heap-churn.py churn.zst --min-bytes 65536 --frames 2
"""

import argparse
import collections
import subprocess


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="heaptrack's output (.zst or .gz)")
    parser.add_argument("--min-bytes", type=int, default=64 << 10, help="count only blocks of at least this size")
    parser.add_argument("--frames", type=int, default=2, help="frames under src/ that name a site")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    reader = "zstdcat" if args.file.endswith(".zst") else "zcat"
    proc = subprocess.Popen([reader, args.file], stdout=subprocess.PIPE, text=True, errors="replace")
    # heaptrack's interpreted format: strings, instruction pointers and traces are numbered from 1
    # in order of appearance (0 = none); allocation infos ('a') from 0, and '+' names one.
    strings, ips, traces, infos = [""], [None], [None], []
    calls = collections.Counter()
    for line in proc.stdout:
        kind = line[:1]
        if kind == "+":
            calls[int(line[2:], 16)] += 1
        elif kind == "s":
            fields = line.rstrip("\n").split(" ", 2)
            strings.append(fields[2] if len(fields) > 2 else "")
        elif kind == "i":
            # ip, module, then (function, file, line) for the frame and each frame inlined into it
            rest = [int(x, 16) for x in line.split()[3:]]
            ips.append([tuple(rest[i:i + 3]) for i in range(0, len(rest) - 2, 3)])
        elif kind == "t":
            ip, parent = line.split()[1:3]
            traces.append((int(ip, 16), int(parent, 16)))
        elif kind == "a":
            size, trace = line.split()[1:3]
            infos.append((int(size, 16), int(trace, 16)))

    def site(trace):
        names = []
        while 0 < trace < len(traces) and len(names) < args.frames:
            ip, trace = traces[trace]
            for function, file, line in reversed(ips[ip] or []):
                path = strings[file]
                if path.startswith("src/"):  # sluice's and its dependencies' sources, not std's
                    names.append(f"{strings[function]}:{path}:{line}")
        return " <- ".join(names[:args.frames]) or "(no frame under src/)"

    total, count = collections.Counter(), collections.Counter()
    for info, n in calls.items():
        size, trace = infos[info]
        if size >= args.min_bytes:
            key = site(trace)
            total[key] += size * n
            count[key] += n
    print(f"blocks of {args.min_bytes} bytes or more: {sum(total.values()) / 2**20:,.0f} MiB in {sum(count.values()):,}")
    for key, nbytes in total.most_common(args.top):
        print(f"{nbytes / 2**20:9,.0f} MiB {count[key]:8,} blocks  {key}")


if __name__ == "__main__":
    main()
