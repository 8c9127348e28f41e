using System.Collections.Concurrent;
using System.Security.Cryptography;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>
/// The broker's hand-offs under concurrency, against the real server: acks posted by several
/// partitions onto one PublishAsync stream, inline appends racing the write loop, and record
/// bytes lent to outgoing messages (a buffer reused too early would corrupt values).
/// </summary>
public sealed class RealServerConcurrencyTests
{
    [Fact]
    public async Task Concurrent_pipelined_and_synchronous_publishers_get_every_ack_with_dense_offsets()
    {
        const int Partitions = 4;
        const int PipelinedPerPartition = 1500;
        const int SynchronousPerPartition = 100;
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("c", "c", StreamOptions.Default with { Partitions = Partitions });

        var offsets = new ConcurrentDictionary<(int Partition, long Offset), string>();
        var errors = new ConcurrentQueue<Exception>();
        var acked = 0;
        var allAcked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        const int Pipelined = Partitions * PipelinedPerPartition;

        // One client, so every publisher shares one PublishAsync stream: the acks of four partition
        // writers interleave on it while synchronous publishers append inline next to the bursts.
        var pipelined = Enumerable.Range(0, Partitions).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < PipelinedPerPartition; i++)
            {
                var value = $"p{p}-{i}";
                await client.PublishAsync("c", Bytes(value), (ack, error) =>
                {
                    if (error is not null)
                    {
                        errors.Enqueue(error);
                    }
                    else if (!offsets.TryAdd((p, ack!.Offset), value))
                    {
                        errors.Enqueue(new InvalidOperationException($"offset {ack.Offset} acked twice"));
                    }

                    if (Interlocked.Increment(ref acked) == Pipelined)
                    {
                        allAcked.TrySetResult();
                    }
                }, new MessageOptions { Partition = p });
            }
        })).ToList();
        var synchronous = Enumerable.Range(0, Partitions).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < SynchronousPerPartition; i++)
            {
                var value = $"s{p}-{i}";
                var ack = await client.PublishAsync("c", Bytes(value), new MessageOptions { Partition = p });
                Assert.True(offsets.TryAdd((p, ack!.Offset), value), $"offset {ack.Offset} of partition {p} acked twice");
            }
        })).ToList();

        await Task.WhenAll(pipelined.Concat(synchronous)).WaitAsync(WaitLimit);
        await allAcked.Task.WaitAsync(WaitLimit);
        Assert.Empty(errors);

        for (var p = 0; p < Partitions; p++)
        {
            var count = PipelinedPerPartition + SynchronousPerPartition;
            var acks = offsets.Keys.Where(k => k.Partition == p).Select(k => k.Offset).Order().ToList();
            Assert.Equal(Enumerable.Range(0, count).Select(i => (long)i), acks); // dense: no gap, no duplicate

            // What was acked at an offset is what is stored there.
            var stored = await client.SubscribeAsync("c", SubscribeOptions.Default.StartAtEarliest() with { Partition = p }).TakeAsync(count);
            Assert.All(stored, m => Assert.Equal(offsets[(p, m.Offset)], Text(m.Value)));

            // Each publisher's own messages keep their order within the partition.
            foreach (var prefix in new[] { $"p{p}-", $"s{p}-" })
            {
                var sequence = stored.Select(m => Text(m.Value)).Where(v => v.StartsWith(prefix, StringComparison.Ordinal))
                    .Select(v => int.Parse(v[prefix.Length..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
                Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
            }
        }
    }

    [Fact]
    public async Task Every_round_of_pipelined_publishes_gets_its_last_ack_promptly()
    {
        // One publisher queueing 1,000 messages with the callback form and then waiting for the last
        // ack, 30 times. An ack left unflushed in the server's response buffer shows up here as a
        // round that only ends when its ack timer fires (the ack wait is raised well above it).
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions with { AckWaitTime = TimeSpan.FromMinutes(1) });
        await client.CreateStreamAsync("r", "r");
        var value = new byte[64];
        for (var round = 0; round < 30; round++)
        {
            var remaining = 1000;
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            AckHandler onAck = (_, error) =>
            {
                if (error is not null)
                {
                    done.TrySetException(error);
                }
                else if (Interlocked.Decrement(ref remaining) == 0)
                {
                    done.TrySetResult();
                }
            };
            for (var i = 0; i < 1000; i++)
            {
                await client.PublishAsync("r", value, onAck);
            }

            var finished = await Task.WhenAny(done.Task, Task.Delay(WaitLimit));
            Assert.True(finished == done.Task, $"round {round}: {Volatile.Read(ref remaining)} acks still missing after {WaitLimit}");
            await done.Task;
        }
    }

    [Fact]
    public async Task Messages_larger_than_the_clients_write_chunk_are_sent_and_acked()
    {
        // A request of 32 KB or more fills the client's write chunk by itself: the pass that writes it
        // must still flush, or the request waits in HttpClient's buffer until something else is sent.
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions with { AckWaitTime = TimeSpan.FromSeconds(5) });
        await client.CreateStreamAsync("big", "big");
        var value = new byte[40 * 1024];
        for (var i = 0; i < 10; i++)
        {
            value[0] = (byte)i;
            Assert.Equal(i, (await client.PublishAsync("big", value))!.Offset);
        }

        var pending = Enumerable.Range(0, 10).Select(_ => client.PublishAsync("big", value)).ToList();
        Assert.Equal(Enumerable.Range(10, 10).Select(i => (long)i), (await Task.WhenAll(pending).WaitAsync(WaitLimit)).Select(a => a!.Offset).Order());
    }

    [Fact]
    public async Task Subscribers_receive_every_value_intact_across_read_batches_and_segments()
    {
        const int Count = 3000;
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);

        // Small segments: reads cross segment files; sizes up to 3 KB: read batches end mid-stream.
        await client.CreateStreamAsync("v", "v", StreamOptions.Default with { SegmentMaxBytes = 256 * 1024 });
        var random = new Random(42);
        var values = Enumerable.Range(0, Count).Select(_ =>
        {
            var value = new byte[random.Next(1, 3000)];
            random.NextBytes(value);
            return value;
        }).ToArray();
        var keys = Enumerable.Range(0, Count).Select(i => Bytes($"key-{i}")).ToArray();

        // A live subscriber (caught up, flushed per batch as messages arrive) and, afterwards, a
        // reader from the start (large read batches, flushed at the threshold).
        var live = client.SubscribeAsync("v", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(Count);
        var pending = new List<Task>();
        for (var i = 0; i < Count; i++)
        {
            var headers = new Dictionary<string, ReadOnlyMemory<byte>> { ["h"] = SHA256.HashData(values[i]) };
            pending.Add(client.PublishAsync("v", values[i], new MessageOptions { Key = keys[i], Headers = headers }));
        }

        await Task.WhenAll(pending).WaitAsync(WaitLimit);
        var replay = await client.SubscribeAsync("v", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(Count);
        foreach (var received in new[] { await live.WaitAsync(WaitLimit), replay })
        {
            Assert.Equal(Count, received.Count);
            for (var i = 0; i < Count; i++)
            {
                var message = received[i];
                Assert.Equal(i, message.Offset);
                Assert.True(values[i].AsSpan().SequenceEqual(message.Value.Span), $"value at offset {i} differs");
                Assert.Equal($"key-{i}", Text(message.Key));
                Assert.Equal(SHA256.HashData(values[i]), message.Headers["h"].ToArray());
            }
        }
    }
}

/// <summary>The duplex call's shared writer when the connection dies under many queued requests.</summary>
public sealed class DuplexWriterFailureTests
{
    [Fact]
    public async Task Writers_queued_behind_a_failed_write_get_the_failure_instead_of_waiting_forever()
    {
        await using var server = await RealServer.StartAsync();
        using var channel = new Sluice.Client.Grpc.GrpcChannel(new Uri($"http://{server.Address}"));
        await channel.UnaryAsync("/proto.API/CreateStream", new Protocol.Api.CreateStreamRequest { Name = "w", Subject = "w" }, Protocol.Api.CreateStreamResponse.Parser, WaitLimit);
        await using var call = channel.DuplexStreaming<Protocol.Api.PublishRequest, Protocol.Api.PublishResponse>("/proto.API/PublishAsync", Protocol.Api.PublishResponse.Parser);

        // Four writers far faster than the server: the queue fills past its capacity, so most of them
        // wait for the stream. Stopping the server fails the write in progress; every writer must end.
        var value = Google.Protobuf.ByteString.CopyFrom(new byte[512]);
        var written = 0;
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = 0; ; i++)
            {
                await call.WriteAsync(new Protocol.Api.PublishRequest { Stream = "w", CorrelationId = $"{w}-{i}", Value = value });
                Interlocked.Increment(ref written);
            }
        })).ToList();
        var reader = Task.Run(async () =>
        {
            while (await call.MoveNextAsync())
            {
            }
        });

        await WaitUntilAsync(() => Volatile.Read(ref written) > 20_000, "the writers to get going");
        await server.StopAsync();
        foreach (var task in writers.Append(reader))
        {
            var error = await Record.ExceptionAsync(() => task.WaitAsync(WaitLimit));
            Assert.True(task.IsCompleted, $"a writer or the reader still waits after {WaitLimit}");
            Assert.NotNull(error); // the connection's failure
        }
    }
}
