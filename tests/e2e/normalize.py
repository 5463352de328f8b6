#!/usr/bin/env python3
"""Normalise the output of tests/e2e/etcdctl-scenario.sh so two servers' runs can be diffed.

    tests/e2e/normalize.py < raw.txt > normalised.txt

Only values that legitimately differ between two correct servers running the same scenario are
replaced; everything else (revisions above all, keys, values, counts, error messages, gRPC codes,
exit statuses) is kept verbatim.

Replaced, each only in the specific output contexts where etcdctl prints it:

* cluster ID, member ID, lease IDs -> CLUSTER<n>, MEMBER<n>, LEASE<n>, numbered in order of first
  appearance, so the structure is still compared (the same lease must show up in the same places;
  hex %016x / %x and decimal forms of one ID map to the same placeholder). Lease IDs are
  "introduced" only where a server hands out a new lease: `lease grant` output, `lease list`
  output and the <name>/<lease-hex> keys of the lock/election recipes. Everywhere else
  (timetolive, keep-alive, revoke, the `lease` field of a key, ...) only an already introduced
  lease is replaced, so e.g. the client-chosen unknown lease 00000000deadbeef stays literal.
* raft term -> TERM<n> (by first appearance), raft index / applied index -> RAFT_INDEX,
  RAFT_APPLIED_INDEX, db sizes -> DB_SIZE, server version -> VERSION, KV hashes -> HASH:
  these depend on the implementation (Raft log, storage engine), not on the data model.
* loopback ports -> PORT<n> (by first appearance): the two servers listen on different ports
  (etcdctl's default 127.0.0.1:2379 in usage text is kept).
* timings: `took = 2.3ms`, "took":"2.3ms" -> DURATION.
* the attached keys of `lease timetolive --keys` are sorted: etcd returns them in Go map
  order, which differs from run to run even on etcd itself.
* remaining lease TTL: `remaining(599s)` / "ttl":599 -> `~600`, only if within
  REMAINING_TOLERANCE seconds below the granted TTL (a second may tick between grant and query);
  anything else is left alone and shows up in the diff.
* client-side zap log lines: the timestamp and the per-process client UUID in the
  "retrying of unary invoker failed" warnings (the gRPC code and message are kept); the
  informational log lines of `snapshot save` are dropped (only "Snapshot saved at ..." stays).
"""

import re
import sys

REMAINING_TOLERANCE = 5  # seconds


class Ids:
    """Maps distinct integer IDs to PREFIX1, PREFIX2, ... in order of first appearance."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.names = {}

    def name(self, value):
        if value not in self.names:
            self.names[value] = f"{self.prefix}{len(self.names) + 1}"
        return self.names[value]

    def known(self, value):
        return self.names.get(value)


clusters = Ids("CLUSTER")
members = Ids("MEMBER")
leases = Ids("LEASE")
terms = Ids("TERM")
ports = Ids("PORT")


def lease_hex(hex_text, introduce):
    """Placeholder for a hex lease ID, or the text unchanged if unknown and not introduced."""
    value = int(hex_text, 16)
    if introduce:
        return leases.name(value)
    return leases.known(value) or hex_text


def lease_dec(dec_text, introduce):
    value = int(dec_text)
    if introduce:
        return leases.name(value)
    return leases.known(value) or dec_text


def close_to_granted(left, granted):
    """A live lease's remaining TTL, at most REMAINING_TOLERANCE seconds below the granted TTL."""
    return granted > 0 and left >= 0 and 0 <= granted - left <= REMAINING_TOLERANCE


def sort_list(items_text, sep):
    """etcd returns a lease's attached keys in Go map order (random): compare them sorted."""
    if not items_text:
        return items_text
    return sep.join(sorted(items_text.split(sep)))


def sub(pattern, repl, line):
    return re.sub(pattern, repl, line)


def normalise_line(line, state):
    # --- lines dropped entirely -----------------------------------------------------------
    if line.startswith('{"level":"info"') and re.search(
        r'"caller":"(snapshot/v3_snapshot\.go|clientv3/maintenance\.go):\d+"', line
    ):
        return None

    # --- zap warnings: timestamp and client UUID --------------------------------------------
    if line.startswith('{"level":'):
        line = sub(r'"ts":("[^"]*"|[0-9.e+]+)', '"ts":"TS"', line)
        line = sub(r"endpoint://client-[0-9a-f-]+/", "endpoint://client-UUID/", line)

    # --- loopback endpoints (client and peer URLs) ------------------------------------------
    # (2379/2380 are etcdctl's documented defaults, printed in usage text: kept literally)
    line = sub(r"127\.0\.0\.1:(?!23(?:79|80)\b)(\d+)", lambda m: "127.0.0.1:" + ports.name(int(m.group(1))), line)

    # --- `lease list` (simple): "found N leases" then N hex IDs (introducing) ---------------
    if state["lease_lines"] > 0 and re.fullmatch(r"[0-9a-f]+", line):
        state["lease_lines"] -= 1
        return lease_hex(line, True)
    state["lease_lines"] = 0
    m = re.fullmatch(r"found (\d+) leases", line)
    if m:
        state["lease_lines"] = int(m.group(1))
        return line

    # --- lease simple output ----------------------------------------------------------------
    # grant (introducing): "lease 694d... granted with TTL(600s)"
    line = sub(r"^lease ([0-9a-f]+) (granted with TTL\(\d+s\))$",
               lambda m: f"lease {lease_hex(m.group(1), True)} {m.group(2)}", line)
    # timetolive: "lease X granted with TTL(600s), remaining(599s)[, attached keys([...])]"
    def remaining(m):
        granted, left = int(m.group(2)), int(m.group(3))
        left_text = f"~{granted}" if close_to_granted(left, granted) else str(left)
        return f"lease {lease_hex(m.group(1), False)} granted with TTL({granted}s), remaining({left_text}s)"
    line = sub(r"^lease ([0-9a-f]+) granted with TTL\((\d+)s\), remaining\((-?\d+)s\)", remaining, line)
    line = sub(r"attached keys\(\[(.*)\]\)$", lambda m: f"attached keys([{sort_list(m.group(1), ' ')}])", line)
    # keep-alive / revoke / timetolive of an expired lease (never introducing)
    line = sub(r"^lease ([0-9a-f]+) (keepalived with TTL\(\d+\)|revoked|already expired)$",
               lambda m: f"lease {lease_hex(m.group(1), False)} {m.group(2)}", line)

    # --- lock / election keys: <name>/<lease ID in %x> (introducing) ------------------------
    line = sub(r"\b(e2e-lock|e2e-election)/([0-9a-f]+)\b",
               lambda m: f"{m.group(1)}/{lease_hex(m.group(2), True)}", line)

    # --- JSON / fields output: cluster, member, term ----------------------------------------
    line = sub(r'"cluster_id":(\d+)', lambda m: f'"cluster_id":"{clusters.name(int(m.group(1)))}"', line)
    line = sub(r'^"ClusterID" : (\d+)$', lambda m: f'"ClusterID" : {clusters.name(int(m.group(1)))}', line)
    line = sub(r'"member_id":(\d+)', lambda m: f'"member_id":"{members.name(int(m.group(1)))}"', line)
    line = sub(r'^"MemberID" : (\d+)$', lambda m: f'"MemberID" : {members.name(int(m.group(1)))}', line)
    line = sub(r'"leader":(\d+)', lambda m: f'"leader":"{members.name(int(m.group(1)))}"', line)
    line = sub(r'"raft_term":(\d+)', lambda m: f'"raft_term":"{terms.name(int(m.group(1)))}"', line)
    line = sub(r'"raftTerm":(\d+)', lambda m: f'"raftTerm":"{terms.name(int(m.group(1)))}"', line)
    line = sub(r'^"RaftTerm" : (\d+)$', lambda m: f'"RaftTerm" : {terms.name(int(m.group(1)))}', line)

    # --- JSON / fields output: leases -------------------------------------------------------
    # lease grant -w json (introducing): {...,"ID":N,"TTL":600,"Error":""}
    line = sub(r'"ID":(\d+)(,"TTL":\d+,"Error")',
               lambda m: f'"ID":"{lease_dec(m.group(1), True)}"{m.group(2)}', line)
    # lease list -w json (introducing): "leases":[{"id":N},...]
    m = re.search(r'"leases":\[[^\]]*\]', line)
    if m:
        listed = sub(r'\{"id":(\d+)\}', lambda mm: f'{{"id":"{lease_dec(mm.group(1), True)}"}}', m.group(0))
        line = line[: m.start()] + listed + line[m.end():]
    # members -w json: "ID":N is a member ID
    m = re.search(r'"members":\[.*\]', line)
    if m:
        listed = sub(r'"ID":(\d+)', lambda mm: f'"ID":"{members.name(int(mm.group(1)))}"', m.group(0))
        line = line[: m.start()] + listed + line[m.end():]
    # other lease references (never introducing)
    line = sub(r'"(ID|id|lease)":(\d+)',
               lambda m: f'"{m.group(1)}":' + (f'"{leases.known(int(m.group(2)))}"'
                                               if leases.known(int(m.group(2))) else m.group(2)), line)
    line = sub(r'^"(Lease|ID)" : (\d+)$',
               lambda m: f'"{m.group(1)}" : {lease_dec(m.group(2), False)}', line)
    # timetolive -w json remaining TTL
    def ttl_json(m):
        left, granted = int(m.group(1)), int(m.group(2))
        left_text = f'"~{granted}"' if close_to_granted(left, granted) else str(left)
        return f'"ttl":{left_text},"granted-ttl":{granted}'
    line = sub(r'"ttl":(-?\d+),"granted-ttl":(\d+)', ttl_json, line)
    line = sub(r'("granted-ttl":\d+,"keys":\[)([^\]]*)\]', lambda m: f"{m.group(1)}{sort_list(m.group(2), ',')}]", line)

    # --- implementation details: version, sizes, raft indexes, hashes, timings ---------------
    line = sub(r'"version":"[^"]*"', '"version":"VERSION"', line)
    line = sub(r'"dbSize":\d+', '"dbSize":"DB_SIZE"', line)
    line = sub(r'"dbSizeInUse":\d+', '"dbSizeInUse":"DB_SIZE"', line)
    line = sub(r'"raftIndex":\d+', '"raftIndex":"RAFT_INDEX"', line)
    line = sub(r'"raftAppliedIndex":\d+', '"raftAppliedIndex":"RAFT_APPLIED_INDEX"', line)
    line = sub(r'"hash":\d+', '"hash":"HASH"', line)
    line = sub(r'"took":"[^"]*"', '"took":"DURATION"', line)
    line = sub(r"took = \S+$", "took = DURATION", line)

    # endpoint status (simple):
    # ENDPOINT, MEMBER(hex), VERSION, DB SIZE, IS LEADER, IS LEARNER, TERM, INDEX, APPLIED, ERRORS
    m = re.fullmatch(
        r"(\S+), ([0-9a-f]+), (\S+), ([0-9.]+ [kMGTP]?B), (true|false), (true|false), (\d+), (\d+), (\d+), (.*)",
        line,
    )
    if m:
        return (f"{m.group(1)}, {members.name(int(m.group(2), 16))}, VERSION, DB_SIZE, {m.group(5)}, "
                f"{m.group(6)}, {terms.name(int(m.group(7)))}, RAFT_INDEX, RAFT_APPLIED_INDEX, {m.group(10)}")
    # member list (simple): ID(hex), STATUS, NAME, PEER URLS, CLIENT URLS, IS LEARNER
    m = re.fullmatch(r"([0-9a-f]+), (started|unstarted), (.*)", line)
    if m:
        return f"{members.name(int(m.group(1), 16))}, {m.group(2)}, {m.group(3)}"
    # endpoint hashkv (simple): ENDPOINT, HASH
    m = re.fullmatch(r"(\S*127\.0\.0\.1:PORT\d+), (\d+)", line)
    if m:
        return f"{m.group(1)}, HASH"

    return line


def main():
    state = {"lease_lines": 0}
    out = []
    dropped = False
    for raw in sys.stdin.read().split("\n"):
        line = normalise_line(raw, state)
        if line is None:
            # one marker per run of dropped lines, so the stderr block is visibly not empty
            if not dropped:
                out.append("<snapshot save info log lines dropped by normalize.py>")
            dropped = True
            continue
        dropped = False
        out.append(line)
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
