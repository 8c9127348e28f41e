"""The scenarios: single-node behaviours of Liftbridge (reference §8, numbered "B<n>") and its quirks
(Appendix A, "Q<n>"), each written once and run against both servers.

A scenario records only what a client can observe; values that legitimately differ between two
servers (ids, ports, wall-clock times) are normalised by the Probe.
"""
import struct
import time

import grpc

from harness import QUIET, WAIT, Nats, api_pb2, status, unary

SCENARIOS = []


def scenario(name, config=None, env=None):
    def register(fn):
        SCENARIOS.append((name, fn, config or {}, env or {}))
        return fn
    return register


def create(p, name, subject=None, **fields):
    p.raw('CreateStream', api_pb2.CreateStreamRequest(name=name, subject=subject or name, **fields))


def cs(label, p, **fields):
    return p.call(label, 'CreateStream', api_pb2.CreateStreamRequest(**fields))


def sub(stream, partition=0, **fields):
    return api_pb2.SubscribeRequest(stream=stream, partition=partition, **fields)


def fill(p, stream, n, partition=0, key=b''):
    acks = []
    for i in range(n):
        r = p.raw('Publish', api_pb2.PublishRequest(stream=stream, partition=partition, key=key, value=str(i).encode(), expectedOffset=-1))
        acks.append(r.ack)
    return acks


def wait_for(fn, limit=WAIT):
    """Polls fn until it returns a truthy value or `limit` seconds pass; returns the last value."""
    deadline = time.monotonic() + limit
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(0.05)
        value = fn()
    return value


def i64(v):
    return api_pb2.NullableInt64(value=v)


def flag(v):
    return api_pb2.NullableBool(value=v)


# --- §8 behaviours ------------------------------------------------------------------------

@scenario('B1 CreateStream twice')
def b1(p):
    cs('first', p, name='bar', subject='foo')
    cs('second', p, name='bar', subject='foo')
    cs('same subject, other name', p, name='baz', subject='foo')


@scenario('B2 reserved stream __cursors')
def b2(p):
    cs('create __cursors', p, name='__cursors', subject='x')
    p.call('delete __cursors', 'DeleteStream', api_pb2.DeleteStreamRequest(name='__cursors'))
    cs('create __activity', p, name='__activity', subject='y')


@scenario('B3 invalid subject and name')
def b3(p):
    cs('subject with space', p, name='a', subject='foo bar')
    cs('empty subject', p, name='a', subject='')
    cs('empty name', p, name='', subject='foo')
    cs('subject with wildcard', p, name='a', subject='foo.*')
    cs('subject with trailing dot', p, name='a', subject='foo.')


@scenario('B4 replication factor above cluster size')
def b4(p):
    cs('RF=2', p, name='a', subject='a', replicationFactor=2)
    cs('RF=-1 (cluster size)', p, name='b', subject='b', replicationFactor=-1)
    p.metadata('metadata', ['b'])


@scenario('B5 three partitions in metadata and broker counts')
def b5(p):
    cs('create', p, name='foo', subject='foo', partitions=3)
    p.metadata('all metadata')
    settled = wait_for(lambda: p.raw('FetchMetadata', api_pb2.FetchMetadataRequest()).brokers[0].partitionCount == 3)
    p.see('broker partitionCount reaches 3 within 10 s', bool(settled))
    p.metadata('metadata of foo', ['foo'])
    p.metadata('metadata of missing', ['missing'])


@scenario('B8 DeleteStream missing, then create, delete, re-create')
def b8(p):
    p.call('delete missing', 'DeleteStream', api_pb2.DeleteStreamRequest(name='foo'))
    create(p, 'foo')
    fill(p, 'foo', 2)
    p.call('delete', 'DeleteStream', api_pb2.DeleteStreamRequest(name='foo'))
    p.metadata('metadata after delete', ['foo'])
    p.call('publish after delete', 'Publish', api_pb2.PublishRequest(stream='foo', value=b'x'))
    cs('re-create', p, name='foo', subject='foo')
    p.fetch_partition('partition metadata after re-create', 'foo')


@scenario('B9 Subscribe to a missing stream or partition')
def b9(p):
    p.read_all('missing stream', sub('foo'))
    create(p, 'foo')
    p.read_all('missing partition', sub('foo', partition=1))
    p.read_all('negative partition', sub('foo', partition=-1))


@scenario('B11 NEW_ONLY subscription, then replay from an offset')
def b11(p):
    create(p, 'foo')
    live = p.subscribe(sub('foo'))
    live.quiet('live')
    fill(p, 'foo', 5, key=b'bar')
    live.take('live', 5)
    fill(p, 'foo', 5, key=b'bar')
    p.read_all('from offset 5', sub('foo', startPosition=api_pb2.OFFSET, startOffset=5), expect=5)


@scenario('B12 message over replication.max.bytes', config={'clustering.replication.max.bytes': 1024})
def b12(p):
    create(p, 'foo')
    for policy in ('LEADER', 'ALL', 'NONE'):
        p.publish(f'unary 1025 bytes {policy}', stream='foo', value=b'x' * 1025, ackPolicy=getattr(api_pb2, policy))
    p.publish('unary 1000 bytes', stream='foo', value=b'x' * 1000)
    p.call('PublishToSubject 1025 bytes', 'PublishToSubject', api_pb2.PublishToSubjectRequest(subject='foo', value=b'x' * 1025))
    p.publish_async('async 1025 bytes', [api_pb2.PublishRequest(stream='foo', value=b'x' * 1025, correlationId='c1', expectedOffset=-1)], 1)
    p.fetch_partition('after', 'foo')


@scenario('B13 unary Publish requests')
def b13(p):
    create(p, 'foo', partitions=2)
    p.publish('empty request', expectedOffset=0)
    p.publish('missing stream', stream='bar', value=b'x')
    p.publish('partition 1', stream='foo', partition=1, value=b'v', key=b'k', correlationId='cid', headers={'h': b'1'})
    p.publish('partition 1 NONE', stream='foo', partition=1, value=b'v', ackPolicy=api_pb2.NONE)
    p.publish('partition 1 ALL', stream='foo', partition=1, value=b'v', ackPolicy=api_pb2.ALL)
    p.publish('with ack inbox', stream='foo', value=b'v', ackInbox='my.inbox', correlationId='c2')
    p.read_all('partition 1', sub('foo', partition=1, startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))
    p.read_all('partition 0', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))


@scenario('B13 ack to the ack inbox over NATS')
def b13_inbox(p):
    create(p, 'foo', partitions=2)
    nats = Nats(p.server.nats_port)
    nats.sub('inbox.>')
    for policy in ('LEADER', 'ALL', 'NONE'):
        p.publish(f'unary {policy}', stream='foo', partition=1, value=b'v', ackInbox=f'inbox.{policy}', correlationId=policy,
                  ackPolicy=getattr(api_pb2, policy))
        got = nats.next_msg(QUIET if policy == 'NONE' else WAIT)
        if got is None:
            p.see(f'NATS ack {policy}', 'none')
        else:
            a = api_pb2.Ack()
            a.ParseFromString(got[1][8:])
            p.see(f'NATS ack {policy} subject and envelope header', (got[0], got[1][:8].hex()))
            p.ack(f'NATS ack {policy}', a)
    nats.close()


@scenario('B14 PublishToSubject reaches a raw NATS subscriber as an envelope')
def b14(p):
    nats = Nats(p.server.nats_port)
    nats.sub('foo.bar')
    r = p.call('publish', 'PublishToSubject', api_pb2.PublishToSubjectRequest(subject='foo.bar', value=b'hello', key=b'key', ackPolicy=api_pb2.NONE))
    if r is not None:
        p.see('ack', 'present' if r.HasField('ack') else 'absent')
    got = nats.next_msg()
    if got is None:
        p.see('NATS message', 'none')
    else:
        m = api_pb2.Message()
        m.ParseFromString(got[1][8:])
        p.see('NATS header', got[1][:8].hex())
        p.see('NATS message', p.message(m))
    create(p, 'foo', subject='foo.bar')
    r = p.call('publish to a stream subject', 'PublishToSubject', api_pb2.PublishToSubjectRequest(
        subject='foo.bar', value=b'v', key=b'k', correlationId='cid', headers={'h': b'1'}))
    if r is not None:
        p.ack('ack', r.ack if r.HasField('ack') else None)
    p.read_all('stream', sub('foo', startPosition=api_pb2.EARLIEST), expect=1)
    nats.close()


@scenario('B15 start offset past the end (Q7)')
def b15(p):
    create(p, 'foo')
    fill(p, 'foo', 5)
    s = p.subscribe(sub('foo', startPosition=api_pb2.OFFSET, startOffset=100))
    s.quiet('offset 100')
    fill(p, 'foo', 1)
    s.take('offset 100', 1)


@scenario('B16 default subscription on an empty stream')
def b16(p):
    create(p, 'foo')
    s = p.subscribe(sub('foo'))
    s.quiet('default')
    fill(p, 'foo', 1)
    s.take('default', 1)


@scenario('B17 retention removes old segments')
def b17(p):
    create(p, 'foo', segmentMaxBytes=i64(1), retentionMaxBytes=i64(1), cleanerInterval=i64(50))
    fill(p, 'foo', 2)
    first = wait_for(lambda: first_offset(p, 'foo') == 1)
    p.see('earliest offset is 1 within 10 s', bool(first))
    p.read_all('earliest', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))
    p.fetch_partition('metadata', 'foo')


@scenario('B18 retention by messages and age')
def b18(p):
    for name, option in (('msgs', {'retentionMaxMessages': i64(5)}), ('age', {'retentionMaxAge': i64(1)})):
        create(p, name, segmentMaxBytes=i64(1), cleanerInterval=i64(50), **option)
        fill(p, name, 10)
        target = 5 if name == 'msgs' else 9
        ok = wait_for(lambda: first_offset(p, name) == target)
        p.see(f'{name}: earliest offset after the cleaner', target if ok else first_offset(p, name))
        p.fetch_partition(f'{name}: metadata', name)


def first_offset(p, stream):
    call = p.channel.unary_stream('/proto.API/Subscribe', request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=api_pb2.Message.FromString)(
        sub(stream, startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST), timeout=WAIT)
    try:
        frames = []
        for m in call:
            frames.append(m)
            if len(frames) == 2:
                call.cancel()
                return m.offset
    except grpc.RpcError as err:
        return status(err) if len(frames) < 2 else None
    return None


@scenario('B19 LATEST and NEW_ONLY')
def b19(p):
    create(p, 'foo')
    fill(p, 'foo', 3)
    p.read_all('latest', sub('foo', startPosition=api_pb2.LATEST), expect=1)
    fill(p, 'foo', 2)
    s = p.subscribe(sub('foo', startPosition=api_pb2.NEW_ONLY))
    s.quiet('new only')
    fill(p, 'foo', 1)
    s.take('new only', 1)
    s2 = p.subscribe(sub('foo', startPosition=api_pb2.EARLIEST))
    s2.take('earliest', 6)


@scenario('B21 stop positions')
def b21(p):
    create(p, 'foo')
    p.read_all('empty, stop latest', sub('foo', stopPosition=api_pb2.STOP_LATEST))
    p.read_all('empty, earliest + stop latest', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))
    p.read_all('empty, stop offset 0', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_OFFSET, stopOffset=0))
    acks = fill(p, 'foo', 10)
    p.read_all('earliest + stop latest', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))
    p.read_all('timestamp 2 .. timestamp 6', sub('foo', startPosition=api_pb2.TIMESTAMP, startTimestamp=acks[2].receptionTimestamp,
                                                 stopPosition=api_pb2.STOP_TIMESTAMP, stopTimestamp=acks[6].receptionTimestamp))
    p.read_all('offset 3 .. stop offset 5', sub('foo', startPosition=api_pb2.OFFSET, startOffset=3, stopPosition=api_pb2.STOP_OFFSET, stopOffset=5))
    p.read_all('stop offset past the end', sub('foo', startPosition=api_pb2.OFFSET, startOffset=8, stopPosition=api_pb2.STOP_OFFSET, stopOffset=20), expect=2)
    p.read_all('latest + stop latest', sub('foo', startPosition=api_pb2.LATEST, stopPosition=api_pb2.STOP_LATEST))
    p.read_all('timestamp before everything', sub('foo', startPosition=api_pb2.TIMESTAMP, startTimestamp=1, stopPosition=api_pb2.STOP_OFFSET, stopOffset=1))
    p.read_all('timestamp after everything', sub('foo', startPosition=api_pb2.TIMESTAMP, startTimestamp=acks[9].receptionTimestamp + 10**12), expect=0)
    p.read_all('stop timestamp before everything', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_TIMESTAMP, stopTimestamp=1))


@scenario('B22 stop offset before start offset')
def b22(p):
    create(p, 'foo')
    fill(p, 'foo', 5)
    p.read_all('start 3 stop 1', sub('foo', startPosition=api_pb2.OFFSET, startOffset=3, stopPosition=api_pb2.STOP_OFFSET, stopOffset=1))
    p.read_all('stop timestamp before start timestamp', sub('foo', startPosition=api_pb2.TIMESTAMP, startTimestamp=10**19 // 2,
                                                            stopPosition=api_pb2.STOP_TIMESTAMP, stopTimestamp=1))


@scenario('B23 cursors', config={'cursors.stream.partitions': 5})
def b23(p):
    create(p, 'foo', partitions=5)
    r = p.call('fetch unknown', 'FetchCursor', api_pb2.FetchCursorRequest(cursorId='abc', stream='foo', partition=2))
    if r is not None:
        p.see('fetch unknown offset', r.offset)
    for offset in (5, 10):
        p.call(f'set {offset}', 'SetCursor', api_pb2.SetCursorRequest(cursorId='abc', stream='foo', partition=2, offset=offset))
        r = p.call(f'fetch after set {offset}', 'FetchCursor', api_pb2.FetchCursorRequest(cursorId='abc', stream='foo', partition=2))
        if r is not None:
            p.see(f'fetch after set {offset} offset', r.offset)
    p.call('set empty cursor id', 'SetCursor', api_pb2.SetCursorRequest(cursorId='', stream='foo', partition=2, offset=1))
    p.call('set empty stream', 'SetCursor', api_pb2.SetCursorRequest(cursorId='abc', stream='', partition=2, offset=1))
    p.call('fetch empty cursor id', 'FetchCursor', api_pb2.FetchCursorRequest(cursorId='', stream='foo', partition=2))
    p.call('set missing stream', 'SetCursor', api_pb2.SetCursorRequest(cursorId='abc', stream='nope', partition=0, offset=1))
    p.call('set missing partition', 'SetCursor', api_pb2.SetCursorRequest(cursorId='abc', stream='foo', partition=9, offset=1))
    p.call('fetch missing stream', 'FetchCursor', api_pb2.FetchCursorRequest(cursorId='abc', stream='nope', partition=0))
    p.metadata('metadata', ['__cursors'])


@scenario('B24 cursors disabled')
def b24(p):
    create(p, 'foo')
    p.call('set', 'SetCursor', api_pb2.SetCursorRequest(cursorId='abc', stream='foo', partition=0, offset=1))
    p.call('fetch', 'FetchCursor', api_pb2.FetchCursorRequest(cursorId='abc', stream='foo', partition=0))


def occ(p, name):
    create(p, name, optimisticConcurrencyControl=flag(True))


@scenario('B25 OCC stream with AckPolicy NONE')
def b25(p):
    occ(p, 'foo')
    p.publish_async('async NONE', [api_pb2.PublishRequest(stream='foo', value=b'x', expectedOffset=0, ackPolicy=api_pb2.NONE, correlationId='c')], 1)
    p.publish('unary NONE', stream='foo', value=b'x', expectedOffset=0, ackPolicy=api_pb2.NONE)
    p.fetch_partition('after', 'foo')


@scenario('B26 OCC expected offsets on an empty stream')
def b26(p):
    occ(p, 'foo')
    p.publish_async('async', [api_pb2.PublishRequest(stream='foo', value=b'x', expectedOffset=100, correlationId='a'),
                              api_pb2.PublishRequest(stream='foo', value=b'x', expectedOffset=-1, correlationId='b')], 2)


@scenario('B27 OCC sequence and a stale writer (Q3, Q4)')
def b27(p):
    occ(p, 'foo')
    p.publish_async('async', [api_pb2.PublishRequest(stream='foo', value=b'a', expectedOffset=0, correlationId='a'),
                              api_pb2.PublishRequest(stream='foo', value=b'b', expectedOffset=1, correlationId='b')], 2)
    p.publish_async('second client', [api_pb2.PublishRequest(stream='foo', value=b'c', expectedOffset=0, correlationId='c')], 1)
    p.publish('unary stale (Q4)', stream='foo', value=b'd', expectedOffset=0)
    p.publish('unary default expected offset 0 (Q3)', stream='foo', value=b'd', expectedOffset=0)
    r = p.fetch_partition('metadata', 'foo')
    if r is not None:
        p.publish('unary newest+1', stream='foo', value=b'e', expectedOffset=r.metadata.newestOffset + 1)
    p.publish('unary expected offset on a plain stream', stream='plain', value=b'x', expectedOffset=5)


@scenario('B28 encryption with a bad key', env={'LIFTBRIDGE_ENCRYPTION_KEY': 'something-in-correct'})
def b28_bad(p):
    cs('create encrypted', p, name='foo', subject='foo', encryption=flag(True))
    cs('create plain', p, name='bar', subject='bar')


@scenario('B28 encryption with a 16-byte key', env={'LIFTBRIDGE_ENCRYPTION_KEY': '0123456789abcdef'})
def b28_good(p):
    cs('create encrypted', p, name='foo', subject='foo', encryption=flag(True))
    fill(p, 'foo', 2)
    p.read_all('read back', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))


@scenario('B29 FetchMetadata brokers')
def b29(p):
    p.metadata('metadata')


@scenario('B30 FetchPartitionMetadata and its timestamps')
def b30(p):
    create(p, 'foo')
    p.fetch_partition('unknown stream', 'bar')
    p.fetch_partition('unknown partition', 'foo', 3)
    p.fetch_partition('empty', 'foo')
    r1 = p.raw('FetchPartitionMetadata', api_pb2.FetchPartitionMetadataRequest(stream='foo'))
    fill(p, 'foo', 1)
    a = p.raw('FetchPartitionMetadata', api_pb2.FetchPartitionMetadataRequest(stream='foo')).metadata.messagesReceivedTimestamps
    fill(p, 'foo', 1)
    b = p.raw('FetchPartitionMetadata', api_pb2.FetchPartitionMetadataRequest(stream='foo')).metadata.messagesReceivedTimestamps
    p.see('before any publish', (r1.metadata.messagesReceivedTimestamps.firstTimestamp, r1.metadata.messagesReceivedTimestamps.latestTimestamp))
    p.see('after one: first == latest', a.firstTimestamp == a.latestTimestamp)
    p.see('after two: first unchanged, latest later', (b.firstTimestamp == a.firstTimestamp, b.latestTimestamp > a.latestTimestamp))
    p.fetch_partition('after two', 'foo')
    p.raw('PauseStream', api_pb2.PauseStreamRequest(name='foo'))
    p.fetch_partition('paused', 'foo')
    p.raw('SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='foo', readonly=True))
    p.fetch_partition('paused and readonly', 'foo')


@scenario('B31 PauseStream and resume by publish')
def b31(p):
    create(p, 'foo', partitions=2)
    p.call('pause missing stream', 'PauseStream', api_pb2.PauseStreamRequest(name='bar'))
    p.call('pause missing stream, partition 0', 'PauseStream', api_pb2.PauseStreamRequest(name='bar', partitions=[0]))
    p.call('pause all', 'PauseStream', api_pb2.PauseStreamRequest(name='foo'))
    p.call('pause all again', 'PauseStream', api_pb2.PauseStreamRequest(name='foo'))
    p.metadata('paused', ['foo'])
    p.publish('publish p0', stream='foo', partition=0, value=b'x')
    p.metadata('after publish to p0', ['foo'])
    p.read_all('p0', sub('foo', startPosition=api_pb2.EARLIEST), expect=1)
    p.read_all('subscribe to paused p1', sub('foo', partition=1, startPosition=api_pb2.EARLIEST))
    p.read_all('subscribe to paused p1 with resume', sub('foo', partition=1, startPosition=api_pb2.EARLIEST, resume=True), expect=0)
    p.fetch_partition('p1 after resume subscription', 'foo', 1)


@scenario('B32 PausePartitions with ResumeAll')
def b32(p):
    create(p, 'foo', partitions=2)
    p.call('pause partition 99', 'PauseStream', api_pb2.PauseStreamRequest(name='foo', partitions=[99]))
    p.call('pause p0 resumeAll', 'PauseStream', api_pb2.PauseStreamRequest(name='foo', partitions=[0], resumeAll=True))
    p.fetch_partition('p0 paused', 'foo', 0)
    p.fetch_partition('p1 not paused', 'foo', 1)
    p.publish('publish p1', stream='foo', partition=1, value=b'x')
    p.fetch_partition('p0 after', 'foo', 0)
    p.fetch_partition('p1 after', 'foo', 1)


@scenario('B33 SetStreamReadonly')
def b33(p):
    create(p, 'foo', partitions=2)
    p.call('readonly all', 'SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='foo', readonly=True))
    p.publish('publish p0', stream='foo', partition=0, value=b'x')
    p.publish('publish p1', stream='foo', partition=1, value=b'x')
    p.publish_async('async p1', [api_pb2.PublishRequest(stream='foo', partition=1, value=b'x', correlationId='c', expectedOffset=-1)], 1)
    p.call('PublishToSubject p0', 'PublishToSubject', api_pb2.PublishToSubjectRequest(subject='foo', value=b'x'))
    p.call('writable all', 'SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='foo', readonly=False))
    p.call('readonly p0', 'SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='foo', partitions=[0], readonly=True))
    p.call('readonly p0 again', 'SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='foo', partitions=[0], readonly=True))
    p.publish('publish p0 again', stream='foo', partition=0, value=b'x')
    p.publish('publish p1 again', stream='foo', partition=1, value=b'x')
    p.call('readonly missing stream', 'SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='bar', readonly=True))
    p.call('readonly missing stream, partition 0', 'SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='bar', partitions=[0], readonly=True))
    p.call('readonly partition 99', 'SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='foo', partitions=[99], readonly=True))
    p.metadata('metadata', ['foo'])


@scenario('B34 readonly ends subscriptions at the end of the log')
def b34(p):
    create(p, 'foo')
    fill(p, 'foo', 1)
    live = p.subscribe(sub('foo', startPosition=api_pb2.EARLIEST))
    live.take('live before readonly', 1, cancel=False)
    p.raw('SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='foo', readonly=True))
    live.end('live before readonly')
    p.read_all('earliest on readonly', sub('foo', startPosition=api_pb2.EARLIEST))
    p.read_all('new only on readonly', sub('foo'))
    p.raw('SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='foo', readonly=False))
    p.read_all('earliest after readonly off', sub('foo', startPosition=api_pb2.EARLIEST), expect=1)


@scenario('B35 active subscription ends when the stream is deleted')
def b35_delete(p):
    create(p, 'foo')
    s = p.subscribe(sub('foo'))
    s.quiet('live')
    p.raw('DeleteStream', api_pb2.DeleteStreamRequest(name='foo'))
    s.end('live')


@scenario('B35 active subscription ends when the partition is paused')
def b35_pause(p):
    create(p, 'foo')
    s = p.subscribe(sub('foo'))
    s.quiet('live')
    p.raw('PauseStream', api_pb2.PauseStreamRequest(name='foo'))
    s.end('live')


@scenario('B36 Publish to a missing stream or partition')
def b36(p):
    create(p, 'foo')
    p.publish('missing stream', stream='bar', value=b'x')
    p.publish('partition 42', stream='foo', partition=42, value=b'x')
    p.publish('partition -1', stream='foo', partition=-1, value=b'x')
    p.publish_async('async', [api_pb2.PublishRequest(stream='bar', value=b'x', correlationId='a', expectedOffset=-1),
                              api_pb2.PublishRequest(stream='foo', partition=42, value=b'x', correlationId='b', expectedOffset=-1)], 2)
    p.call('PublishToSubject with no subject', 'PublishToSubject', api_pb2.PublishToSubjectRequest(value=b'x'))


def activity(p, n):
    """The first n events of the activity stream, normalised."""
    call = p.channel.unary_stream('/proto.API/Subscribe', request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=api_pb2.Message.FromString)(
        sub('__activity', startPosition=api_pb2.EARLIEST), timeout=WAIT)
    events = []
    try:
        for i, m in enumerate(call):
            if i == 0:
                continue
            e = api_pb2.ActivityStreamEvent()
            e.ParseFromString(m.value)
            op = api_pb2.ActivityStreamOp.Name(e.op)
            body = [(f, v) for f, v in e.ListFields() if f.name not in ('id', 'op')]
            events.append((op, 'id nonzero' if e.id else 'id zero', {f.name: str(v).replace('\n', ' ').strip() for f, v in body}))
            if len(events) == n:
                call.cancel()
                break
    except grpc.RpcError as err:
        events.append(('end', status(err)))
    return events


@scenario('B38 activity stream events', config={'activity.stream.enabled': 'true'})
def b38(p):
    ok = wait_for(lambda: any(s.name == '__activity' for s in p.raw('FetchMetadata', api_pb2.FetchMetadataRequest()).streamMetadata))
    p.see('__activity exists', bool(ok))
    p.metadata('metadata', ['__activity'])
    create(p, 'foo', partitions=2)
    p.raw('PauseStream', api_pb2.PauseStreamRequest(name='foo', partitions=[1], resumeAll=True))
    fill(p, 'foo', 1)
    p.raw('SetStreamReadonly', api_pb2.SetStreamReadonlyRequest(name='foo', partitions=[0], readonly=True))
    p.raw('DeleteStream', api_pb2.DeleteStreamRequest(name='foo'))
    events = wait_for(lambda: (lambda e: e if len(e) >= 6 else None)(activity(p, 6)))
    p.see('events', events or activity(p, 6))


@scenario('B39 auto-pause after idle time')
def b39(p):
    create(p, 'foo', autoPauseTime=i64(100))
    create(p, 'bar', autoPauseTime=i64(100), autoPauseDisableIfSubscribers=flag(True))
    nats = Nats(p.server.nats_port)
    for _ in range(3):
        nats.pub('foo', b'plain')
        nats.pub('bar', b'plain')
    nats.flush()
    live = p.subscribe(sub('bar'))
    live.quiet('bar subscriber')
    paused = wait_for(lambda: p.raw('FetchMetadata', api_pb2.FetchMetadataRequest(streams=['foo'])).streamMetadata[0].partitions[0].paused)
    p.see('foo paused within 10 s', bool(paused))
    p.metadata('metadata', ['foo', 'bar'])
    p.read_all('foo after the pause', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))
    nats.close()


def envelope(payload, magic=b'\xb9\x0e\x43\xb4', version=0, header_len=8, flags=0, msg_type=0, crc=None):
    head = magic + bytes([version, header_len, flags, msg_type])
    if crc is not None:
        head += struct.pack('>I', crc)
    return head + payload


@scenario('B42 NATS payloads: envelopes good and bad, plain')
def b42(p):
    create(p, 'foo')
    good = api_pb2.Message(key=b'k', value=b'v', headers={'subject': b'mine'}, correlationId='cid', offset=-1)
    body = good.SerializeToString()
    nats = Nats(p.server.nats_port)
    for payload in (envelope(body), b'plain', b'\xb9\x0e\x43', envelope(body, magic=b'XXXX'), envelope(body, version=1),
                    envelope(body, msg_type=1), envelope(body, flags=1), envelope(body, header_len=12, flags=1, crc=1),
                    envelope(b'\xff\xff\xff')):
        nats.pub('foo', payload, reply='the.reply')
    nats.flush()
    nats.close()
    p.read_all('stored', sub('foo', startPosition=api_pb2.EARLIEST), expect=9)


# --- Appendix A quirks --------------------------------------------------------------------

@scenario('Q5 Ack.partitionSubject for partition 1')
def q5(p):
    create(p, 'foo', partitions=2)
    p.publish('partition 1', stream='foo', partition=1, value=b'x')


@scenario('Q6 server-injected subject and reply headers')
def q6(p):
    create(p, 'foo')
    p.publish('with user headers named subject and reply', stream='foo', value=b'x', headers={'subject': b'mine', 'reply': b'mine', 'other': b'1'})
    p.read_all('read back', sub('foo', startPosition=api_pb2.EARLIEST), expect=1)


@scenario('Q8 reverse subscriptions')
def q8(p):
    create(p, 'foo')
    p.read_all('reverse on empty', sub('foo', startPosition=api_pb2.LATEST, reverse=True))
    fill(p, 'foo', 3)
    p.read_all('reverse from latest', sub('foo', startPosition=api_pb2.LATEST, reverse=True))
    p.read_all('reverse from offset 1', sub('foo', startPosition=api_pb2.OFFSET, startOffset=1, reverse=True))
    p.read_all('reverse with stop latest', sub('foo', startPosition=api_pb2.LATEST, stopPosition=api_pb2.STOP_LATEST, reverse=True))


@scenario('Q9 readISRReplica on a single node')
def q9(p):
    create(p, 'foo')
    fill(p, 'foo', 1)
    p.read_all('read ISR replica', sub('foo', startPosition=api_pb2.EARLIEST, readISRReplica=True), expect=1)


@scenario('Q11 negative partition count')
def q11(p):
    cs('partitions -1', p, name='foo', subject='foo', partitions=-1)
    p.see('server still running', bool(p.server.alive() and _answers(p)))


def _answers(p):
    try:
        unary(p.channel, 'FetchMetadata', api_pb2.FetchMetadataRequest(), api_pb2.FetchMetadataResponse, 1)
        return True
    except Exception:  # noqa: BLE001 - any failure means "does not answer"
        return False


@scenario('Q14 error acks to the ack inbox whatever the policy')
def q14(p):
    occ(p, 'foo')
    nats = Nats(p.server.nats_port)
    nats.sub('inbox.>')
    p.publish_async('async wrong offset, NONE', [api_pb2.PublishRequest(
        stream='foo', value=b'x', expectedOffset=7, ackPolicy=api_pb2.NONE, ackInbox='inbox.a', correlationId='a')], 1)
    got = nats.next_msg(QUIET * 2)
    if got is None:
        p.see('NATS ack', 'none')
    else:
        a = api_pb2.Ack()
        a.ParseFromString(got[1][8:])
        p.ack('NATS ack', a)
    nats.close()


@scenario('Q15 handshake frame and PublishAsync echo fields')
def q15(p):
    create(p, 'foo')
    p.publish_async('async', [api_pb2.PublishRequest(stream='foo', value=b'a', correlationId='a', ackPolicy=api_pb2.LEADER, expectedOffset=-1),
                              api_pb2.PublishRequest(stream='foo', value=b'b', correlationId='b', ackPolicy=api_pb2.ALL, expectedOffset=-1),
                              api_pb2.PublishRequest(stream='foo', value=b'c', correlationId='c', ackPolicy=api_pb2.NONE, expectedOffset=-1),
                              api_pb2.PublishRequest(stream='foo', value=b'd', ackPolicy=api_pb2.LEADER, expectedOffset=-1),
                              api_pb2.PublishRequest(stream='foo', value=b'e', correlationId='e', ackInbox='some.inbox', expectedOffset=-1)], 4)
    p.read_all('read back', sub('foo', startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))


@scenario('B31 PublishToSubject to a paused partition')
def b31_subject(p):
    create(p, 'foo')
    p.raw('PauseStream', api_pb2.PauseStreamRequest(name='foo'))
    p.call('PublishToSubject with a deadline', 'PublishToSubject', api_pb2.PublishToSubjectRequest(subject='foo', value=b'x'), timeout=2)
    p.metadata('metadata', ['foo'])


@scenario('B31 Subscribe to a paused partition that holds messages')
def b31_subscribe(p):
    create(p, 'foo')
    fill(p, 'foo', 1)
    p.raw('PauseStream', api_pb2.PauseStreamRequest(name='foo'))
    p.read_all('earliest', sub('foo', startPosition=api_pb2.EARLIEST))
    p.read_all('earliest with resume', sub('foo', startPosition=api_pb2.EARLIEST, resume=True), expect=1)


# --- consumer groups (§3.8) ---------------------------------------------------------------
# Epochs differ in value (Liftbridge's Raft index, Sluice's store revision): only 0 / nonzero and their order
# are recorded. Which partitions a member holds may differ (Sluice's sticky rule); counts and coverage do not.

def join(p, label, group, consumer, *streams):
    return p.call(label, 'JoinConsumerGroup', api_pb2.JoinConsumerGroupRequest(groupId=group, consumerId=consumer, streams=list(streams)))


def epoch_of(value):
    return 'zero' if value == 0 else 'nonzero'


def seen_join(p, label, r):
    if r is not None:
        p.see(f'{label} response', {'coordinator': p.server_name(r.coordinator), 'epoch': epoch_of(r.epoch),
                                    'consumerTimeout': r.consumerTimeout, 'coordinatorTimeout': r.coordinatorTimeout})
    return r


def fetch(p, label, group, consumer, epoch):
    r = p.call(label, 'FetchConsumerGroupAssignments', api_pb2.FetchConsumerGroupAssignmentsRequest(groupId=group, consumerId=consumer, epoch=epoch))
    if r is None:
        return None
    return {a.stream: sorted(a.partitions) for a in r.assignments}


def group_metadata(p, label, group):
    r = p.raw('FetchMetadata', api_pb2.FetchMetadataRequest(groups=[group]))
    g = r.groupMetadata[0]
    p.see(label, {'groupId': g.groupId, 'error': api_pb2.ConsumerGroupMetadata.Error.Name(g.error),
                  'coordinator': p.server_name(g.coordinator), 'epoch': epoch_of(g.epoch)})
    return g


@scenario('G1 JoinConsumerGroup validation')
def g1(p):
    create(p, 'foo')
    join(p, 'no group', '', 'c1', 'foo')
    join(p, 'no consumer', 'g', '', 'foo')
    join(p, 'no streams', 'g', 'c1')
    join(p, 'missing stream', 'g', 'c1', 'nope')
    group_metadata(p, 'group after the failed joins', 'g')
    seen_join(p, 'join', join(p, 'join', 'g', 'c1', 'foo'))
    join(p, 'join again', 'g', 'c1', 'foo')
    join(p, 'second member, missing stream', 'g', 'c2', 'nope')


@scenario('G2 joins, epochs and assignments')
def g2(p):
    create(p, 'foo', partitions=6)
    first = seen_join(p, 'c1 join', join(p, 'c1 join', 'g', 'c1', 'foo'))
    p.see('c1 alone', fetch(p, 'c1 fetch', 'g', 'c1', first.epoch))
    second = seen_join(p, 'c2 join', join(p, 'c2 join', 'g', 'c2', 'foo'))
    p.see('epoch grew', second.epoch > first.epoch)
    fetch(p, 'c1 fetch with the old epoch', 'g', 'c1', first.epoch)
    third = seen_join(p, 'c3 join', join(p, 'c3 join', 'g', 'c3', 'foo'))
    g = group_metadata(p, 'metadata', 'g')
    p.see('metadata epoch is the last join', g.epoch == third.epoch)
    got = [fetch(p, f'{c} fetch', 'g', c, third.epoch) for c in ('c1', 'c2', 'c3')]
    p.see('counts', [len(a.get('foo', [])) for a in got])
    p.see('all partitions once', sorted(x for a in got for x in a.get('foo', [])))
    fetch(p, 'stranger fetch', 'g', 'c9', third.epoch)
    fetch(p, 'unknown group fetch', 'nope', 'c1', 0)
    fetch(p, 'fetch without group', '', 'c1', 0)


@scenario('G3 leave')
def g3(p):
    create(p, 'foo', partitions=4)
    join(p, 'c1 join', 'g', 'c1', 'foo')
    join(p, 'c2 join', 'g', 'c2', 'foo')
    p.call('leave unknown group', 'LeaveConsumerGroup', api_pb2.LeaveConsumerGroupRequest(groupId='nope', consumerId='c1'))
    p.call('leave as stranger', 'LeaveConsumerGroup', api_pb2.LeaveConsumerGroupRequest(groupId='g', consumerId='c9'))
    p.call('leave without consumer', 'LeaveConsumerGroup', api_pb2.LeaveConsumerGroupRequest(groupId='g'))
    p.call('c2 leaves', 'LeaveConsumerGroup', api_pb2.LeaveConsumerGroupRequest(groupId='g', consumerId='c2'))
    g = group_metadata(p, 'metadata after c2 left', 'g')
    p.see('c1 after c2 left', fetch(p, 'c1 fetch', 'g', 'c1', g.epoch))
    p.call('c1 leaves', 'LeaveConsumerGroup', api_pb2.LeaveConsumerGroupRequest(groupId='g', consumerId='c1'))
    group_metadata(p, 'metadata after the last leave', 'g')


@scenario('G4 ReportConsumerGroupCoordinator')
def g4(p):
    create(p, 'foo')
    r = join(p, 'join', 'g', 'c1', 'foo')

    def report(label, group, consumer, coordinator, epoch):
        p.call(label, 'ReportConsumerGroupCoordinator', api_pb2.ReportConsumerGroupCoordinatorRequest(
            groupId=group, consumerId=consumer, coordinator=coordinator, epoch=epoch))

    report('no coordinator', 'g', 'c1', '', 0)
    report('no consumer', 'g', '', r.coordinator, 0)
    report('unknown group', 'nope', 'c1', r.coordinator, 0)
    report('stranger', 'g', 'c9', r.coordinator, r.epoch)
    report('the live coordinator', 'g', 'c1', r.coordinator, r.epoch)
    group_metadata(p, 'metadata after the report', 'g')


@scenario('G5 Subscribe as a group member')
def g5(p):
    create(p, 'foo', partitions=2)
    fill(p, 'foo', 1, partition=0)
    fill(p, 'foo', 1, partition=1)
    first = join(p, 'c1 join', 'g', 'c1', 'foo')
    second = join(p, 'c2 join', 'g', 'c2', 'foo')
    mine = fetch(p, 'c1 fetch', 'g', 'c1', second.epoch)['foo'][0]
    theirs = 1 - mine

    def member(consumer, partition, epoch):
        return sub('foo', partition, startPosition=api_pb2.EARLIEST, consumer=api_pb2.Consumer(groupId='g', consumerId=consumer, groupEpoch=epoch))

    s = p.subscribe(member('c1', mine, second.epoch))
    s.take('assigned, current epoch', 1)
    s = p.subscribe(member('c1', theirs, second.epoch))
    s.take('not assigned, current epoch', 1)
    s = p.subscribe(member('c1', mine, first.epoch))
    s.take('assigned, stale epoch', 1)
    s = p.subscribe(member('c9', mine, second.epoch))
    s.take('not a member', 1)
    replica = member('c1', mine, second.epoch)
    replica.readISRReplica = True
    s = p.subscribe(replica)
    s.take('readISRReplica', 1)


@scenario('G6 a silent member expires', config={'groups.consumer.timeout': '1s'})
def g6(p):
    create(p, 'foo', partitions=4)
    join(p, 'c1 join', 'g', 'c1', 'foo')
    join(p, 'c2 join', 'g', 'c2', 'foo')

    def c1_has_all():
        g = p.raw('FetchMetadata', api_pb2.FetchMetadataRequest(groups=['g'])).groupMetadata[0]
        try:
            r = unary(p.channel, 'FetchConsumerGroupAssignments', api_pb2.FetchConsumerGroupAssignmentsRequest(groupId='g', consumerId='c1', epoch=g.epoch),
                      api_pb2.FetchConsumerGroupAssignmentsResponse)
        except grpc.RpcError:
            return False
        return sum(len(a.partitions) for a in r.assignments) == 4

    p.see('c1 gets every partition while c2 is silent', bool(wait_for(c1_has_all)))
    g = group_metadata(p, 'metadata', 'g')
    fetch(p, 'c2 fetch after expiry', 'g', 'c2', g.epoch)


@scenario('G7 a deleted stream leaves the group')
def g7(p):
    create(p, 'foo', partitions=2)
    create(p, 'bar', partitions=2)
    r = join(p, 'join', 'g', 'c1', 'foo', 'bar')
    p.see('before', fetch(p, 'fetch before', 'g', 'c1', r.epoch))
    p.raw('DeleteStream', api_pb2.DeleteStreamRequest(name='bar'))
    g = wait_for(lambda: (lambda m: m if m.epoch != r.epoch else None)(p.raw('FetchMetadata', api_pb2.FetchMetadataRequest(groups=['g'])).groupMetadata[0]))
    p.see('epoch changed', g is not None)
    if g is not None:
        p.see('after', fetch(p, 'fetch after', 'g', 'c1', g.epoch))
