#!/usr/bin/env python3
"""Drives the REAL Sluice broker with grpcio (gRPC's C core: an HTTP/2 stack independent of
grpc-js, .NET and Go), the way Liftbridge's Python client does: health, create a stream, publish
with acks, pipeline PublishAsync with correlation ids, subscribe to a stop position, fetch metadata,
deadlines, cancellation, and error codes with Liftbridge's messages.

    python3 broker.py <host:port> [--ca CA.pem [--cert CERT.pem --key KEY.pem]]

With --ca the channel is TLS (ALPN h2) trusting that CA; with --cert and --key it also presents a
client certificate (mutual TLS). Expects an empty server (no streams). Exits 0 when every check passes; otherwise prints each
failure and exits 1. Message classes are generated from proto/ at start (grpc_tools.protoc).
"""
import os
import sys
import threading
import traceback

import grpc

from protos import generate


def parse_args(argv):
    usage = 'usage: python3 broker.py <host:port> [--ca CA.pem [--cert CERT.pem --key KEY.pem]]'
    if not argv or argv[0].startswith('--'):
        print(usage, file=sys.stderr)
        sys.exit(2)
    target, files = argv[0], {}
    rest = argv[1:]
    while rest:
        if rest[0] not in ('--ca', '--cert', '--key') or len(rest) < 2:
            print(usage, file=sys.stderr)
            sys.exit(2)
        with open(rest[1], 'rb') as f:
            files[rest[0][2:]] = f.read()
        rest = rest[2:]
    if ('cert' in files) != ('key' in files) or ('cert' in files and 'ca' not in files):
        print(usage, file=sys.stderr)
        sys.exit(2)
    return target, files


TARGET, TLS_FILES = parse_args(sys.argv[1:])
generate()
import api_pb2  # noqa: E402  (generated above)
import health_pb2  # noqa: E402

if TLS_FILES:
    credentials = grpc.ssl_channel_credentials(root_certificates=TLS_FILES['ca'], private_key=TLS_FILES.get('key'),
                                               certificate_chain=TLS_FILES.get('cert'))
    channel = grpc.secure_channel(TARGET, credentials)
else:
    channel = grpc.insecure_channel(TARGET)
grpc.channel_ready_future(channel).result(timeout=10)


def unary(method, request, response, timeout=10):
    call = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response.FromString)
    return call(request, timeout=timeout)


def api(name, request, response, timeout=10):
    return unary(f'/proto.API/{name}', request, response, timeout)


def expect_status(fn, code, details=None):
    try:
        fn()
    except grpc.RpcError as err:
        assert err.code() == code, f'status: got {err.code()} ({err.details()}), want {code}'
        if details is not None:
            assert err.details() == details, f'details: got {err.details()!r}, want {details!r}'
        return err
    raise AssertionError(f'expected {code}, but the call succeeded')


def subscribe(request, timeout=10):
    call = channel.unary_stream('/proto.API/Subscribe', request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=api_pb2.Message.FromString)
    return call(request, timeout=timeout)


def check_health():
    for service in ['', 'proto.API']:
        r = unary('/grpc.health.v1.Health/Check', health_pb2.HealthCheckRequest(service=service), health_pb2.HealthCheckResponse)
        assert r.status == health_pb2.HealthCheckResponse.SERVING, r


def check_create():
    api('CreateStream', api_pb2.CreateStreamRequest(name='orders', subject='orders', partitions=2), api_pb2.CreateStreamResponse)
    expect_status(lambda: api('CreateStream', api_pb2.CreateStreamRequest(name='orders', subject='orders'), api_pb2.CreateStreamResponse),
                  grpc.StatusCode.ALREADY_EXISTS, 'stream already exists')
    expect_status(lambda: api('CreateStream', api_pb2.CreateStreamRequest(name='x', subject='bad subject'), api_pb2.CreateStreamResponse),
                  grpc.StatusCode.INVALID_ARGUMENT, 'Subject is invalid')


def check_publish():
    r = api('Publish', api_pb2.PublishRequest(stream='orders', partition=1, key=b'k', value=b'hello', correlationId='c-1'), api_pb2.PublishResponse)
    assert r.ack.offset == 0 and r.ack.stream == 'orders' and r.ack.partitionSubject == 'orders.1' and r.ack.correlationId == 'c-1', r
    expect_status(lambda: api('Publish', api_pb2.PublishRequest(stream='nope', value=b'x'), api_pb2.PublishResponse),
                  grpc.StatusCode.NOT_FOUND, 'no such stream: nope')
    expect_status(lambda: api('Publish', api_pb2.PublishRequest(), api_pb2.PublishResponse),
                  grpc.StatusCode.INVALID_ARGUMENT, 'no stream provided')


def check_publish_async():
    def requests():
        for i in range(5000):
            yield api_pb2.PublishRequest(stream='orders', partition=0, value=f'm{i}'.encode(), correlationId=f'id-{i}', expectedOffset=-1)
        yield api_pb2.PublishRequest(stream='missing', value=b'x', correlationId='bad')

    call = channel.stream_stream('/proto.API/PublishAsync', request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=api_pb2.PublishResponse.FromString)
    acks, errors = {}, []
    for r in call(requests(), timeout=30):
        if r.HasField('asyncError'):
            errors.append(r)
        else:
            acks[r.correlationId] = r.ack
    assert len(acks) == 5000, len(acks)
    assert sorted(a.offset for a in acks.values()) == list(range(5000))
    assert all(a.correlationId == i for i, a in acks.items())
    assert len(errors) == 1 and errors[0].correlationId == 'bad' and errors[0].asyncError.code == api_pb2.PublishAsyncError.NOT_FOUND, errors


def check_subscribe_stop():
    call = subscribe(api_pb2.SubscribeRequest(stream='orders', partition=0, startPosition=api_pb2.EARLIEST, stopPosition=api_pb2.STOP_LATEST))
    messages = []
    try:
        for m in call:
            messages.append(m)
        raise AssertionError('the stream ended without a status')
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and err.details() == 'Stop offset reached', (err.code(), err.details())
    assert messages[0].offset == 0 and messages[0].value == b'' and messages[0].stream == '', 'handshake frame'
    data = messages[1:]
    assert len(data) == 5000 and data[0].value == b'm0' and data[-1].offset == 4999, len(data)


def check_subscribe_cancel():
    call = subscribe(api_pb2.SubscribeRequest(stream='orders', partition=1, startPosition=api_pb2.EARLIEST), timeout=30)
    got = []
    done = threading.Event()

    def read():
        try:
            for m in call:
                got.append(m)
                if len(got) == 2:
                    call.cancel()
        except grpc.RpcError as err:
            got.append(err.code())
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), 'the cancelled subscription did not end'
    assert got[-1] == grpc.StatusCode.CANCELLED, got


def check_deadline():
    # A live subscription with a short deadline ends with DEADLINE_EXCEEDED.
    call = subscribe(api_pb2.SubscribeRequest(stream='orders', partition=1, startPosition=api_pb2.LATEST), timeout=0.5)
    try:
        for _ in call:
            pass
        raise AssertionError('the subscription outlived its deadline')
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.code()


def check_large_message():
    value = os.urandom(900 << 10)  # 900 KiB (under the 1 MiB replication limit): many DATA frames and window updates both ways
    r = api('Publish', api_pb2.PublishRequest(stream='orders', partition=1, value=value, ackPolicy=api_pb2.LEADER), api_pb2.PublishResponse)
    call = subscribe(api_pb2.SubscribeRequest(stream='orders', partition=1, startPosition=api_pb2.OFFSET, startOffset=r.ack.offset, stopPosition=api_pb2.STOP_LATEST))
    data = []
    try:
        for m in call:
            data.append(m)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.code()
    assert data[-1].value == value, 'the 900 KiB message came back changed'


def check_metadata():
    r = api('FetchMetadata', api_pb2.FetchMetadataRequest(), api_pb2.FetchMetadataResponse)
    assert len(r.brokers) == 1
    orders = [s for s in r.streamMetadata if s.name == 'orders']
    assert orders and orders[0].partitions[0].highWatermark == 4999, orders
    joined = api('JoinConsumerGroup', api_pb2.JoinConsumerGroupRequest(groupId='g', consumerId='c', streams=['orders']), api_pb2.JoinConsumerGroupResponse)
    assert (joined.coordinator, joined.epoch) == (r.brokers[0].id, 0), joined
    group = api('FetchMetadata', api_pb2.FetchMetadataRequest(groups=['g']), api_pb2.FetchMetadataResponse).groupMetadata[0]
    assert (group.error, group.coordinator) == (api_pb2.ConsumerGroupMetadata.OK, joined.coordinator), group
    assigned = api('FetchConsumerGroupAssignments', api_pb2.FetchConsumerGroupAssignmentsRequest(groupId='g', consumerId='c', epoch=0),
                   api_pb2.FetchConsumerGroupAssignmentsResponse)
    assert [(a.stream, sorted(a.partitions)) for a in assigned.assignments] == [('orders', [0, 1])], assigned


def check_concurrent_calls():
    # 50 unary calls in flight at once on one connection (multiplexed streams).
    futures = []
    for i in range(50):
        call = channel.unary_unary('/proto.API/FetchPartitionMetadata', request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=api_pb2.FetchPartitionMetadataResponse.FromString)
        futures.append(call.future(api_pb2.FetchPartitionMetadataRequest(stream='orders', partition=i % 2), timeout=10))
    for f in futures:
        assert f.result().metadata.id in (0, 1)


def check_delete():
    api('DeleteStream', api_pb2.DeleteStreamRequest(name='orders'), api_pb2.DeleteStreamResponse)
    expect_status(lambda: api('DeleteStream', api_pb2.DeleteStreamRequest(name='orders'), api_pb2.DeleteStreamResponse),
                  grpc.StatusCode.NOT_FOUND, 'stream does not exist')


CHECKS = [
    ('health: SERVING for "" and proto.API', check_health),
    ('CreateStream, then AlreadyExists and InvalidArgument with Liftbridge messages', check_create),
    ('unary Publish returns the ack; errors carry codes', check_publish),
    ('PublishAsync pipelines 5000 publishes; responses correlate by id', check_publish_async),
    ('Subscribe: handshake frame, messages, then RESOURCE_EXHAUSTED at the stop position', check_subscribe_stop),
    ('Subscribe cancelled by the client ends with CANCELLED', check_subscribe_cancel),
    ('a deadline ends a live subscription with DEADLINE_EXCEEDED', check_deadline),
    ('a 900 KiB message round-trips', check_large_message),
    ('FetchMetadata, and a consumer group: join, group metadata, assignments', check_metadata),
    ('50 concurrent unary calls on one connection', check_concurrent_calls),
    ('DeleteStream, then NOT_FOUND', check_delete),
]

failed = 0
for name, check in CHECKS:
    try:
        check()
        print(f'ok   {name}', flush=True)
    except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
        failed += 1
        print(f'FAIL {name}: {traceback.format_exc()}', flush=True)

channel.close()
print(f'{len(CHECKS) - failed}/{len(CHECKS)} passed')
sys.exit(0 if failed == 0 else 1)
