#!/usr/bin/env node
// Conformance of a Sluice gRPC endpoint against an independent gRPC implementation (grpc-js).
//
//   node conformance.js <host:port> [--suite=testserver|generic]
//
// Checks tagged "generic" hold for any server that speaks proto.API (the real broker included):
// wire-level behaviour such as UNIMPLEMENTED for unknown methods and the health service.
// Checks tagged "testserver" rely on the conventions of the in-process TEST implementation
// (tests/Sluice.Client.Tests/Grpc/TestApiServer.cs): names like "exists" or "slow" that trigger
// fixed outcomes. A later suite for the real broker adds its own tag and checks.
// Exits 0 when every selected check passes; otherwise prints each failure and exits 1.
'use strict';

const path = require('path');
const assert = require('assert');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const args = process.argv.slice(2);
const target = args.find((a) => !a.startsWith('--'));
const suiteArg = args.find((a) => a.startsWith('--suite='));
const suite = suiteArg ? suiteArg.split('=')[1] : 'testserver';
if (!target) {
  console.error('usage: node conformance.js <host:port> [--suite=testserver|generic]');
  process.exit(2);
}

const protoDir = path.resolve(__dirname, '..', '..', 'proto');
const loaded = protoLoader.loadSync([path.join(protoDir, 'api.proto'), path.join(protoDir, 'health.proto')], {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [protoDir],
});
const pkg = grpc.loadPackageDefinition(loaded);
const API = pkg.proto.API;
const Health = pkg.grpc.health.v1.Health;

const ODD_MESSAGE = 'bad name: naïve ünïcode, 流, 100% sure\ttab'; // = TestApiServer.OddMessage
const insecure = grpc.credentials.createInsecure();
const api = new API(target, insecure);
const gzipApi = new API(target, insecure, { 'grpc.default_compression_algorithm': 2 /* gzip */ });
const health = new Health(target, insecure);

const unary = (client, method, request, options = {}) => new Promise((resolve, reject) => {
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

// Reads a server stream to its end; resolves with the messages or rejects with the status error.
const readStream = (call) => new Promise((resolve, reject) => {
  const messages = [];
  call.on('data', (m) => messages.push(m));
  call.on('error', reject);
  call.on('end', () => resolve(messages));
});

const checks = [
  ['generic', 'unknown method is UNIMPLEMENTED and names the path', async () => {
    const client = new grpc.Client(target, insecure);
    const err = await expectStatus(new Promise((resolve, reject) => {
      client.makeUnaryRequest('/proto.API/NoSuchMethod', (x) => x, (x) => x, Buffer.alloc(0), (e, r) => (e ? reject(e) : resolve(r)));
    }), grpc.status.UNIMPLEMENTED);
    assert.ok(err.details.includes('/proto.API/NoSuchMethod'), `message should name the path: ${err.details}`);
    client.close();
  }],
  ['generic', 'health check: SERVING for "" and proto.API, NOT_FOUND for an unknown service', async () => {
    for (const service of ['', 'proto.API']) {
      const r = await unary(health, 'Check', { service });
      assert.strictEqual(r.status, 'SERVING', `service "${service}"`);
    }
    await expectStatus(unary(health, 'Check', { service: 'no.such.Service' }), grpc.status.NOT_FOUND);
  }],
  ['testserver', 'unary call', async () => {
    const r = await unary(api, 'FetchMetadata', { streams: ['a', 'b'] });
    assert.strictEqual(r.brokers[0].id, 'b1');
    assert.deepStrictEqual(r.streamMetadata.map((s) => s.name), ['a', 'b']);
    assert.strictEqual(r.streamMetadata[0].partitions[0].newestOffset, '42');
  }],
  ['testserver', 'unary error status and message (trailers-only)', async () => {
    await expectStatus(unary(api, 'CreateStream', { name: 'exists', subject: 'x' }), grpc.status.ALREADY_EXISTS, 'stream already exists');
  }],
  ['testserver', 'status message with non-ASCII, ":", "%" and a tab is decoded exactly', async () => {
    await expectStatus(unary(api, 'CreateStream', { name: 'bad', subject: 'x' }), grpc.status.INVALID_ARGUMENT, ODD_MESSAGE);
  }],
  ['testserver', 'a handler exception is INTERNAL', async () => {
    const err = await expectStatus(unary(api, 'CreateStream', { name: 'throw', subject: 'x' }), grpc.status.INTERNAL);
    // The exception's type and text stay in the server's log: they can hold server paths.
    assert.strictEqual(err.details, 'Exception was thrown by handler');
  }],
  ['testserver', 'server streaming: handshake then 10000 messages in order', async () => {
    const messages = await readStream(api.Subscribe({ stream: 's', startOffset: 10000 }));
    assert.strictEqual(messages.length, 10001);
    assert.strictEqual(messages[0].value.length, 0, 'first frame is the empty handshake');
    messages.slice(1).forEach((m, i) => {
      assert.strictEqual(m.offset, String(i));
      assert.strictEqual(m.value.length, 256);
    });
  }],
  ['testserver', 'server streaming error before any message', async () => {
    await expectStatus(readStream(api.Subscribe({ stream: 'missing' })), grpc.status.NOT_FOUND, 'No such partition');
  }],
  ['testserver', 'client cancel mid-stream', async () => {
    const call = api.Subscribe({ stream: 'forever' });
    await new Promise((resolve) => call.once('data', resolve));
    const ended = expectStatus(readStream(call), grpc.status.CANCELLED);
    call.cancel();
    await ended;
  }],
  ['testserver', 'deadline exceeded', async () => {
    const deadline = new Date(Date.now() + 300);
    await expectStatus(unary(api, 'CreateStream', { name: 'slow', subject: 'x' }, { deadline }), grpc.status.DEADLINE_EXCEEDED);
  }],
  ['testserver', 'bidi pipelined: 20000 publishes, an ack each, in order', async () => {
    const call = api.PublishAsync();
    const done = readStream(call);
    const value = Buffer.alloc(256);
    for (let i = 0; i < 20000; i++) call.write({ stream: 's', value, correlationId: `c${i}` });
    call.end();
    const responses = await done;
    assert.strictEqual(responses.length, 20000);
    responses.forEach((r, i) => {
      assert.strictEqual(r.correlationId, `c${i}`);
      assert.strictEqual(r.ack.offset, String(i));
    });
  }],
  ['testserver', 'gzip-compressed requests (unary and bidi)', async () => {
    const value = Buffer.alloc(64 * 1024);
    const r = await unary(gzipApi, 'Publish', { stream: 's', value, correlationId: 'z' });
    assert.strictEqual(r.ack.offset, String(value.length), 'the server saw the whole decompressed value');
    assert.strictEqual(r.ack.msgSubject, 'gzip', 'the request was sent with grpc-encoding gzip');
    const call = gzipApi.PublishAsync();
    const done = readStream(call);
    call.write({ stream: 's', value, correlationId: 'g' });
    call.end();
    const responses = await done;
    assert.deepStrictEqual(responses.map((x) => x.correlationId), ['g']);
  }],
];

const withTimeout = (promise, ms, name) => Promise.race([
  promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${name}`)), ms).unref()),
]);

(async () => {
  const selected = checks.filter(([tag]) => tag === 'generic' || tag === suite);
  const failures = [];
  for (const [tag, name, fn] of selected) {
    try {
      await withTimeout(fn(), 30000, name);
      console.log(`PASS [${tag}] ${name}`);
    } catch (err) {
      failures.push(name);
      console.log(`FAIL [${tag}] ${name}: ${err && err.stack ? err.stack : err}`);
    }
  }
  api.close(); gzipApi.close(); health.close();
  console.log(`${selected.length - failures.length} passed, ${failures.length} failed (grpc-js ${require('@grpc/grpc-js/package.json').version}, target ${target}, suite ${suite})`);
  process.exit(failures.length === 0 ? 0 : 1);
})();
