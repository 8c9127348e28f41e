#!/usr/bin/env python3
"""Publishes and subscribes through partition leader failovers on a Sluice cluster, behaving as
Liftbridge's own Go client (go-liftbridge) behaves, over grpcio (gRPC's C core).

    python3 cluster.py ADDR=PID ADDR=PID ADDR=PID [--kills 2] [--acks-between 150]

ADDR is a broker's host:port as FetchMetadata lists it, PID its process id (the script SIGKILLs the
partition leader's process). Creates a stream with replication factor 3 (min ISR left at the
broker default), runs two publishers and a subscriber concurrently, kills the current leader
--kills times (no restarts: after the second kill one broker is left, and ALL acks go on with the
ISR shrunk to it), then checks the final leader's log. Exits 0 when every check passes; otherwise
prints each failure and exits 1.

What go-liftbridge does when a leader fails, as read in its source (commit 47b5223; v2 is the
current module, the root package is the older v1 API). These are the rules emulated below.

Broker choice
- Metadata comes from FetchMetadata sent to a random connected broker; UNAVAILABLE makes it try
  another one after 50 ms, at most 10 tries. The known addresses are the brokers in the last
  metadata plus the bootstrap list, so a dead bootstrap address is never forgotten.
- v2 publishes (Publish and PublishAsync alike) go over one long-lived PublishAsync stream per
  broker. The broker is picked by a consistent-hash ring over the known addresses, keyed by
  "stream:partition": not the leader. It relies on the server forwarding to the leader.
- v1 Publish is a unary call on one connection to any broker.
- Subscribe goes to the partition leader from the cached metadata; with ReadISRReplica, to a random
  member of the ISR instead. Resume only asks the server to resume a paused partition; it has no
  part in failover.

Publish retries
- v2 never retries a publish because of a status code and never refreshes metadata for one. An
  asyncError in the ack stream goes to the caller as the error. The only retry is when writing to
  the ack stream fails with end-of-stream: it waits 50 ms and writes again on the broker's
  (possibly re-dialled) stream, at most 5 times, then returns the error. FAILED_PRECONDITION on
  that write means "readonly partition".
- The v2 ack-stream reader re-dials the same broker when the stream ends with UNAVAILABLE: at most
  5 tries 50 ms apart. If those fail, or the stream ends any other way, the reader stops for good.
  The client never dials that broker again, because a metadata refresh keeps existing
  connections. Every later publish hashed to that broker fails with end-of-stream, even after the
  broker is back. Connect also fails outright if any listed address is down. An application has
  to build a new client with addresses that answer; the emulated application does that.
- Acks are matched by correlation id. A message without an ack after AckWaitTime (5 s by default,
  or the context's deadline) fails with "ack timeout". It is never resent by the library.
- v1 Publish retries only on UNAVAILABLE. It dials the known addresses in random order, takes the
  first that connects, and calls again at once, at most 10 times in all. Every other status, DEADLINE_EXCEEDED included, goes to the caller.
- Neither client sets a message id, so an application that retries after a lost ack may store a
  message twice.

Subscribe
- Opening a subscription takes at most 5 tries. Before each retry it sleeps 10 + 50*i ms and
  refreshes metadata. It retries when no leader is known, when the call fails with UNAVAILABLE,
  and when the first (empty handshake) frame fails with FAILED_PRECONDITION ("not the leader") or
  UNAVAILABLE. NOT_FOUND means no such partition, and RESOURCE_EXHAUSTED means readonly. Any other
  error is returned.
- An established subscription that ends with UNAVAILABLE is resubscribed, unless the client was
  closed. It starts at the last received offset + 1 (v2 keeps the original start when nothing was
  received; v1 starts at 1 then). Each attempt is a full open as above, followed by a pause of
  1 to 1.5 s. It gives up after ResubscribeWaitTime (30 s by default) and hands the last error to
  the handler.
- NOT_FOUND (stream deleted), FAILED_PRECONDITION (partition paused) and RESOURCE_EXHAUSTED (end of
  a readonly partition or stop position) end the subscription without a resubscribe. So does a
  stream that closes with status OK. CANCELLED ends it silently.

The emulation here: a v2-style publisher and a v1-style publisher, each publishing unique payloads
one at a time with ack policy ALL. Each retries a failed message after 100 ms, as an application
would, and the v2 one rebuilds its client when the library gave up on a broker. A v2-style
subscriber starts at the earliest offset, without ReadISRReplica. Payloads are unique, so the
checks can tell a message stored twice (a retry after a lost ack) from a lost or misplaced one.

Where the emulation differs: the hash ring uses CRC-32 points rather than serialx/hashring's MD5
ones (a different broker may be picked, by the same rule); a re-dial waits up to 0.2 s for the
connection where grpc-go fails at once on a refused port; grpcio cannot report a failed write, so
"the stream has ended" stands for Go's io.EOF from Send.
"""
import argparse
import bisect
import collections
import os
import queue
import random
import signal
import sys
import threading
import time
import traceback
import uuid
import zlib

import grpc

from protos import generate

ACK_WAIT = 5.0            # go-liftbridge's default AckWaitTime
RESUBSCRIBE_WAIT = 30.0   # go-liftbridge's default ResubscribeWaitTime
DIAL_WAIT = 0.2           # how long a re-dial waits for the connection (Go fails at once on a refused port)
APP_RETRY_PAUSE = 0.1     # the application's pause before it publishes a failed message again
STREAM = 'failover'
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('brokers', nargs='+', metavar='ADDR=PID')
    parser.add_argument('--kills', type=int, default=2, help='leader SIGKILLs (at most brokers - 1)')
    parser.add_argument('--acks-between', type=int, default=150, help='acks before the first kill, between kills and after the last')
    args = parser.parse_args()
    pids = {}
    for item in args.brokers:
        addr, _, pid = item.rpartition('=')
        if not addr or not pid.isdigit():
            parser.error(f'expected host:port=pid, got {item!r}')
        pids[addr] = int(pid)
    if not 1 <= args.kills < len(pids):
        parser.error('--kills must leave at least one broker')
    return pids, args.kills, args.acks_between


PIDS, KILLS, ACKS_BETWEEN = parse_args()
generate()
import api_pb2  # noqa: E402  (generated above)


def log(text):
    print(f'{time.strftime("%H:%M:%S")} {text}', flush=True)


def serialize(message):
    return message.SerializeToString()


class Broker:
    """One gRPC channel to one broker address."""

    def __init__(self, addr):
        self.addr = addr
        self.channel = grpc.insecure_channel(addr)

    def call(self, name, request, response, timeout=5):
        method = self.channel.unary_unary(f'/proto.API/{name}', request_serializer=serialize, response_deserializer=response.FromString)
        return method(request, timeout=timeout)

    def subscribe(self, request):
        method = self.channel.unary_stream('/proto.API/Subscribe', request_serializer=serialize, response_deserializer=api_pb2.Message.FromString)
        return method(request)

    def close(self):
        self.channel.close()


class Metadata:
    def __init__(self, response):
        self.addrs = {b.id: f'{b.host}:{b.port}' for b in response.brokers}
        self.partitions = {(s.name, p.id): p for s in response.streamMetadata for p in s.partitions.values()}


class LiftbridgeStyleClient:
    """The client rules of go-liftbridge v2 (see the top of this file), on grpcio."""

    def __init__(self, bootstrap):
        self.bootstrap = list(bootstrap)
        self.lock = threading.Lock()
        self.brokers = {a: Broker(a) for a in self.bootstrap}
        self.ack_streams = {}
        self.pending = {}
        self.open_retries = collections.Counter()  # why opening a subscription was tried again
        self.metadata = None
        self.update_metadata()
        for addr in self.known_addrs():
            self.ack_streams[addr] = AckStream(addr, self.ack_received)  # raises when a broker is down, as Connect fails

    def close(self):
        for stream in self.ack_streams.values():
            stream.close()
        for broker in self.brokers.values():
            broker.close()

    def known_addrs(self):
        with self.lock:
            return sorted(set(self.metadata.addrs.values()) | set(self.bootstrap))

    def resilient_rpc(self, rpc):
        error = None
        for _ in range(10):
            broker = random.choice(list(self.brokers.values()))
            try:
                return rpc(broker)
            except grpc.RpcError as e:
                if e.code() != UNAVAILABLE:
                    raise
                error = e
                time.sleep(0.05)
        raise error

    def update_metadata(self):
        response = self.resilient_rpc(lambda b: b.call('FetchMetadata', api_pb2.FetchMetadataRequest(), api_pb2.FetchMetadataResponse))
        metadata = Metadata(response)
        with self.lock:
            self.metadata = metadata
            for addr in metadata.addrs.values():
                if addr not in self.brokers:
                    self.brokers[addr] = Broker(addr)
        return metadata

    def try_update_metadata(self):
        try:
            self.update_metadata()
        except grpc.RpcError:
            pass  # go-liftbridge ignores a failed refresh here and retries with what it has

    # ---- publish (v2: PublishAsync stream to the hashed broker) ----

    def hashed_addr(self, stream, partition):
        # A consistent-hash ring over the known addresses, as go-liftbridge's serialx/hashring: a partition
        # sticks to one broker whatever the leader is.
        ring = sorted((zlib.crc32(f'{addr}#{i}'.encode()), addr) for addr in self.known_addrs() for i in range(40))
        key = zlib.crc32(f'{stream}:{partition}'.encode())
        return ring[bisect.bisect(ring, (key, '')) % len(ring)][1]

    def publish(self, stream, value, on_send):
        """Returns the Ack, or raises PublishError (asyncError, ack timeout, end of stream)."""
        cid = uuid.uuid4().hex
        request = api_pb2.PublishRequest(stream=stream, partition=0, value=value, correlationId=cid,
                                         ackPolicy=api_pb2.ALL, expectedOffset=-1)
        waiter = AckWaiter()
        with self.lock:
            self.pending[cid] = waiter
        ack_stream = self.ack_streams[self.hashed_addr(stream, 0)]
        for _ in range(5):
            if ack_stream.send(request):
                on_send()
                break
            time.sleep(0.05)
        else:
            self.take_pending(cid)
            raise PublishError('end of stream', gave_up=ack_stream.gave_up)
        if not waiter.done.wait(ACK_WAIT):
            self.take_pending(cid)
            raise PublishError('ack timeout')
        if waiter.response.HasField('asyncError'):
            e = waiter.response.asyncError
            raise PublishError(f'asyncError {api_pb2.PublishAsyncError.Code.Name(e.code)} "{e.message}"')
        return waiter.response.ack

    def take_pending(self, cid):
        with self.lock:
            return self.pending.pop(cid, None)

    def ack_received(self, response):
        cid = response.correlationId if response.HasField('asyncError') else response.ack.correlationId
        waiter = self.take_pending(cid)
        if waiter is not None:
            waiter.response = response
            waiter.done.set()

    # ---- subscribe ----

    def leader_addr(self, stream, partition, read_isr_replica=False):
        with self.lock:
            metadata = self.metadata
        p = metadata.partitions.get((stream, partition))
        if p is None:
            raise LookupError('no known partition')
        if read_isr_replica:
            return metadata.addrs[random.choice(list(p.isr))]
        if not p.leader or p.leader not in metadata.addrs:
            raise LookupError('no known leader for partition')
        return metadata.addrs[p.leader]

    def open_subscription(self, request):
        error = None
        for i in range(5):
            pause = (10 + 50 * i) / 1000
            try:
                addr = self.leader_addr(request.stream, request.partition, request.readISRReplica)
            except LookupError as e:
                error = e
                self.open_retries[str(e)] += 1
                time.sleep(pause)
                self.try_update_metadata()
                continue
            with self.lock:
                broker = self.brokers.setdefault(addr, Broker(addr))
            call = broker.subscribe(request)
            try:
                next(call)  # the empty frame that confirms the subscription
            except grpc.RpcError as e:
                if e.code() in (UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION):
                    error = e
                    self.open_retries[f'{e.code().name} "{e.details()}"' if e.code() != UNAVAILABLE else 'UNAVAILABLE'] += 1
                    time.sleep(pause)
                    self.try_update_metadata()
                    continue
                raise
            except StopIteration:
                raise RuntimeError(f'{addr}: the subscription ended before its handshake frame') from None
            return call
        raise error


class PublishError(Exception):
    def __init__(self, kind, gave_up=False):
        super().__init__(kind)
        self.kind = kind
        self.gave_up = gave_up


class AckWaiter:
    def __init__(self):
        self.done = threading.Event()
        self.response = None


class AckStream:
    """go-liftbridge v2's PublishAsync stream to one broker, with its re-dial rule."""

    def __init__(self, addr, on_response):
        self.addr = addr
        self.on_response = on_response
        self.lock = threading.Lock()
        self.channel = self.requests = self.call = None
        self.broken = False
        self.gave_up = False
        self.closed = False
        if not self.dial():
            raise ConnectionError(f'{addr} does not answer')
        threading.Thread(target=self.read, daemon=True).start()

    def dial(self):
        channel = grpc.insecure_channel(self.addr)
        try:
            grpc.channel_ready_future(channel).result(timeout=DIAL_WAIT)
        except grpc.FutureTimeoutError:
            channel.close()
            return False
        requests = queue.Queue()

        def feed():
            while (r := requests.get()) is not None:
                yield r

        call = channel.stream_stream('/proto.API/PublishAsync', request_serializer=serialize,
                                     response_deserializer=api_pb2.PublishResponse.FromString)(feed())
        with self.lock:
            old, old_requests = self.channel, self.requests
            self.channel, self.requests, self.call, self.broken = channel, requests, call, False
        if old is not None:
            old_requests.put(None)
            old.close()
        return True

    def send(self, request):
        """False where Go's Send returns io.EOF: the stream has ended."""
        with self.lock:
            if self.broken or self.closed:
                return False
            self.requests.put(request)
            return True

    def read(self):
        while True:
            code = grpc.StatusCode.OK
            try:
                for response in self.call:
                    self.on_response(response)
            except grpc.RpcError as e:
                code = e.code()
            with self.lock:
                self.broken = True
                if self.closed:
                    return
            if code == UNAVAILABLE and any(self.dial() or time.sleep(0.05) for _ in range(5)):
                continue
            self.gave_up = True
            return

    def close(self):
        with self.lock:
            self.closed = True
            requests, channel = self.requests, self.channel
        requests.put(None)
        channel.close()


class Publisher(threading.Thread):
    """An application publishing unique payloads one at a time, retrying a failed one after a pause."""

    def __init__(self, name, stop):
        super().__init__(daemon=True, name=name)
        self.stop = stop
        self.acked = {}           # payload -> offset
        self.ack_times = []       # (monotonic when received, commit timestamp ns)
        self.attempts = collections.Counter()  # payload -> times the application published it
        self.sends = collections.Counter()     # payload -> times the library put it on the wire
        self.current = None
        self.failures = collections.Counter()
        self.rebuilds = 0
        self.error = None

    def run(self):
        try:
            i = 0
            while not self.stop.is_set():
                payload = self.current = f'{self.name}-{i}'
                while True:
                    self.attempts[payload] += 1
                    try:
                        ack = self.publish(payload.encode())
                    except PublishError as e:
                        self.failures[e.kind] += 1
                        self.on_failure(e)
                        time.sleep(APP_RETRY_PAUSE)
                        continue
                    self.acked[payload] = ack.offset
                    self.ack_times.append((time.monotonic(), ack.commitTimestamp))
                    break
                i += 1
        except Exception:  # noqa: BLE001 - reported by the checks
            self.error = traceback.format_exc()

    def on_failure(self, error):
        pass

    def sent(self):
        self.sends[self.current] += 1


class V2Publisher(Publisher):
    def __init__(self, stop):
        super().__init__('v2', stop)
        self.client = connect_answering()

    def publish(self, value):
        return self.client.publish(STREAM, value, self.sent)

    def on_failure(self, error):
        if error.gave_up:
            # go-liftbridge never re-dials a broker whose ack stream gave up: a new client is the only way on.
            self.client.close()
            self.client = connect_answering()
            self.rebuilds += 1
            log(f'v2 publisher: new client, hashing {STREAM}:0 to {self.client.hashed_addr(STREAM, 0)}')


class V1Publisher(Publisher):
    """go-liftbridge v1: unary Publish on one connection; UNAVAILABLE re-dials the first known address that connects, tried in random order."""

    def __init__(self, stop, addrs):
        super().__init__('v1', stop)
        self.addrs = addrs
        self.broker = self.dial()

    def dial(self):
        """go-liftbridge's dialBroker: the known addresses in random order, the first that connects."""
        order = random.sample(self.addrs, len(self.addrs))
        return Broker(next((addr for addr in order if answers(addr)), order[0]))

    def publish(self, value):
        request = api_pb2.PublishRequest(stream=STREAM, value=value, ackPolicy=api_pb2.ALL, expectedOffset=-1)
        for attempt in range(10):
            try:
                self.sent()
                return self.broker.call('Publish', request, api_pb2.PublishResponse, timeout=ACK_WAIT).ack
            except grpc.RpcError as e:
                if e.code() != UNAVAILABLE or attempt == 9:
                    raise PublishError(f'{e.code().name} "{e.details()}"') from None
                self.broker.close()
                self.broker = self.dial()
                log(f'v1 publisher: {e.code().name} "{e.details()}"; re-dialled {self.broker.addr}')
        raise AssertionError('unreachable')


def answers(addr):
    channel = grpc.insecure_channel(addr)
    try:
        grpc.channel_ready_future(channel).result(timeout=DIAL_WAIT)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def connect_answering():
    """A new client over the brokers that answer now (Connect fails if a listed one does not)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return LiftbridgeStyleClient([a for a in PIDS if answers(a)])
        except (ConnectionError, grpc.RpcError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Subscriber(threading.Thread):
    """go-liftbridge v2's Subscribe with its resubscribe rule, from the earliest offset."""

    def __init__(self, client):
        super().__init__(daemon=True, name='subscriber')
        self.client = client
        self.received = []        # (offset, value)
        self.resubscribes = []    # (monotonic, status details)
        self.error = None
        self.lock = threading.Lock()
        self.call = None
        self.stopping = False

    def run(self):
        request = api_pb2.SubscribeRequest(stream=STREAM, startPosition=api_pb2.EARLIEST)
        try:
            self.set_call(self.client.open_subscription(request))
            while True:
                last = -1
                try:
                    for m in self.call:
                        last = m.offset
                        self.received.append((m.offset, m.value))
                    self.error = 'the subscription ended with status OK (go-liftbridge hands io.EOF to the handler and stops)'
                    return
                except grpc.RpcError as e:
                    if self.stopping and e.code() == grpc.StatusCode.CANCELLED:
                        return
                    if e.code() != UNAVAILABLE:
                        self.error = f'the subscription ended with {e.code().name} "{e.details()}": go-liftbridge would not resubscribe'
                        return
                    self.resubscribes.append((time.monotonic(), e.details()))
                if last != -1:
                    request = api_pb2.SubscribeRequest(stream=STREAM, startPosition=api_pb2.OFFSET, startOffset=last + 1)
                self.set_call(self.resubscribe(request))
        except Exception:  # noqa: BLE001 - reported by the checks
            if not self.stopping:
                self.error = traceback.format_exc()

    def resubscribe(self, request):
        deadline = time.monotonic() + RESUBSCRIBE_WAIT
        while True:
            try:
                return self.client.open_subscription(request)
            except (grpc.RpcError, LookupError):
                if time.monotonic() > deadline or self.stopping:
                    raise
                time.sleep(1 + random.random() * 0.5)

    def set_call(self, call):
        with self.lock:
            self.call = call
            if self.stopping:
                call.cancel()

    def close(self):
        with self.lock:
            self.stopping = True
            if self.call is not None:
                self.call.cancel()


killed = set()
probes = {}


def is_alive(addr):
    return addr not in killed


def wait_for(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.05)


def partition_view(addr):
    """The partition's metadata as one broker sees it, with the broker ids' addresses, or None."""
    try:
        response = probes.setdefault(addr, Broker(addr)).call('FetchMetadata', api_pb2.FetchMetadataRequest(streams=[STREAM]), api_pb2.FetchMetadataResponse, timeout=2)
    except grpc.RpcError:
        return None
    metadata = Metadata(response)
    return metadata.partitions.get((STREAM, 0)), metadata.addrs


def live_leader(full_isr=False):
    """(id, address) of the leader every live broker names, when that leader is alive; else None."""
    views = [partition_view(a) for a in PIDS if is_alive(a)]
    if any(v is None or v[0] is None for v in views):
        return None
    leaders = {(v[0].leader, v[1].get(v[0].leader)) for v in views}
    if len(leaders) != 1:
        return None
    leader_id, addr = leaders.pop()
    if not addr or not is_alive(addr):
        return None
    if full_isr and any(len(v[0].isr) != len(PIDS) for v in views):
        return None
    return leader_id, addr


def first_ack_after(publishers, wall_ns):
    times = [at for p in publishers for at, committed in list(p.ack_times) if committed > wall_ns]
    return min(times) if times else None


def acks(publishers):
    return sum(len(p.acked) for p in publishers)


def read_log(addr, end):
    """Every message of the partition up to offset end, from this broker (the leader)."""
    call = Broker(addr).subscribe(api_pb2.SubscribeRequest(stream=STREAM, startPosition=api_pb2.EARLIEST))
    messages = []
    next(call)
    if end >= 0:
        for m in call:
            messages.append((m.offset, m.value))
            if m.offset >= end:
                break
    call.cancel()
    return messages


def main():
    failures = []
    for addr, pid in PIDS.items():
        os.kill(pid, 0)  # the PID exists (raises otherwise)
    admin = LiftbridgeStyleClient(list(PIDS))
    admin.resilient_rpc(lambda b: b.call('CreateStream', api_pb2.CreateStreamRequest(subject=STREAM, name=STREAM, replicationFactor=3),
                                         api_pb2.CreateStreamResponse, timeout=10))
    wait_for(lambda: live_leader(full_isr=True), 'one leader and a full ISR on every broker')
    admin.close()

    stop = threading.Event()
    subscriber = Subscriber(LiftbridgeStyleClient(list(PIDS)))
    publishers = [V2Publisher(stop), V1Publisher(stop, list(PIDS))]
    log(f'v2 publisher hashes {STREAM}:0 to {publishers[0].client.hashed_addr(STREAM, 0)}; v1 publisher dialled {publishers[1].broker.addr}')
    subscriber.start()
    for p in publishers:
        p.start()

    def more_acks(count, what):
        # Both publishers must get on after a kill, not just the faster one.
        target = acks(publishers) + count
        each = {p.name: len(p.acked) + count // 10 for p in publishers}
        wait_for(lambda: (acks(publishers) >= target and all(len(p.acked) >= each[p.name] for p in publishers))
                 or any(p.error for p in publishers), what)
        for p in publishers:
            if p.error:
                raise RuntimeError(f'publisher {p.name} failed: {p.error}')

    failovers = []
    for kill in range(1, KILLS + 1):
        more_acks(ACKS_BETWEEN, f'{ACKS_BETWEEN} acks before kill {kill}')
        leader_id, addr = None, None
        wait_for(lambda: live_leader() is not None, f'a live leader before kill {kill}')
        leader_id, addr = live_leader()
        kill_wall, kill_at = time.time_ns(), time.monotonic()
        os.kill(PIDS[addr], signal.SIGKILL)
        killed.add(addr)
        log(f'kill {kill}: SIGKILLed leader {leader_id} ({addr}, pid {PIDS[addr]})')
        wait_for(lambda: first_ack_after(publishers, kill_wall) is not None, f'an ack committed after kill {kill}')
        failover = first_ack_after(publishers, kill_wall) - kill_at
        failovers.append(failover)
        log(f'kill {kill}: first ack committed after the kill arrived {failover * 1000:.0f} ms later')

    more_acks(ACKS_BETWEEN, f'{ACKS_BETWEEN} acks after the last kill')
    stop.set()
    for p in publishers:
        p.join(timeout=30)
        if p.is_alive():
            failures.append(f'publisher {p.name} did not finish its last message within 30 s')
        if p.error:
            failures.append(f'publisher {p.name} failed: {p.error}')

    # The final leader answers as leader once it has taken the role; its high watermark covers its log.
    final = {}

    def settled():
        found = live_leader()
        if found is None:
            return False
        try:
            m = probes[found[1]].call('FetchPartitionMetadata', api_pb2.FetchPartitionMetadataRequest(stream=STREAM), api_pb2.FetchPartitionMetadataResponse).metadata
        except grpc.RpcError:
            return False
        final.update(id=found[0], addr=found[1], end=m.highWatermark)
        return m.highWatermark == m.newestOffset

    wait_for(settled, 'the final leader with its high watermark at its newest offset')
    end = final['end']
    stored = read_log(final['addr'], end)
    wait_for(lambda: (subscriber.received and subscriber.received[-1][0] >= end) or subscriber.error is not None,
             'the subscriber reaches the end of the log', timeout=20)
    subscriber.close()
    subscriber.join(timeout=10)

    # ---- checks ----
    offsets = [o for o, _ in stored]
    if offsets != list(range(end + 1)):
        failures.append(f'the final leader\'s log is not offsets 0..{end}: {len(offsets)} messages')
    values = {o: v.decode() for o, v in stored}
    copies = collections.Counter(values.values())
    resent, forwarded_twice = [], []  # extra copies of a message the library sent again / sent once
    for p in publishers:
        previous = -1
        for i in range(len(p.attempts)):
            payload = f'{p.name}-{i}'
            if payload not in p.acked:
                continue
            offset = p.acked[payload]
            if values.get(offset) != payload:
                failures.append(f'{payload} was acked at offset {offset}, which holds {values.get(offset)!r}')
            if offset <= previous:
                failures.append(f'{payload} was acked at offset {offset}, not after the previous ack ({previous})')
            previous = offset
        for payload, n in copies.items():
            if payload.startswith(p.name + '-') and n > 1:
                where = [o for o, v in values.items() if v == payload]
                (resent if p.sends[payload] >= n else forwarded_twice).append(
                    f'{payload} at {where}, sent {p.sends[payload]}x, acked at {p.acked.get(payload)}')
    seen = subscriber.received[:end + 1]
    if [o for o, _ in seen] != list(range(end + 1)):
        gaps = [(a[0], b[0]) for a, b in zip(seen, seen[1:]) if b[0] != a[0] + 1]
        failures.append(f'the subscriber did not see offsets 0..{end} in order: {len(seen)} messages, jumps {gaps[:10]}')
    elif any(values.get(o) != v.decode() for o, v in seen):
        failures.append('the subscriber saw different values than the final leader stores')
    if subscriber.error:
        failures.append(f'subscriber: {subscriber.error}')

    for p in publishers:
        log(f'{p.name}: {len(p.acked)} acked, {sum(p.attempts.values()) - len(p.attempts)} application retries, '
            f'{sum(p.sends.values()) - len(p.sends)} resends in all, {p.rebuilds} client rebuilds, failures {dict(p.failures)}')
    log(f'{end + 1} stored; stored twice after a resend: {len(resent)} {resent}')
    log(f'stored twice though sent once: {len(forwarded_twice)} {forwarded_twice}')
    if forwarded_twice:
        # A forwarding broker must not resend what the old leader may have stored (no message id to drop a repeat).
        failures.append(f'stored twice though the client sent it once: {forwarded_twice}')
    log(f'subscriber resubscribed {len(subscriber.resubscribes)} times ({[d for _, d in subscriber.resubscribes]}); '
        f'opens tried again: {dict(subscriber.client.open_retries)}')
    log('failover ms: ' + ', '.join(f'{f * 1000:.0f}' for f in failovers))
    for f in failures:
        print(f'FAIL {f}', flush=True)
    print('all checks passed' if not failures else f'{len(failures)} checks failed', flush=True)
    return 0 if not failures else 1


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - a harness failure is a failed run, with its trace
        print(f'FAIL {traceback.format_exc()}', flush=True)
        sys.exit(1)
