#!/usr/bin/env python3
"""Differential harness: runs each scenario against Liftbridge and against Sluice and prints where
what a client observes differs.

    python3 differential.py --liftbridge BIN --sluice CMD... [--only TEXT] [--keep]
    python3 differential.py --cluster --run-cluster SCRIPT --liftbridge BIN --sluice CMD... [--only TEXT] [--keep]
    python3 differential.py --failover N --run-cluster SCRIPT --liftbridge BIN --sluice CMD...

--sluice takes the rest of the command line up to the next flag (e.g. `--sluice /path/to/sluice serve`).
Each scenario runs on a fresh server of each kind (127.0.0.1, free ports, temp directory, embedded NATS,
the same generated liftbridge.yaml), stopped by PID afterwards. A scenario prints SAME when every
observation matches, DIFF with the differing fields otherwise. A difference listed in documented.txt
prints as "documented" with the docs/compatibility.md text that explains it. Exit status: 0 when
no undocumented difference remains, 1 otherwise, 2 on bad usage.

--cluster runs the cluster scenarios (cluster_scenarios.py) instead: three Liftbridge nodes started by
run-cluster.sh against three Sluice brokers on one etcd (--sluice is then the `sluice serve` command the
brokers run). --failover N times N leader kills on each system, alternating, and prints medians.
"""
import argparse
import concurrent.futures
import os
import re
import signal
import sys
import time
import traceback

from cluster_scenarios import CLUSTER_SCENARIOS, failover_once, summary
from harness import HERE, Cluster, ClusterProbe, Probe, ScenarioAborted, Server, stop_all
from scenarios import SCENARIOS

COMPATIBILITY = os.path.normpath(os.path.join(HERE, '..', '..', 'docs', 'compatibility.md'))


def parse_args():
    argv = sys.argv[1:]
    sluice = []
    if '--sluice' in argv:
        i = argv.index('--sluice')
        j = next((k for k in range(i + 1, len(argv)) if argv[k].startswith('--')), len(argv))
        sluice, argv = argv[i + 1:j], argv[:i] + argv[j:]
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--liftbridge', required=True, help='the Liftbridge v1.9.0 binary')
    parser.add_argument('--only', default=None, help='run only scenarios whose name contains this text')
    parser.add_argument('--show', action='store_true', help='print every observation of both servers')
    parser.add_argument('--keep', action='store_true', help='keep server directories (logs) of scenarios that differ')
    parser.add_argument('--cluster', action='store_true', help='run the cluster scenarios against 3 brokers of each system')
    parser.add_argument('--failover', type=int, default=0, help='time N leader kills on each system, alternating')
    parser.add_argument('--failover-signal', choices=['kill', 'term'], default='kill',
                        help='with --failover: SIGKILL (a crash, the default) or SIGTERM (a graceful stop)')
    parser.add_argument('--run-cluster', default=None, help="Liftbridge's run-cluster.sh (with --cluster or --failover)")
    args = parser.parse_args(argv)
    if not sluice:
        parser.error('--sluice COMMAND... is required')
    args.sluice = sluice
    if (args.cluster or args.failover) and not args.run_cluster:
        parser.error('--cluster and --failover need --run-cluster SCRIPT')
    return args


def load_documented():
    """(scenario glob, field glob, cited text) rows (a field is `label`, `label.key` or `label[i].key`); every cited text must appear in docs/compatibility.md."""
    with open(COMPATIBILITY, encoding='utf-8') as f:
        doc = f.read()
    rows, stale = [], []
    with open(os.path.join(HERE, 'documented.txt'), encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            parts = [x.strip() for x in line.split('|')]
            if len(parts) != 3:
                raise SystemExit(f'documented.txt: expected "scenario | field | cited text": {line}')
            if parts[2] not in doc:
                stale.append(parts[2])
            rows.append(tuple(parts))
    if stale:
        raise SystemExit('documented.txt cites text that docs/compatibility.md no longer has:\n  ' + '\n  '.join(stale))
    return rows


def run_one(kind, command, fn, config, env, run_cluster=None):
    server = Cluster(kind, command, run_cluster, env) if run_cluster else Server(kind, command, config, env)
    try:
        server.start()
    except Exception as err:  # noqa: BLE001 - a server that does not start is an observation too
        server.stop(keep=True)
        return [('server start', str(err))], server
    probe = ClusterProbe(server) if run_cluster else Probe(server)
    try:
        fn(probe)
    except ScenarioAborted:
        pass
    except Exception:  # noqa: BLE001 - the scenario's own failure is recorded, then compared
        probe.see('scenario error', traceback.format_exc().strip().split('\n')[-1])
    if getattr(probe, 'notes', None):
        server.notes = probe.notes
    return probe.observed, server


def keyed(observed):
    out, seen = {}, {}
    for field, value in observed:
        n = seen.get(field, 0)
        seen[field] = n + 1
        out[field if n == 0 else f'{field} #{n + 1}'] = value
    return out


def units(field, a, b):
    """The differing parts of one observation as (name, text): `field.key` for dicts, `field[i].key` for
    lists of dicts of the same length, else `field` itself. Each part is documented (or not) on its own."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(a) + [k for k in b if k not in a]
        return [(f'{field}.{k}', f'{a.get(k, "<none>")!r} vs {b.get(k, "<none>")!r}') for k in keys if a.get(k) != b.get(k)]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a and all(isinstance(x, dict) for x in a + b):
        return [u for i, (x, y) in enumerate(zip(a, b)) if x != y for u in units(f'{field}[{i}]', x, y)]
    return [(field, f'{a!r} vs {b!r}')]


def matches(text, pattern):
    """Only `*` is a wildcard (field names hold brackets)."""
    return re.fullmatch('.*'.join(re.escape(part) for part in pattern.split('*')), text, re.DOTALL) is not None


def documented_by(rows, scenario, field):
    for s, f, cited in rows:
        if matches(scenario, s) and matches(field, f):
            return cited
    return None


def main():
    args = parse_args()
    rows = load_documented()
    if args.failover:
        return failover(args)
    run_cluster = args.run_cluster if args.cluster else None
    chosen = [s for s in (CLUSTER_SCENARIOS if args.cluster else SCENARIOS) if args.only is None or args.only in s[0]]
    started = time.monotonic()
    counts = {'SAME': 0, 'DOCUMENTED': 0, 'DIFF': 0}
    used_rows = set()
    for name, fn, config, env in chosen:
        t0 = time.monotonic()
        # Both servers at once: a scenario's time is the slower server's, not the sum.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            lb_future = pool.submit(run_one, 'liftbridge', [args.liftbridge], fn, config, env, run_cluster)
            sl_future = pool.submit(run_one, 'sluice', args.sluice, fn, config, env, run_cluster)
            (lb, lb_server), (sl, sl_server) = lb_future.result(), sl_future.result()
        a, b = keyed(lb), keyed(sl)
        if args.show:
            for label, obs in (('liftbridge', a), ('sluice', b)):
                for k, v in obs.items():
                    print(f'    [{label}] {k}: {v!r}')
        fields = list(a) + [k for k in b if k not in a]
        diffs, documented = [], []
        for field in fields:
            va, vb = a.get(field, '<not observed>'), b.get(field, '<not observed>')
            if va == vb:
                continue
            for unit, text in units(field, va, vb):
                cited = documented_by(rows, name, unit)
                if cited:
                    used_rows.add(cited)
                    documented.append((unit, text, cited))
                else:
                    diffs.append((unit, text))
        verdict = 'DIFF' if diffs else 'DOCUMENTED' if documented else 'SAME'
        counts[verdict] += 1
        print(f'{verdict:<10} {name}  ({len(fields)} observations, {time.monotonic() - t0:.1f} s; differences read liftbridge vs sluice)' if diffs or documented else f'{verdict:<10} {name}  ({len(fields)} observations, {time.monotonic() - t0:.1f} s)', flush=True)
        for field, text in diffs:
            print(f'    differs     {field}: {text if args.show or len(text) <= 400 else text[:400] + " ..."}', flush=True)
        by_cited = {}
        for field, text, cited in documented:
            by_cited.setdefault(cited, []).append(field)
        for cited, fields_ in by_cited.items():
            print(f'    documented  {", ".join(fields_)}\n                -> docs/compatibility.md: "{cited}"', flush=True)
        for server in (lb_server, sl_server):
            for note in getattr(server, 'notes', []):
                print(f'    note [{server.kind}] {note}', flush=True)
        keep = args.keep and verdict == 'DIFF'
        for server in (lb_server, sl_server):
            server.stop(keep=keep)
        if keep:
            print(f'    logs under: {lb_server.dir}  {sl_server.dir}')
    # Only rows meant for this run's scenarios can be stale in it: those naming them, and the catch-all `*` rows,
    # which were written for the single-node scenarios.
    unused = list(dict.fromkeys(cited for s, _, cited in rows if cited not in used_rows
                                and (not args.cluster if s == '*' else any(matches(name, s) for name, *_ in chosen))))
    if args.only is None and unused:
        for cited in unused:
            print(f'note: documented.txt entry matched nothing in this run: "{cited}"')
    print(f'\n{len(chosen)} scenarios in {time.monotonic() - started:.0f} s: {counts["SAME"]} same, '
          f'{counts["DOCUMENTED"]} with documented differences only, {counts["DIFF"]} with undocumented differences')
    return 1 if counts['DIFF'] else 0


def failover(args):
    """--failover N: one cluster of each system; N leader kills on each, alternating; prints every run and the medians."""
    clusters = {}
    word = 'stop' if args.failover_signal == 'term' else 'kill'
    times = {'liftbridge': [], 'sluice': []}
    try:
        for kind, command in (('liftbridge', [args.liftbridge]), ('sluice', args.sluice)):
            clusters[kind] = Cluster(kind, command, args.run_cluster).start()
        for i in range(args.failover):
            for kind in ('liftbridge', 'sluice') if i % 2 == 0 else ('sluice', 'liftbridge'):
                load = os.getloadavg()[0]
                sig = signal.SIGTERM if args.failover_signal == 'term' else signal.SIGKILL
                elected, acked = failover_once(clusters[kind], f'kill{i}s', sig)
                times[kind].append((elected, acked))
                print(f'run {i + 1} {kind:<10} {word} -> new leader in metadata {elected:6.2f} s, {word} -> first ALL ack {acked:6.2f} s'
                      f'  (load average {load:.2f})', flush=True)
    finally:
        for c in clusters.values():
            c.stop()
    print(f'\nleaders stopped with {"SIGTERM" if args.failover_signal == "term" else "SIGKILL"}')
    print(f'load average at the end: {" ".join(f"{x:.2f}" for x in os.getloadavg())}')
    for kind, runs in times.items():
        print(f'{kind:<10} {word} -> new leader in metadata: {summary([e for e, _ in runs])}')
        print(f'{"":<10} {word} -> first ALL ack:          {summary([a for _, a in runs])}')
    return 0


def interrupted(signum, _frame):
    raise KeyboardInterrupt(f'signal {signum}')


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, interrupted)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print('interrupted: stopping every server started', file=sys.stderr)
        sys.exit(130)
    finally:
        stop_all()
