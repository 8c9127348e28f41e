#!/usr/bin/env node
// Drives the REAL Sluice broker with an independent gRPC implementation (grpc-js), the way
// Liftbridge's Node client would: create a stream, publish with acks, pipeline PublishAsync with
// correlation ids, subscribe (handshake frame, stop position → RESOURCE_EXHAUSTED), fetch metadata,
// and check error codes and messages.
//
//   node broker.js <host:port>
//
// Expects an empty server (no streams). Exits 0 when every check passes; otherwise prints each
// failure and exits 1.
'use strict';

const path = require('path');
const assert = require('assert');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const target = process.argv[2];
if (!target) {
  console.error('usage: node broker.js <host:port>');
  process.exit(2);
}

const protoDir = path.resolve(__dirname, '..', '..', 'proto');
const loaded = protoLoader.loadSync([path.join(protoDir, 'api.proto'), path.join(protoDir, 'health.proto')], {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [protoDir],
});
const pkg = grpc.loadPackageDefinition(loaded);
const api = new pkg.proto.API(target, grpc.credentials.createInsecure());
const health = new pkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure());

const deadline = () => new Date(Date.now() + 10000);
const unary = (client, method, request, withDeadline = true) => new Promise((resolve, reject) => {
  const options = withDeadline ? { deadline: deadline() } : {};
  client[method](request, new grpc.Metadata(), options, (err, response) => (err ? reject(err) : resolve(response)));
});

async function expectStatus(promise, code, details) {
  try {
    await promise;
  } catch (err) {
    assert.strictEqual(err.code, code, `status code: got ${err.code} (${err.details}), want ${code}`);
    if (details !== undefined) assert.strictEqual(err.details, details, 'status message');
    return err;
  }
  assert.fail(`expected status ${code}, but the call succeeded`);
}

const readStream = (call) => new Promise((resolve) => {
  const messages = [];
  call.on('data', (m) => messages.push(m));
  call.on('error', (error) => resolve({ messages, error }));
  call.on('end', () => resolve({ messages, error: null }));
});

const checks = [
  ['health: SERVING for "" and proto.API', async () => {
    for (const service of ['', 'proto.API']) {
      assert.strictEqual((await unary(health, 'Check', { service })).status, 'SERVING');
    }
  }],
  ['CreateStream, then AlreadyExists and InvalidArgument with Liftbridge messages', async () => {
    await unary(api, 'CreateStream', { name: 'orders', subject: 'orders', partitions: 2 });
    await expectStatus(unary(api, 'CreateStream', { name: 'orders', subject: 'orders' }), grpc.status.ALREADY_EXISTS, 'stream already exists');
    await expectStatus(unary(api, 'CreateStream', { name: 'x', subject: 'bad subject' }), grpc.status.INVALID_ARGUMENT, 'Subject is invalid');
    await expectStatus(unary(api, 'CreateStream', { name: 'x', subject: 'x', replicationFactor: 3 }), grpc.status.INVALID_ARGUMENT, 'Invalid replicationFactor 3, cluster size 1');
  }],
  ['unary Publish with a deadline returns the ack; errors carry codes', async () => {
    const r = await unary(api, 'Publish', { stream: 'orders', partition: 1, key: Buffer.from('k'), value: Buffer.from('hello'), correlationId: 'c-1' });
    assert.ok(r.ack, 'an ack');
    assert.strictEqual(r.ack.offset, '0');
    assert.strictEqual(r.ack.stream, 'orders');
    assert.strictEqual(r.ack.partitionSubject, 'orders.1');
    assert.strictEqual(r.ack.correlationId, 'c-1');
    await expectStatus(unary(api, 'Publish', { stream: 'nope', value: Buffer.from('x') }), grpc.status.NOT_FOUND, 'no such stream: nope');
    await expectStatus(unary(api, 'Publish', {}), grpc.status.INVALID_ARGUMENT, 'no stream provided');
  }],
  ['PublishAsync pipelines 1000 publishes; responses correlate by id', async () => {
    const call = api.PublishAsync();
    const acks = new Map();
    let asyncError = null;
    const done = new Promise((resolve, reject) => {
      call.on('data', (r) => {
        if (r.asyncError) asyncError = r;
        else acks.set(r.correlationId, r.ack);
      });
      call.on('error', reject);
      call.on('end', resolve);
    });
    for (let i = 0; i < 1000; i++) {
      call.write({ stream: 'orders', partition: 0, value: Buffer.from(`m${i}`), correlationId: `id-${i}`, expectedOffset: '-1' });
    }
    call.write({ stream: 'missing', value: Buffer.from('x'), correlationId: 'bad' });
    call.end();
    await done;
    assert.strictEqual(acks.size, 1000);
    const offsets = [...acks.values()].map((a) => Number(a.offset)).sort((a, b) => a - b);
    assert.deepStrictEqual(offsets, [...Array(1000).keys()]);
    for (const [id, ack] of acks) assert.strictEqual(ack.correlationId, id);
    assert.ok(asyncError, 'an async error for the missing stream');
    assert.strictEqual(asyncError.correlationId, 'bad');
    assert.strictEqual(asyncError.asyncError.code, 'NOT_FOUND');
  }],
  ['Subscribe: empty handshake frame, messages, then RESOURCE_EXHAUSTED at the stop position', async () => {
    const { messages, error } = await readStream(api.Subscribe({ stream: 'orders', partition: 0, startPosition: 'EARLIEST', stopPosition: 'STOP_LATEST' }));
    assert.strictEqual(messages[0].offset, '0');
    assert.strictEqual(messages[0].value.length, 0, 'handshake is an all-default Message');
    assert.strictEqual(messages[0].stream, '');
    const data = messages.slice(1);
    assert.strictEqual(data.length, 1000);
    assert.strictEqual(data[0].value.toString(), 'm0');
    assert.strictEqual(data[999].offset, '999');
    assert.strictEqual(data[0].headers.subject.toString(), 'orders');
    assert.ok(error, 'the stream ends with a status');
    assert.strictEqual(error.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.strictEqual(error.details, 'Stop offset reached');
  }],
  ['Subscribe to a missing stream is NOT_FOUND "No such partition"', async () => {
    const { messages, error } = await readStream(api.Subscribe({ stream: 'nope' }));
    assert.strictEqual(messages.length, 0);
    assert.strictEqual(error.code, grpc.status.NOT_FOUND);
    assert.ok(error.details.includes('No such partition'), error.details);
  }],
  ['FetchMetadata lists this broker and the stream with its partitions', async () => {
    const r = await unary(api, 'FetchMetadata', {});
    assert.strictEqual(r.brokers.length, 1);
    assert.strictEqual(r.brokers[0].partitionCount, 2);
    const orders = r.streamMetadata.find((s) => s.name === 'orders');
    assert.ok(orders);
    assert.strictEqual(orders.partitions[0].highWatermark, '999');
    assert.strictEqual(orders.partitions[1].newestOffset, '0');
    assert.strictEqual(orders.partitions[0].leader, r.brokers[0].id);
    const unknown = await unary(api, 'FetchMetadata', { streams: ['ghost'] });
    assert.strictEqual(unknown.streamMetadata[0].error, 'UNKNOWN_STREAM');
  }],
  ['FetchPartitionMetadata, PauseStream and consumer groups', async () => {
    await expectStatus(unary(api, 'FetchPartitionMetadata', { stream: 'orders', partition: 9 }), grpc.status.NOT_FOUND);
    await unary(api, 'PauseStream', { name: 'orders', partitions: [1] });
    const p = await unary(api, 'FetchPartitionMetadata', { stream: 'orders', partition: 1 });
    assert.strictEqual(p.metadata.paused, true);
    const joined = await unary(api, 'JoinConsumerGroup', { groupId: 'g', consumerId: 'c', streams: ['orders'] });
    const group = (await unary(api, 'FetchMetadata', { groups: ['g'] })).groupMetadata[0];
    assert.strictEqual(group.coordinator, joined.coordinator);
    assert.strictEqual(group.error, 'OK');
  }],
  ['DeleteStream, then NOT_FOUND', async () => {
    await unary(api, 'DeleteStream', { name: 'orders' });
    await expectStatus(unary(api, 'DeleteStream', { name: 'orders' }), grpc.status.NOT_FOUND, 'stream does not exist');
  }],
];

(async () => {
  let failed = 0;
  for (const [name, check] of checks) {
    try {
      await check();
      console.log(`ok   ${name}`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
    }
  }
  api.close();
  health.close();
  console.log(`${checks.length - failed}/${checks.length} passed`);
  process.exit(failed === 0 ? 0 : 1);
})();
