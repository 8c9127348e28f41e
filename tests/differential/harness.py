"""Machinery of the differential harness: servers as child processes, a recording client, normalisation.

A scenario (scenarios.py) drives one server through `Probe` and records what a client observes as
ordered (field, value) pairs. The runner (differential.py) runs each scenario against Liftbridge and
against Sluice, each on a fresh server, and compares the two recordings field by field.
"""
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.normpath(os.path.join(HERE, '..', '..', 'proto'))


def generate_stubs():
    out = tempfile.mkdtemp(prefix='sluice-differential-')
    subprocess.run([sys.executable, '-m', 'grpc_tools.protoc', f'-I{PROTO}', f'--python_out={out}',
                    os.path.join(PROTO, 'api.proto')], check=True)
    sys.path.insert(0, out)
    return out


STUBS = generate_stubs()
import api_pb2  # noqa: E402  (generated above)

# How long a scenario waits for something that should happen (a message, a status); bounded so a
# server that never answers shows as a difference instead of hanging the run.
WAIT = 10.0
# How long a scenario watches for something that should NOT happen (a message on a NEW_ONLY
# subscription before the next publish). Only "nothing arrived" is concluded from it.
QUIET = 0.7
# How long a subscription that should have ended may stay silent before it counts as still open.
OPEN = 3.0


# Every server and cluster that may hold processes, so that the runner can stop them all by PID when it is
# interrupted (SIGINT, SIGTERM) or fails between a start and the matching stop.
LIVE = set()


def stop_all():
    for server in list(LIVE):
        server.stop()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    """One Liftbridge or Sluice node on 127.0.0.1 with embedded NATS, a temp dir, stopped by PID."""

    def __init__(self, kind, command, config, env):
        self.kind, self.command, self.config, self.env = kind, command, config, env
        self.dir = tempfile.mkdtemp(prefix=f'differential-{kind}-')
        self.port, self.nats_port = free_port(), free_port()
        self.server_id = f'{kind}-{self.port}'
        self.process = None

    def _write_config(self):
        with open(os.path.join(self.dir, 'nats.conf'), 'w') as f:
            f.write(f'listen: 127.0.0.1:{self.nats_port}\n')
        # The same file for both servers: Sluice reads Liftbridge's configuration unchanged.
        lines = [f'listen: 127.0.0.1:{self.port}', 'host: 127.0.0.1', f'data.dir: {self.dir}/data',
                 'logging.level: info', f'nats.embedded.config: {self.dir}/nats.conf',
                 'nats.servers:', f'  - nats://127.0.0.1:{self.nats_port}']
        lines += [f'{k}: {v}' for k, v in self.config.items()]
        lines += ['clustering:', f'  server.id: {self.server_id}', '  raft.bootstrap.seed: true']
        path = os.path.join(self.dir, 'liftbridge.yaml')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return path

    def start(self):
        LIVE.add(self)
        config = self._write_config()
        args = self.command + ['--config', config, '--raft-bootstrap-seed', '--embedded-nats',
                               '--data-dir', f'{self.dir}/data', '--port', str(self.port)]
        self.log = open(os.path.join(self.dir, 'server.log'), 'wb')
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                                        start_new_session=True)
        self.channel = grpc.insecure_channel(f'127.0.0.1:{self.port}')
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f'{self.kind} exited with {self.process.returncode}; see {self.dir}/server.log')
            try:
                r = unary(self.channel, 'FetchMetadata', api_pb2.FetchMetadataRequest(), api_pb2.FetchMetadataResponse, 2)
                if r.brokers and self._leader():
                    return self
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f'{self.kind} not ready after 60 s; see {self.dir}/server.log')

    def _leader(self):
        # Liftbridge answers FetchMetadata before its Raft node leads; a CreateStream sent then waits out its
        # deadline. Its log says when it leads (Sluice leads as soon as it answers).
        if self.kind != 'liftbridge':
            return True
        with open(os.path.join(self.dir, 'server.log'), 'rb') as f:
            return b'Server became metadata leader' in f.read()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, keep=False):
        LIVE.discard(self)
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(15)
                except subprocess.TimeoutExpired:
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            self.log.close()
            self.channel.close()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def unary(channel, method, request, response, timeout=WAIT):
    call = channel.unary_unary(f'/proto.API/{method}', request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response.FromString)
    return call(request, timeout=timeout)


RESPONSES = {
    'CreateStream': api_pb2.CreateStreamResponse, 'DeleteStream': api_pb2.DeleteStreamResponse,
    'PauseStream': api_pb2.PauseStreamResponse, 'SetStreamReadonly': api_pb2.SetStreamReadonlyResponse,
    'FetchMetadata': api_pb2.FetchMetadataResponse, 'FetchPartitionMetadata': api_pb2.FetchPartitionMetadataResponse,
    'Publish': api_pb2.PublishResponse, 'PublishToSubject': api_pb2.PublishToSubjectResponse,
    'SetCursor': api_pb2.SetCursorResponse, 'FetchCursor': api_pb2.FetchCursorResponse,
    'JoinConsumerGroup': api_pb2.JoinConsumerGroupResponse, 'LeaveConsumerGroup': api_pb2.LeaveConsumerGroupResponse,
    'FetchConsumerGroupAssignments': api_pb2.FetchConsumerGroupAssignmentsResponse,
    'ReportConsumerGroupCoordinator': api_pb2.ReportConsumerGroupCoordinatorResponse,
}


def status(err):
    return f'{err.code().name} {err.details()!r}'


def ts(value):
    return 'nonzero' if value else 'zero'


class Probe:
    """What a scenario uses to drive a server; records every observation in order."""

    def __init__(self, server):
        self.server = server
        self.channel = server.channel
        self.observed = []

    # --- recording -------------------------------------------------------------------------
    def see(self, field, value):
        self.observed.append((field, value))

    def call(self, label, method, request, timeout=WAIT):
        """A unary call; records 'OK' or the status, returns the response or None."""
        try:
            response = unary(self.channel, method, request, RESPONSES[method], timeout)
        except grpc.RpcError as err:
            self.see(label, status(err))
            return None
        self.see(label, 'OK')
        return response

    def raw(self, method, request, timeout=WAIT):
        """A unary call that must succeed (scenario setup); not recorded unless it fails."""
        try:
            return unary(self.channel, method, request, RESPONSES[method], timeout)
        except grpc.RpcError as err:
            self.see(f'setup {method}', status(err))
            raise ScenarioAborted() from err

    # --- normalisation ---------------------------------------------------------------------
    def server_name(self, value):
        return '<this server>' if value == self.server.server_id else value

    @staticmethod
    def inbox(value):
        # An ack inbox the server generated ends in a random NUID.
        return re.sub(r'\.ack\.[A-Za-z0-9]{16,}$', '.ack.<generated>', value)

    def ack(self, label, a):
        if a is None:
            self.see(label, 'absent')
            return
        self.see(label, {
            'stream': a.stream, 'partitionSubject': a.partitionSubject, 'msgSubject': a.msgSubject,
            'offset': a.offset, 'ackInbox': self.inbox(a.ackInbox), 'correlationId': a.correlationId,
            'ackPolicy': api_pb2.AckPolicy.Name(a.ackPolicy), 'receptionTimestamp': ts(a.receptionTimestamp),
            'commitTimestamp': ts(a.commitTimestamp), 'ackError': api_pb2.Ack.Error.Name(a.ackError)})

    def publish_response(self, label, r):
        if r is None:
            return
        self.ack(f'{label} ack', r.ack if r.HasField('ack') else None)
        if r.HasField('asyncError'):
            self.see(f'{label} asyncError', f'{api_pb2.PublishAsyncError.Code.Name(r.asyncError.code)} {r.asyncError.message!r}')
        self.see(f'{label} correlationId', r.correlationId)

    def message(self, m):
        return {
            'offset': m.offset, 'key': m.key, 'value': m.value, 'timestamp': ts(m.timestamp), 'stream': m.stream,
            'partition': m.partition, 'subject': m.subject, 'replySubject': m.replySubject,
            'headers': dict(sorted((k, bytes(v)) for k, v in m.headers.items())), 'ackInbox': self.inbox(m.ackInbox),
            'correlationId': m.correlationId, 'ackPolicy': api_pb2.AckPolicy.Name(m.ackPolicy)}

    def partition_metadata(self, label, p):
        self.see(label, {
            'id': p.id, 'leader': self.server_name(p.leader), 'replicas': [self.server_name(r) for r in p.replicas],
            'isr': [self.server_name(r) for r in p.isr], 'highWatermark': p.highWatermark, 'newestOffset': p.newestOffset,
            'paused': p.paused, 'readonly': p.readonly,
            'messagesReceived': (ts(p.messagesReceivedTimestamps.firstTimestamp), ts(p.messagesReceivedTimestamps.latestTimestamp)),
            'pause': (ts(p.pauseTimestamps.firstTimestamp), ts(p.pauseTimestamps.latestTimestamp)),
            'readonlyTs': (ts(p.readonlyTimestamps.firstTimestamp), ts(p.readonlyTimestamps.latestTimestamp))})

    def stream_metadata(self, label, s):
        self.see(f'{label} stream', {'name': s.name, 'subject': s.subject, 'error': api_pb2.StreamMetadata.Error.Name(s.error),
                                     'creationTimestamp': ts(s.creationTimestamp), 'partitions': sorted(s.partitions.keys())})
        for pid in sorted(s.partitions):
            self.partition_metadata(f'{label} partition {pid}', s.partitions[pid])

    def metadata(self, label, streams=()):
        r = self.call(label, 'FetchMetadata', api_pb2.FetchMetadataRequest(streams=list(streams)))
        if r is None:
            return None
        self.see(f'{label} brokers', [{'id': self.server_name(b.id), 'host': b.host, 'port': 'this port' if b.port == self.server.port else b.port,
                                       'partitionCount': b.partitionCount, 'leaderCount': b.leaderCount} for b in r.brokers])
        for s in sorted(r.streamMetadata, key=lambda s: s.name):
            self.stream_metadata(f'{label} {s.name!r}', s)
        return r

    def fetch_partition(self, label, stream, partition=0):
        r = self.call(label, 'FetchPartitionMetadata', api_pb2.FetchPartitionMetadataRequest(stream=stream, partition=partition))
        if r is not None:
            self.partition_metadata(f'{label} metadata', r.metadata)
        return r

    # --- subscriptions ---------------------------------------------------------------------
    def subscribe(self, request, timeout=60):
        return Subscription(self, request, timeout)

    def read_all(self, label, request, expect=None):
        """Subscribes, reads until the stream ends (or `expect` data messages then cancels), records all of it."""
        sub = self.subscribe(request)
        sub.take(label, expect) if expect is not None else sub.until_end(label)
        return sub

    # --- publishing ------------------------------------------------------------------------
    def publish(self, label, **fields):
        fields.setdefault('expectedOffset', -1)
        r = self.call(label, 'Publish', api_pb2.PublishRequest(**fields))
        self.publish_response(label, r)
        return r

    def publish_async(self, label, requests, expect):
        """Sends `requests` on one PublishAsync stream, reads `expect` responses, then half-closes and records the end."""
        done = threading.Event()

        def gen():
            yield from requests
            done.wait(WAIT)

        call = self.channel.stream_stream('/proto.API/PublishAsync', request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=api_pb2.PublishResponse.FromString)(gen(), timeout=WAIT * 2)
        responses = []
        try:
            for r in call:
                responses.append(r)
                if len(responses) == expect:
                    done.set()
            self.see(f'{label} end', 'OK')
        except grpc.RpcError as err:
            self.see(f'{label} end', status(err))
        done.set()
        for i, r in enumerate(sorted(responses, key=lambda r: r.correlationId)):
            self.publish_response(f'{label} response {i}', r)
        return responses


class ScenarioAborted(Exception):
    """Setup failed; what happened is already recorded."""


class Subscription:
    """A server-streaming Subscribe read on a thread, so a scenario can wait with a timeout."""

    def __init__(self, probe, request, timeout):
        self.probe = probe
        self.items = queue.Queue()
        self.call = probe.channel.unary_stream('/proto.API/Subscribe', request_serializer=lambda m: m.SerializeToString(),
                                               response_deserializer=api_pb2.Message.FromString)(request, timeout=timeout)
        self.handshake_seen = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for m in self.call:
                self.items.put(('message', m))
            self.items.put(('end', 'OK (stream closed by the server)'))
        except grpc.RpcError as err:
            self.items.put(('end', status(err)))

    def _next(self, wait):
        try:
            return self.items.get(timeout=wait)
        except queue.Empty:
            return None

    def _handshake(self, label):
        """Records the first frame, which Liftbridge sends as an all-default Message before any data."""
        if self.handshake_seen:
            return True
        item = self._next(WAIT)
        self.handshake_seen = True
        if item is None:
            self.probe.see(f'{label} first frame', f'nothing within {WAIT:.0f} s')
            return False
        kind, value = item
        if kind == 'end':
            self.probe.see(f'{label} end', value)
            return False
        self.probe.see(f'{label} first frame', 'all-default Message' if value == api_pb2.Message() else self.probe.message(value))
        return True

    def take(self, label, n, cancel=True):
        """Records the next n data messages (or the end, or a timeout), then cancels unless told not to."""
        if self._collect(label, n, WAIT, f'nothing within {WAIT:.0f} s', after_count=True) and cancel:
            self.cancel()

    def quiet(self, label):
        """Records whether anything (a message or the end) arrives within QUIET seconds."""
        if not self._handshake(label):
            return
        item = self._next(QUIET)
        self.probe.see(f'{label} while idle', 'nothing' if item is None else
                       (self.probe.message(item[1]) if item[0] == 'message' else f'end {item[1]}'))

    def until_end(self, label, limit=1000):
        """Records messages until the subscription ends (or stays open OPEN seconds, or limit messages)."""
        if self._collect(label, limit, OPEN, f'still open after {OPEN:.0f} s', record_full=False):
            self.cancel()

    def _collect(self, label, n, wait, silence, after_count=False, record_full=True):
        """Reads up to n messages, recording them and how the read stopped. True when n arrived (still open)."""
        if not self._handshake(label):
            return False
        got = []
        while len(got) < n:
            item = self._next(wait)
            if item is None or item[0] == 'end':
                self.probe.see(f'{label} messages', [self.probe.message(m) for m in got])
                if item is None:
                    self.probe.see(f'{label} after {len(got)}' if after_count else f'{label} end', silence)
                    self.cancel()
                else:
                    self.probe.see(f'{label} end', item[1])
                return False
            got.append(item[1])
        if record_full:
            self.probe.see(f'{label} messages', [self.probe.message(m) for m in got])
        return True

    def end(self, label):
        """Records how the stream ends (after the scenario did what should end it)."""
        if not self._handshake(label):
            return
        while True:
            item = self._next(WAIT)
            if item is None:
                self.probe.see(f'{label} end', f'still open after {WAIT:.0f} s')
                self.cancel()
                return
            if item[0] == 'end':
                self.probe.see(f'{label} end', item[1])
                return

    def cancel(self):
        self.call.cancel()


class Nats:
    """A minimal NATS protocol client over a socket: enough to publish plain payloads and read raw bytes."""

    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=WAIT)
        self.buf = b''
        self._line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\nPING\r\n')
        while self._line() != b'PONG':
            pass

    def _line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('NATS closed the connection')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('NATS closed the connection')
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def flush(self):
        self.sock.sendall(b'PING\r\n')
        while self._line() != b'PONG':
            pass

    def sub(self, subject, sid=1):
        self.sock.sendall(f'SUB {subject} {sid}\r\n'.encode())
        self.flush()

    def pub(self, subject, payload, reply=None):
        head = f'PUB {subject} {reply} {len(payload)}' if reply else f'PUB {subject} {len(payload)}'
        self.sock.sendall(head.encode() + b'\r\n' + payload + b'\r\n')

    def next_msg(self, wait=WAIT):
        """(subject, payload) of the next MSG, or None if none arrives in time."""
        self.sock.settimeout(wait)
        try:
            while True:
                line = self._line()
                if line.startswith(b'MSG '):
                    parts = line.split()
                    return parts[1].decode(), self._exact(int(parts[-1]))
                if line == b'PING':
                    self.sock.sendall(b'PONG\r\n')
        except (socket.timeout, TimeoutError):
            return None
        finally:
            self.sock.settimeout(WAIT)

    def close(self):
        self.sock.close()


# --- clusters (differential.py --cluster) ------------------------------------------------------------

def free_base_port(count=3):
    """A base port with `count` consecutive free ports after it (run-cluster.sh and brokers need P..P+count-1)."""
    for _ in range(200):
        base = free_port()
        if base + count > 65535:
            continue
        ok = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(('127.0.0.1', port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError(f'no {count} consecutive free ports found')


def pid_alive(pid):
    """True while `pid` runs (a zombie or a missing process counts as gone)."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (FileNotFoundError, IndexError):
        return False


def stop_pid(pid, process=None, grace=15.0, sig=signal.SIGTERM):
    """Signals `pid`, waits up to `grace` seconds, then SIGKILLs it. `process` (a Popen we own) is reaped."""
    if not pid_alive(pid):
        if process is not None:
            process.poll()
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return
        if process is None and not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if process is not None:
        process.wait()


class Node:
    """One broker of a cluster: its name (node1..node3, the same for both systems), id, port, PID."""

    def __init__(self, index, server_id, port, directory):
        self.index, self.server_id, self.port, self.dir = index, server_id, port, directory
        self.name = f'node{index + 1}'
        self.pid, self.process, self.log = None, None, None
        self.channel = grpc.insecure_channel(f'127.0.0.1:{port}')

    def alive(self):
        return self.pid is not None and pid_alive(self.pid)


class Cluster:
    """Three brokers of one system on 127.0.0.1 (free ports, a temp dir), every process stopped by PID.

    Liftbridge: /work/shared/tools/liftbridge/run-cluster.sh (n1..n3, one NATS embedded in n1, Raft).
    Sluice: one etcd and three `sluice serve --etcd-endpoints` brokers b1..b3, started the way `sluice cluster`
    starts them (ClusterCommand), but each as a child of this harness: `sluice cluster` stops the whole
    cluster when one broker exits, and a failover scenario kills one broker and restarts it.
    """

    def __init__(self, kind, command, run_cluster=None, env=None):
        self.kind, self.command, self.run_cluster, self.env = kind, command, run_cluster, env or {}
        self.dir = tempfile.mkdtemp(prefix=f'differential-cluster-{kind}-')
        self.nodes = []
        self.etcd = None
        self.server_id = None  # Probe's normalisation: no single "this server" in a cluster
        self.port = None

    # --- start -------------------------------------------------------------------------------------
    def start(self):
        LIVE.add(self)
        if self.kind == 'liftbridge':
            self._start_liftbridge()
        else:
            self._start_sluice()
        self.wait_brokers(60)
        return self

    def _start_liftbridge(self):
        base, nats_port = free_base_port(3), free_port()
        self.nats_port = nats_port
        out = subprocess.run([self.run_cluster, str(base), str(nats_port), self.dir, self.command[0]], capture_output=True,
                             text=True, timeout=120, env={**os.environ, **self.env})
        pids = dict(re.findall(r'^PID (n\d) (\d+)$', out.stdout, re.M))
        for i in range(3):
            node = Node(i, f'n{i + 1}', base + i, os.path.join(self.dir, f'n{i + 1}'))
            node.pid = int(pids[node.server_id]) if node.server_id in pids else None
            self.nodes.append(node)
        if out.returncode != 0 or len(pids) != 3:
            raise RuntimeError(f'run-cluster.sh failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}')

    def _start_sluice(self):
        client, peer = free_port(), free_port()
        self.etcd_url = f'http://127.0.0.1:{client}'
        etcd_dir = os.path.join(self.dir, 'etcd')
        # The flags LocalEtcd (sluice cluster) gives etcd.
        args = ['etcd', '--name', 'sluice', '--data-dir', etcd_dir, '--listen-client-urls', self.etcd_url,
                '--advertise-client-urls', self.etcd_url, '--listen-peer-urls', f'http://127.0.0.1:{peer}',
                '--initial-advertise-peer-urls', f'http://127.0.0.1:{peer}', '--initial-cluster', f'sluice=http://127.0.0.1:{peer}',
                '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1000']
        self.etcd_log = open(os.path.join(self.dir, 'etcd.log'), 'wb')
        self.etcd = subprocess.Popen(args, stdout=self.etcd_log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not _port_open(client):
            if self.etcd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'etcd did not start; see {self.dir}/etcd.log')
            time.sleep(0.1)
        base = free_base_port(3)
        for i in range(3):
            node = Node(i, f'b{i + 1}', base + i, os.path.join(self.dir, f'b{i + 1}'))
            self.nodes.append(node)
            self._spawn_sluice(node)

    def _spawn_sluice(self, node):
        os.makedirs(node.dir, exist_ok=True)
        node.log = open(os.path.join(node.dir, 'server.log'), 'ab')
        node.process = subprocess.Popen(self.command + ['--server-id', node.server_id, '--host', '127.0.0.1', '--port', str(node.port),
                                                        '--data-dir', os.path.join(node.dir, 'data'), '--etcd-endpoints', self.etcd_url],
                                        stdout=node.log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True)
        node.pid = node.process.pid

    def log_path(self, node):
        return os.path.join(node.dir, 'liftbridge.log' if self.kind == 'liftbridge' else 'server.log')

    def wait_brokers(self, limit, count=3, nodes=None):
        """Waits until FetchMetadata on every live node lists `count` brokers."""
        deadline = time.monotonic() + limit
        for node in nodes or [n for n in self.nodes if n.alive()]:
            while True:
                if not node.alive():
                    raise RuntimeError(f'{self.kind} {node.name} exited; see {self.log_path(node)}')
                try:
                    r = unary(node.channel, 'FetchMetadata', api_pb2.FetchMetadataRequest(), api_pb2.FetchMetadataResponse, 2)
                    if len(r.brokers) >= count:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f'{self.kind} {node.name} does not list {count} brokers after {limit} s; see {self.log_path(node)}')
                time.sleep(0.1)

    # --- failures --------------------------------------------------------------------------------
    def kill(self, node, sig=signal.SIGKILL):
        """SIGKILL by default, as a crash; SIGTERM is a graceful stop (SIGKILL after 15 s). Never node1 of
        Liftbridge: it hosts the NATS server every node uses."""
        if self.kind == 'liftbridge' and node.index == 0:
            raise ValueError('node1 of the Liftbridge cluster hosts NATS; kill another node')
        stop_pid(node.pid, node.process, grace=15.0, sig=sig)

    def restart(self, node):
        """Starts a killed node again with its own configuration and data."""
        if node.log is not None:
            node.log.close()
        if self.kind == 'liftbridge':
            node.log = open(self.log_path(node), 'ab')
            node.process = subprocess.Popen(self.command + ['--config', os.path.join(node.dir, 'liftbridge.yaml')], stdout=node.log,
                                            stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True)
            node.pid = node.process.pid
        else:
            self._spawn_sluice(node)

    def node_of(self, server_id):
        return next((n for n in self.nodes if n.server_id == server_id), None)

    def alive(self):
        return all(n.alive() for n in self.nodes)

    # --- stop --------------------------------------------------------------------------------------
    def stop(self, keep=False):
        LIVE.discard(self)
        # Liftbridge: n3 and n2 before n1, which hosts NATS.
        for node in reversed(self.nodes):
            if node.pid is not None:
                stop_pid(node.pid, node.process)
            if node.log is not None:
                node.log.close()
            node.channel.close()
        if self.etcd is not None:
            stop_pid(self.etcd.pid, self.etcd)
            self.etcd_log.close()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def _port_open(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5):
            return True
    except OSError:
        return False


class ClusterProbe(Probe):
    """A Probe over a cluster: `at(node)` aims the calls at one broker; broker ids become node1..node3 and
    a partition's leader and replicas are recorded by shape (counts, memberships), not by id, since the two
    systems place replicas differently. `note` records what is printed but not compared (timings)."""

    def __init__(self, cluster, node=None, shared=None):
        self.cluster = cluster
        self.server = cluster
        self.node = node or cluster.nodes[0]
        self.channel = self.node.channel
        self.observed = shared.observed if shared else []
        self.notes = shared.notes if shared else []

    def at(self, node):
        return ClusterProbe(self.cluster, node, self)

    def note(self, text):
        self.notes.append(text)

    def server_name(self, value):
        node = self.cluster.node_of(value)
        return node.name if node else value

    def metadata(self, label, streams=()):
        r = self.call(label, 'FetchMetadata', api_pb2.FetchMetadataRequest(streams=list(streams)))
        if r is None:
            return None
        ports = {n.port: n.name for n in self.cluster.nodes}
        self.see(f'{label} brokers', sorted(({'id': self.server_name(b.id), 'host': b.host, 'port': f'port of {ports.get(b.port, b.port)}'}
                                             for b in r.brokers), key=lambda b: b['id']))
        for s in sorted(r.streamMetadata, key=lambda s: s.name):
            self.see(f'{label} {s.name!r} stream', {'name': s.name, 'subject': s.subject, 'error': api_pb2.StreamMetadata.Error.Name(s.error),
                                                    'partitions': sorted(s.partitions.keys())})
            for pid in sorted(s.partitions):
                self.partition_metadata(f'{label} {s.name!r} partition {pid}', s.partitions[pid])
        return r

    def partition_metadata(self, label, p):
        self.see(label, shape(p))


def shape(p):
    """A partition's metadata without broker ids."""
    replicas, isr = list(p.replicas), list(p.isr)
    return {'id': p.id, 'has leader': bool(p.leader), 'replicas': len(replicas), 'distinct replicas': len(set(replicas)),
            'isr': len(isr), 'isr within replicas': set(isr) <= set(replicas), 'leader in isr': p.leader in isr,
            'highWatermark': p.highWatermark, 'newestOffset': p.newestOffset, 'paused': p.paused, 'readonly': p.readonly}
