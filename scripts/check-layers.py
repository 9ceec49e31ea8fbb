#!/usr/bin/env python3
"""Fails when a module imports one above it: sluice's layers point one way (ARCHITECTURE.md draws them).

Every `crate::<module>` (or `sluice::<module>`) path in src/ outside `#[cfg(test)]` code is an import of that
top-level module. A module may import its own layer's modules only where SIDEWAYS allows it, and lower layers
freely. KNOWN lists the upward imports not yet removed, each with the file that has it: the list may only
shrink (an entry no longer needed is an error too, so it is deleted when fixed).

Run: python3 scripts/check-layers.py   (scripts/test.sh runs it)
"""

import re
import sys
from pathlib import Path

# Lowest first. A module imports only modules of lower layers (and SIDEWAYS within its own).
LAYERS = [
    # ground floor: values and files every layer uses; imports nothing of ours
    ["record", "clock", "hash", "host", "identity", "durable_file", "state_lock", "status", "shutdown",
     "aws", "tls", "kafka"],
    # codecs and record processing: object keys and prefixes, encodings, processors
    ["format", "process"],
    # what a config says (typed, validated), what the API's stored streams say, metric handles; and each
    # connector's own config and Firehose mapping (`sink/<kind>/config.rs`, `firehose.rs`: "connector_config")
    ["config", "stored", "metrics", "connector_config"],
    # between acknowledged and delivered: WAL, buffers, batch names
    ["buffer"],
    # connectors: they get a context from the pipeline and never import it, nor each other's layer
    ["source", "sink"],
    # runs one pipeline
    ["pipeline"],
    # runs every pipeline: the registry of kinds, reload, the control plane's changes
    ["daemon"],
    # the edges: HTTP API, command line, load generator, the binary
    ["api", "cli", "bench", "main", "lib"],
]

SIDEWAYS = {
    ("format", "process"),   # error records name the processor's error output type
    ("stored", "config"),   # API-created (stored) streams are translated into config
    ("metrics", "config"),   # quota gauges are set from the config's quotas
    ("config", "connector_config"), ("stored", "connector_config"),   # the registry lists the connectors
    ("connector_config", "config"),   # connectors validate with config::kit
    ("api", "cli"), ("cli", "api"), ("main", "api"), ("main", "cli"), ("main", "bench"), ("bench", "api"),
}

# Upward imports that remain, as (importer, imported, file). To be removed, never added to.
KNOWN = set()

ROOT = Path(__file__).resolve().parent.parent
PATH = re.compile(r"\b(?:crate|sluice)::([a-z_][a-z_0-9]*)(?:::([a-z_][a-z_0-9]*)::(config|firehose)\b)?")
# A connector's config-layer files: `src/sink/<kind>/config.rs`, `src/source/<kind>/firehose.rs`, ...
CONNECTOR_CONFIG = re.compile(r"^src/(?:sink|source)/[a-z_0-9]+/(?:config|firehose)\.rs$")


def top_module(path: Path) -> str:
    if CONNECTOR_CONFIG.match(str(path.relative_to(ROOT))):
        return "connector_config"
    return path.relative_to(ROOT / "src").parts[0].removesuffix(".rs")


def imported_module(match) -> str:
    top, kind, part = match
    return "connector_config" if top in ("sink", "source") and part else top


def main() -> int:
    layer_of = {m: i for i, names in enumerate(LAYERS) for m in names}
    found, problems = set(), []
    for path in sorted((ROOT / "src").rglob("*.rs")):
        importer = top_module(path)
        if importer not in layer_of:
            problems.append(f"{path.relative_to(ROOT)}: module `{importer}` has no layer in scripts/check-layers.py")
            continue
        code = path.read_text().split("#[cfg(test)]")[0]
        for n, line in enumerate(code.splitlines(), 1):
            if line.lstrip().startswith("//"):
                continue
            for imported in map(imported_module, PATH.findall(line)):
                if imported == importer or imported not in layer_of:
                    continue
                a, b = layer_of[importer], layer_of[imported]
                if b < a or (b == a and (importer, imported) in SIDEWAYS):
                    continue
                rel = str(path.relative_to(ROOT))
                found.add((importer, imported, rel))
                if (importer, imported, rel) not in KNOWN:
                    kind = "sideways" if a == b else "upward"
                    problems.append(f"{rel}:{n}: {kind} import `{importer}` -> `{imported}`: {line.strip()}")
    for stale in sorted(KNOWN - found):
        problems.append(f"scripts/check-layers.py: KNOWN lists {stale}, which no longer happens: delete the entry")
    for p in problems:
        print(p)
    if problems:
        print(f"\n{len(problems)} layer problem(s); ARCHITECTURE.md says which way imports point", file=sys.stderr)
        return 1
    print(f"layers: every import points down ({len(KNOWN)} known exceptions left)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
