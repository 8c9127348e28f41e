"""Cluster scenarios: what a client sees from three brokers (differential.py --cluster).

Each runs once against a 3-node Liftbridge cluster and once against a 3-broker Sluice cluster (harness.Cluster),
through a ClusterProbe. Brokers are named node1..node3 in both; partitions are recorded by shape (how many
replicas and in-sync replicas, whether the leader is one of them), because the two systems place replicas
differently. Scenarios that need a partition's leader or a follower look it up in the metadata first.
Liftbridge's node1 hosts the NATS server all three use, so a scenario that kills a broker kills one that is
not node1 (it creates streams until one is led elsewhere), on both systems alike.
"""
import math
import signal
import statistics
import threading
import time

import grpc

from harness import WAIT, ClusterProbe, api_pb2, shape, status, unary
from scenarios import wait_for

CLUSTER_SCENARIOS = []

# How long a cluster may take to notice a dead broker and elect, or to take a restarted one back into the ISR.
# Liftbridge's defaults are 15 s for each (replica.max.leader.timeout, replica.max.lag.time, checked every 15 s).
FAILOVER_LIMIT = 60.0
REJOIN_LIMIT = 90.0


def cluster_scenario(name):
    def register(fn):
        CLUSTER_SCENARIOS.append((name, fn, {}, {}))
        return fn
    return register


def sub(stream, partition=0, **fields):
    return api_pb2.SubscribeRequest(stream=stream, partition=partition, **fields)


def meta(node, streams=(), timeout=2.0):
    """FetchMetadata on one node, not recorded; None when it does not answer."""
    try:
        return unary(node.channel, 'FetchMetadata', api_pb2.FetchMetadataRequest(streams=list(streams)), api_pb2.FetchMetadataResponse, timeout)
    except grpc.RpcError:
        return None


def partition(node, stream, pid=0, timeout=2.0):
    r = meta(node, [stream], timeout)
    if r is None:
        return None
    s = next((s for s in r.streamMetadata if s.name == stream), None)
    return s.partitions[pid] if s is not None and pid in s.partitions else None


def settled(p, stream, isr=3, pid=0, limit=WAIT, nodes=None):
    """Waits until every given (live) node reports the partition with a leader and `isr` in-sync replicas, all agreeing."""
    def check():
        views = [partition(n, stream, pid) for n in (nodes or [n for n in p.cluster.nodes if n.alive()])]
        if any(v is None or not v.leader or len(v.isr) != isr for v in views):
            return None
        return views[0] if len({(v.leader, tuple(sorted(v.isr))) for v in views}) == 1 else None
    return wait_for(check, limit)


def create(p, name, subject=None, **fields):
    fields.setdefault('replicationFactor', 3)
    p.raw('CreateStream', api_pb2.CreateStreamRequest(name=name, subject=subject or name, **fields))


def create_settled(p, name, subject=None, isr=3, **fields):
    """Creates the stream and waits until every broker agrees on its partition 0; None (and a 'setup' observation) if not."""
    create(p, name, subject, **fields)
    view = settled(p, name, isr=isr)
    if view is None:
        p.see(f'setup: {name} settles', 'no')
    return view


def led_off_node1(p, prefix, **fields):
    """Creates streams prefix0, prefix1, ... until one's leader is not node1 (the node that must not be killed);
    returns (name, leader node). Not recorded: how many it took depends on placement."""
    for i in range(8):
        name = f'{prefix}{i}'
        create(p, name, **fields)
        view = settled(p, name, isr=fields.get('replicationFactor', 3))
        if view is None:
            p.see(f'setup: {name} settles', 'no')
            return None, None
        leader = p.cluster.node_of(view.leader)
        if leader.index != 0:
            return name, leader
    p.see('setup: a stream led off node1', 'none in 8 tries')
    return None, None


def publish_raw(node, timeout=WAIT, **fields):
    """A unary Publish; (response, None) or (None, status text)."""
    fields.setdefault('expectedOffset', -1)
    try:
        return unary(node.channel, 'Publish', api_pb2.PublishRequest(**fields), api_pb2.PublishResponse, timeout), None
    except grpc.RpcError as err:
        return None, status(err)


def read_offsets(node, stream, limit=WAIT, **fields):
    """(offset, value) of every message from the earliest to the latest, or the status that ended the read."""
    call = node.channel.unary_stream('/proto.API/Subscribe', request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=api_pb2.Message.FromString)(
        sub(stream, startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST, **fields), timeout=limit)
    got = []
    try:
        for i, m in enumerate(call):
            if i > 0:
                got.append((m.offset, m.value))
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.OK:
            return got, status(err)
    return got, 'OK'


# --- metadata and admin ---------------------------------------------------------------------------

@cluster_scenario('C1 FetchMetadata from every broker')
def c1(p):
    p.call('create foo RF=3, 3 partitions, on node1', 'CreateStream',
           api_pb2.CreateStreamRequest(name='foo', subject='foo', replicationFactor=3, partitions=3))
    ok = all(settled(p, 'foo', pid=i) is not None for i in range(3))
    p.see('every broker agrees on a leader and 3 in-sync replicas for each partition within 10 s', ok)
    for node in p.cluster.nodes:
        p.at(node).metadata(f'{node.name} metadata', ['foo'])
    views = [partition(p.cluster.nodes[0], 'foo', i) for i in range(3)]
    p.see('distinct leaders of the 3 partitions', len({v.leader for v in views if v is not None}))
    leader = p.cluster.node_of(views[0].leader)
    follower = next(n for n in p.cluster.nodes if n is not leader)
    for role, node in (('leader', leader), ('follower', follower)):
        r = p.at(node).call(f'FetchPartitionMetadata on the {role}', 'FetchPartitionMetadata',
                            api_pb2.FetchPartitionMetadataRequest(stream='foo', partition=0))
        if r is not None:
            p.see(f'FetchPartitionMetadata on the {role} metadata', shape(r.metadata))


@cluster_scenario('C2 CreateStream replication factors, admin through other brokers')
def c2(p):
    n1, n2, n3 = p.cluster.nodes
    p.at(n2).call('RF=3 on node2', 'CreateStream', api_pb2.CreateStreamRequest(name='rf3', subject='rf3', replicationFactor=3))
    p.at(n2).call('RF=4 on node2', 'CreateStream', api_pb2.CreateStreamRequest(name='rf4', subject='rf4', replicationFactor=4))
    p.at(n3).call('RF=-1 on node3', 'CreateStream', api_pb2.CreateStreamRequest(name='all', subject='all', replicationFactor=-1))
    p.at(n3).call('RF=0 on node3', 'CreateStream', api_pb2.CreateStreamRequest(name='rf0', subject='rf0', replicationFactor=0))
    p.at(n3).call('RF=-2 on node3', 'CreateStream', api_pb2.CreateStreamRequest(name='rfm2', subject='rfm2', replicationFactor=-2))
    p.see('rf3 settles with 3 in-sync replicas', settled(p, 'rf3') is not None)
    p.see('all settles with 3 in-sync replicas', settled(p, 'all') is not None)
    p.see('rf0 settles with 1 in-sync replica', settled(p, 'rf0', isr=1) is not None)
    p.at(n1).metadata('node1 metadata', ['rf3', 'rf4', 'all', 'rf0', 'rfm2'])
    p.at(n3).call('RF=3 again on node3', 'CreateStream', api_pb2.CreateStreamRequest(name='rf3', subject='rf3', replicationFactor=3))
    p.at(n3).call('delete rf3 on node3', 'DeleteStream', api_pb2.DeleteStreamRequest(name='rf3'))
    gone = wait_for(lambda: all((r := meta(n, ['rf3'])) is not None and r.streamMetadata[0].error == api_pb2.StreamMetadata.UNKNOWN_STREAM
                                for n in p.cluster.nodes))
    p.see('rf3 unknown on every broker within 10 s', bool(gone))
    p.at(n2).call('pause all on node2', 'PauseStream', api_pb2.PauseStreamRequest(name='all'))
    p.at(n1).call('readonly all on node1', 'SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='all', readonly=True))
    agreed = wait_for(lambda: all((v := partition(n, 'all')) is not None and v.paused and v.readonly for n in p.cluster.nodes))
    p.see('all paused and readonly on every broker within 10 s', bool(agreed))


# --- publish and subscribe through a follower -----------------------------------------------------

@cluster_scenario('C3 Publish to a follower')
def c3(p):
    view = create_settled(p, 'foo')
    if view is None:
        return
    leader = p.cluster.node_of(view.leader)
    follower = next(n for n in p.cluster.nodes if n is not leader)
    f = p.at(follower)
    for policy in ('ALL', 'LEADER', 'NONE'):
        f.publish(f'unary {policy} on the follower', stream='foo', value=policy.encode(), key=b'k', correlationId=policy,
                  ackPolicy=getattr(api_pb2, policy))
    f.publish_async('async on the follower', [
        api_pb2.PublishRequest(stream='foo', value=b'a1', correlationId='a1', ackPolicy=api_pb2.ALL, expectedOffset=-1),
        api_pb2.PublishRequest(stream='foo', value=b'a2', correlationId='a2', ackPolicy=api_pb2.LEADER, expectedOffset=-1),
        api_pb2.PublishRequest(stream='foo', value=b'a3', correlationId='a3', ackPolicy=api_pb2.NONE, expectedOffset=-1),
        api_pb2.PublishRequest(stream='foo', partition=7, value=b'a4', correlationId='a4', expectedOffset=-1)], 3)
    r = f.call('PublishToSubject on the follower', 'PublishToSubject', api_pb2.PublishToSubjectRequest(subject='foo', value=b's', key=b'k'))
    if r is not None:
        f.ack('PublishToSubject on the follower ack', r.ack if r.HasField('ack') else None)
    f.publish('unary to a missing partition on the follower', stream='foo', partition=5, value=b'x')
    # NONE is not acked: wait until all six are there before reading.
    wait_for(lambda: (v := partition(leader, 'foo')) is not None and v.highWatermark >= 5)
    p.at(leader).read_all('read on the leader', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))


@cluster_scenario('C4 Subscribe on a follower and on a non-replica')
def c4(p):
    view = create_settled(p, 'foo')
    if view is None:
        return
    leader = p.cluster.node_of(view.leader)
    followers = [n for n in p.cluster.nodes if n is not leader]
    for i in range(3):
        p.raw('Publish', api_pb2.PublishRequest(stream='foo', value=str(i).encode(), ackPolicy=api_pb2.ALL, expectedOffset=-1))
    f = p.at(followers[0])
    f.read_all('subscribe on a follower', sub('foo', startPosition=api_pb2.EARLIEST))
    f.read_all('readISRReplica on a follower', sub('foo', startPosition=api_pb2.EARLIEST, readISRReplica=True), expect=3)
    live = f.subscribe(sub('foo', readISRReplica=True))
    live.quiet('live readISRReplica on a follower')
    p.raw('Publish', api_pb2.PublishRequest(stream='foo', value=b'3', ackPolicy=api_pb2.ALL, expectedOffset=-1))
    live.take('live readISRReplica on a follower', 1)
    # A stream with one replica: the two other brokers hold none of it.
    solo = create_settled(p, 'solo', isr=1, replicationFactor=1)
    if solo is None:
        return
    p.raw('Publish', api_pb2.PublishRequest(stream='solo', value=b'x', expectedOffset=-1))
    other = p.at(next(n for n in p.cluster.nodes if n.server_id != solo.leader))
    other.read_all('subscribe on a non-replica', sub('solo', startPosition=api_pb2.EARLIEST))
    other.read_all('readISRReplica on a non-replica', sub('solo', startPosition=api_pb2.EARLIEST, readISRReplica=True), expect=1)
    other.publish('publish through a non-replica', stream='solo', value=b'y')



@cluster_scenario('C7 PublishToSubject to a wildcard stream through a follower')
def c7(p):
    view = create_settled(p, 'wild', subject='w.*')
    if view is None:
        return
    leader = p.cluster.node_of(view.leader)
    follower = next(n for n in p.cluster.nodes if n is not leader)
    for role, node in (('leader', leader), ('follower', follower)):
        r = p.at(node).call(f'PublishToSubject w.{role} on the {role}', 'PublishToSubject',
                            api_pb2.PublishToSubjectRequest(subject=f'w.{role}', value=role.encode()))
        if r is not None:
            p.at(node).ack(f'PublishToSubject w.{role} on the {role} ack', r.ack if r.HasField('ack') else None)
    p.at(leader).read_all('read on the leader', sub('wild', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))

# --- failures ------------------------------------------------------------------------------------

@cluster_scenario('C5 leader killed, then restarted')
def c5(p):
    leader_stops(p, signal.SIGKILL)


@cluster_scenario('C8 leader stopped gracefully (SIGTERM), then restarted')
def c8(p):
    leader_stops(p, signal.SIGTERM)


def leader_stops(p, sig):
    """The leader's process gets `sig` (SIGKILL: a crash; SIGTERM: an operator's stop); what clients see until a
    new leader serves, and after the broker is started again."""
    name, leader = led_off_node1(p, 'fo')
    if name is None:
        return
    n1 = p.cluster.nodes[0]
    acks = []
    for i in range(5):
        r, err = publish_raw(n1, stream=name, value=f'm{i}'.encode(), ackPolicy=api_pb2.ALL)
        if r is None:
            p.see(f'setup: ALL publish {i}', err)
            return
        acks.append(r.ack.offset)
    p.see('ALL acks before the stop', acks)
    live = p.at(leader).subscribe(sub(name, startPosition=api_pb2.EARLIEST))
    live.take('subscription on the leader', 5, cancel=False)
    follower_sub = p.at(next(n for n in p.cluster.nodes if n is not leader and n.index != 0)).subscribe(
        sub(name, startPosition=api_pb2.EARLIEST, readISRReplica=True))
    follower_sub.take('readISRReplica subscription on the other follower', 5, cancel=False)
    old_isr = set(partition(n1, name).isr)

    killed_at = time.monotonic()
    p.cluster.kill(leader, sig)
    # The open subscription: after a SIGKILL it ends with whatever gRPC makes of a reset connection (the code
    # is compared, the text is not); after a SIGTERM with what the server said, if anything.
    item = live._next(WAIT)
    end = item[1] if item and item[0] == 'end' else repr(item)
    p.see('subscription on the stopped leader: end', end.split(' ')[0] if sig == signal.SIGKILL else end)
    p.note(f'subscription on the stopped leader ended: {end}')
    # A publish in the gap, with a deadline shorter than either system's failover.
    _, gap = publish_raw(n1, timeout=1.0, stream=name, value=b'gap', ackPolicy=api_pb2.ALL)
    p.see('ALL publish on node1 right after the stop, 1 s deadline', gap or 'acked')
    new_leader = wait_for(lambda: (v := partition(n1, name)) is not None and v.leader and v.leader != leader.server_id and v, FAILOVER_LIMIT)
    elected = time.monotonic() - killed_at
    if not new_leader:
        p.see(f'node1 shows a new leader within {FAILOVER_LIMIT:.0f} s', False)
        return
    p.see('new leader was in the ISR', new_leader.leader in old_isr)
    p.note(f'new leader: {p.server_name(new_leader.leader)} (stopped: {leader.name})')
    # Offsets left out: node1 answers from its own replica, which a Liftbridge follower has just truncated to its
    # high watermark + 1 and is fetching again (its high watermark trails the leader's by one fetch).
    p.see('new partition metadata on node1', {k: v for k, v in shape(new_leader).items() if k not in ('highWatermark', 'newestOffset')})
    p.note(f'node1 right after the election: highWatermark {new_leader.highWatermark}, newestOffset {new_leader.newestOffset}')
    p.note(f'stop -> new leader in node1 metadata: {elected:.2f} s')
    attempts = 0

    def attempt():
        nonlocal attempts
        attempts += 1
        return publish_raw(n1, timeout=1.0, stream=name, value=b'after', ackPolicy=api_pb2.ALL)[0]
    first_ack = wait_for(attempt, FAILOVER_LIMIT)
    p.see('an ALL publish on node1 is acked after the election', bool(first_ack))
    p.note(f'stop -> first ALL ack (1 s deadline per try, {attempts} tries after the election): {time.monotonic() - killed_at:.2f} s')
    new_node = p.cluster.node_of(new_leader.leader)
    got, end = read_offsets(new_node, name)
    p.see('read on the new leader ends', end)
    p.see('every ALL-acked message is on the new leader at its offset', all((o, f'm{o}'.encode()) in got for o in acks))
    p.see('the publish sent in the gap is stored', any(v == b'gap' for _, v in got))
    stored = sum(1 for _, v in got if v == b'after')
    p.see('ALL publishes that timed out after the election are stored anyway', stored > 1)
    p.note(f'{attempts} ALL publishes after the election (1 s deadline each, the last acked); {stored} stored')
    follower_sub.take('readISRReplica subscription on the other follower after the failover', 1)
    others = [n for n in p.cluster.nodes if n is not leader]
    p.see('the two live brokers agree on the partition', settled(p, name, isr=2, nodes=others, limit=FAILOVER_LIMIT) is not None)

    p.cluster.restart(leader)
    rejoin_at = time.monotonic()
    back = wait_for(lambda: (v := partition(n1, name)) is not None and len(v.isr) == 3 and v, REJOIN_LIMIT)
    p.see(f'the restarted broker rejoins the ISR within {REJOIN_LIMIT:.0f} s', bool(back))
    if not back:
        return
    p.note(f'restart -> ISR of 3 again: {time.monotonic() - rejoin_at:.2f} s')
    # The preferred replica (the first) takes its leadership back once in sync, in Sluice.
    moved = wait_for(lambda: (v := partition(n1, name)) is not None and v.leader == leader.server_id, 5.0)
    p.see('the restarted broker leads again within 5 s', bool(moved))
    errors = []

    def read_back():
        got, end = read_offsets(leader, name, readISRReplica=True)
        if end.startswith('RESOURCE_EXHAUSTED'):
            return got
        errors.append(end)
        return None
    served = wait_for(read_back, WAIT)
    p.see('readISRReplica on the restarted broker serves what the new leader had, within 10 s', served is not None and served[:len(got)] == got)
    if errors:
        p.note(f'readISRReplica on the restarted broker answered first: {errors[0]} ({len(errors)} tries before it served)')


@cluster_scenario('C6 min ISR with a follower down')
def c6(p):
    name, leader = led_off_node1(p, 'mi', minIsr=api_pb2.NullableInt32(value=3))
    if name is None:
        return
    victim = next(n for n in p.cluster.nodes if n is not leader and n.index != 0)
    n1 = p.cluster.nodes[0]
    l = p.at(leader)
    l.publish('ALL with 3 in sync', stream=name, value=b'a', ackPolicy=api_pb2.ALL)
    p.cluster.kill(victim)
    shrunk = wait_for(lambda: (v := partition(n1, name)) is not None and len(v.isr) == 2 and v, FAILOVER_LIMIT)
    p.see(f'the ISR shrinks to 2 within {FAILOVER_LIMIT:.0f} s', bool(shrunk))
    if not shrunk:
        return
    l.call('ALL with 2 in sync, 3 s deadline', 'Publish', api_pb2.PublishRequest(stream=name, value=b'b', ackPolicy=api_pb2.ALL, expectedOffset=-1), timeout=3)
    l.publish('LEADER with 2 in sync', stream=name, value=b'c', ackPolicy=api_pb2.LEADER)
    l.publish_async('async ALL with 2 in sync', [api_pb2.PublishRequest(stream=name, value=b'd', correlationId='d', ackPolicy=api_pb2.ALL,
                                                                        expectedOffset=-1)], 1)
    # With one of three brokers down.
    p.at(n1).metadata('node1 metadata with a broker down')
    p.at(n1).call('CreateStream RF=3 with a broker down', 'CreateStream', api_pb2.CreateStreamRequest(name='rf3down', subject='rf3down', replicationFactor=3))
    p.at(n1).call('CreateStream RF=-1 with a broker down', 'CreateStream', api_pb2.CreateStreamRequest(name='alldown', subject='alldown', replicationFactor=-1))
    p.at(n1).metadata('node1 metadata of the streams created with a broker down', ['rf3down', 'alldown'])
    p.cluster.restart(victim)
    back = wait_for(lambda: (v := partition(n1, name)) is not None and len(v.isr) == 3, REJOIN_LIMIT)
    p.see(f'the ISR is 3 again within {REJOIN_LIMIT:.0f} s', bool(back))
    if back:
        l.publish('ALL with 3 in sync again', stream=name, value=b'e', ackPolicy=api_pb2.ALL)


# --- failover timing (differential.py --failover N) ------------------------------------------------

def failover_once(cluster, stream_prefix, sig=signal.SIGKILL):
    """Kills (`sig`: SIGKILL, or SIGTERM for a graceful stop) the leader of a fresh RF=3 stream (not node1) while a publisher on node1 sends ALL publishes
    back to back (1 s deadline each), and a watcher polls node1's metadata every 50 ms. Returns
    (seconds kill -> new leader in node1's metadata, seconds kill -> first ALL ack after the kill), then
    restarts the killed node and waits until it is in the ISR again (so the next run starts whole)."""
    p = ClusterProbe(cluster)
    name, leader = led_off_node1(p, stream_prefix)
    if name is None:
        raise RuntimeError(f'no stream led off node1: {p.observed}')
    n1 = cluster.nodes[0]
    r, err = publish_raw(n1, stream=name, value=b'first', ackPolicy=api_pb2.ALL)
    if r is None:
        raise RuntimeError(f'publish before the kill failed: {err}')
    result = {}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            v = partition(n1, name, timeout=1)
            if v is not None and v.leader and v.leader != leader.server_id:
                result['elected'] = time.monotonic()
                return
            time.sleep(0.05)

    killed_at = time.monotonic()
    cluster.kill(leader, sig)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    deadline = killed_at + FAILOVER_LIMIT
    while time.monotonic() < deadline:
        r, _ = publish_raw(n1, timeout=1.0, stream=name, value=b'x', ackPolicy=api_pb2.ALL)
        if r is not None:
            result['acked'] = time.monotonic()
            break
    watcher.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    cluster.restart(leader)
    wait_for(lambda: (v := partition(n1, name)) is not None and len(v.isr) == 3, REJOIN_LIMIT)
    return (result.get('elected', float('nan')) - killed_at, result.get('acked', float('nan')) - killed_at)


def summary(values):
    ok = [v for v in values if not math.isnan(v)]
    if not ok:
        return 'none'
    return f'median {statistics.median(ok):.2f} s, worst {max(ok):.2f} s, best {min(ok):.2f} s ({len(ok)}/{len(values)} runs)'
