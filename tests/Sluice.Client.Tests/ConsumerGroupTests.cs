using System.Collections.Concurrent;
using Xunit.Abstractions;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>
/// <see cref="SluiceConsumer"/> against the real in-process Sluice broker, and against Liftbridge v1.9.0 with
/// scripts/client-vs-liftbridge.sh (all but one pass there unchanged).
/// </summary>
public sealed class ConsumerGroupTests(ITestOutputHelper output)
{
    // Liftbridge rebalances every partition when one member leaves, so a partition can move between two live members, and
    // its new owner may read the group's cursor before the old owner's commit: it repeats a few messages there.
    private const string Reason = "no repeats after a leave needs Sluice's sticky assignment (Liftbridge moves the other members' partitions too)";

    // Fast rebalances: the members fetch their assignments often; commits happen on rebalance, disposal and CommitAsync.
    private static readonly ConsumerOptions Fast = ConsumerOptions.Default with { FetchInterval = TimeSpan.FromMilliseconds(100), AutoCommitInterval = TimeSpan.Zero };

    /// <summary>What one member received: (partition, offset) in order, and the rebalance callbacks it saw.</summary>
    private sealed class Member
    {
        public ConcurrentQueue<(int Partition, long Offset)> Received { get; } = new();

        public ConcurrentQueue<string> Events { get; } = new();

        public ConsumerOptions Options(string id) => Fast with
        {
            ConsumerId = id,
            PartitionsAssigned = p => { Events.Enqueue("+" + string.Join(",", p)); return ValueTask.CompletedTask; },
            PartitionsRevoked = p => { Events.Enqueue("-" + string.Join(",", p)); return ValueTask.CompletedTask; },
        };

        public ValueTask Handle(SluiceMessage message, CancellationToken cancellationToken)
        {
            Received.Enqueue((message.Partition, message.Offset));
            return ValueTask.CompletedTask;
        }
    }

    private static async Task PublishAsync(SluiceClient client, string stream, int partitions, int perPartition)
    {
        var publishes = new List<Task>();
        for (var partition = 0; partition < partitions; partition++)
        {
            for (var i = 0; i < perPartition; i++)
            {
                publishes.Add(client.PublishAsync(stream, Bytes($"{partition}-{i}"), MessageOptions.Default with { Partition = partition }));
            }
        }

        await Task.WhenAll(publishes);
    }

    [Fact]
    public async Task One_consumer_gets_every_partition_and_every_message()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("orders", "orders", StreamOptions.Default with { Partitions = 3 });
        await PublishAsync(client, "orders", 3, 10);

        var member = new Member();
        await using var consumer = client.CreateConsumer("g", member.Options("c1"));
        await consumer.SubscribeAsync(["orders"], member.Handle);
        await WaitUntilAsync(() => member.Received.Count >= 30, "the consumer has every message");

        Assert.Equal("c1", consumer.ConsumerId);
        Assert.Equal(["orders"], consumer.Streams);
        Assert.Equal([0, 1, 2], consumer.Assignments.Select(p => p.Partition).Order());
        Assert.Equal(30, member.Received.Distinct().Count());
        Assert.Equal(30, member.Received.Count);
        foreach (var partition in Enumerable.Range(0, 3))
        {
            Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), member.Received.Where(r => r.Partition == partition).Select(r => r.Offset)); // in order
        }

        Assert.Equal(["+orders[0],orders[1],orders[2]"], member.Events);
    }

    [Fact]
    public async Task A_generated_consumer_id_is_unique()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await using var a = client.CreateConsumer("g");
        await using var b = client.CreateConsumer("g");
        Assert.NotEqual(a.ConsumerId, b.ConsumerId);
        Assert.False(string.IsNullOrEmpty(a.ConsumerId));
        Assert.Throws<ArgumentException>(() => client.CreateConsumer("g", ConsumerOptions.Default with { ConsumerId = "" }));
    }

    [SluiceOnly(Reason)]
    [Fact]
    public async Task Three_consumers_share_six_partitions_then_one_leaves_and_no_message_is_skipped()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("orders", "orders", StreamOptions.Default with { Partitions = 6 });

        var members = new[] { new Member(), new Member(), new Member() };
        var consumers = new List<SluiceConsumer>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var consumer = client.CreateConsumer("g", members[i].Options($"c{i}"));
                consumers.Add(consumer);
                await consumer.SubscribeAsync(["orders"], members[i].Handle);
            }

            await WaitUntilAsync(() => consumers.All(c => c.Assignments.Count == 2), "each of the three reads two partitions");
            var owned = consumers.Select(c => c.Assignments.Select(p => p.Partition).ToHashSet()).ToArray();
            Assert.Equal(Enumerable.Range(0, 6), owned.SelectMany(o => o).Order()); // disjoint, and together all six

            await PublishAsync(client, "orders", 6, 10);
            await WaitUntilAsync(() => members.Sum(m => m.Received.Count) >= 60, "the group has every message");
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(20, members[i].Received.Count);
                Assert.All(members[i].Received, r => Assert.Contains(r.Partition, owned[i]));
            }

            // c0 leaves while messages keep arriving: its two partitions move to the others.
            var publishing = PublishAsync(client, "orders", 6, 20);
            await consumers[0].DisposeAsync();
            await publishing;
            Assert.Contains(members[0].Events, e => e.StartsWith('-'));

            // The others see the move on their next assignment fetch; c0 may have read everything published so far before it
            // left, so more messages after the move show that the new owners carry on from c0's position.
            await WaitUntilAsync(() => consumers.Skip(1).All(c => c.Assignments.Count == 3), "the two remaining members read three partitions each");
            Assert.Equal(Enumerable.Range(0, 6), consumers.Skip(1).SelectMany(c => c.Assignments).Select(p => p.Partition).Order());
            var movedReceived = members[1].Received.Count + members[2].Received.Count;
            await PublishAsync(client, "orders", 6, 10);
            await WaitUntilAsync(
                () => members.SelectMany(m => m.Received).Distinct().Count() >= 240,
                "every message reached a member");
            Assert.True(members[1].Received.Count + members[2].Received.Count - movedReceived >= 60, "the messages published after the move went to the two remaining members");

            var all = members.SelectMany(m => m.Received).ToList();
            foreach (var partition in Enumerable.Range(0, 6))
            {
                Assert.Equal(Enumerable.Range(0, 40).Select(i => (long)i), all.Where(r => r.Partition == partition).Select(r => r.Offset).Distinct().Order()); // none skipped
            }

            // c0 stopped its handlers and committed before leaving, so the next owners start right after its last message.
            var duplicates = all.GroupBy(r => r).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            output.WriteLine($"duplicates around the move: {duplicates.Count}");
            Assert.Empty(duplicates);
        }
        finally
        {
            foreach (var consumer in consumers)
            {
                await consumer.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_commit_covers_only_handled_messages_and_a_restarted_consumer_resumes_after_it()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("orders", "orders");
        await PublishAsync(client, "orders", 1, 10);

        // The handler returns for offsets 0..4 and hangs on 5 until the consumer stops.
        var reached5 = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = client.CreateConsumer("g", Fast with { ConsumerId = "c1" });
        await using (first)
        {
            await first.SubscribeAsync(["orders"], async (message, cancellationToken) =>
            {
                if (message.Offset == 5)
                {
                    reached5.TrySetResult();
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }
            });
            await reached5.Task.WaitAsync(WaitLimit);
            await first.CommitAsync();
            Assert.Equal(4, await client.FetchCursorAsync("__group:g", "orders", 0));
        }

        Assert.Equal(4, await client.FetchCursorAsync("__group:g", "orders", 0)); // disposal did not count offset 5 as handled

        // Same id, as after a process restart: it starts after the committed offset.
        var member = new Member();
        await using var second = client.CreateConsumer("g", member.Options("c1"));
        await second.SubscribeAsync(["orders"], member.Handle);
        await WaitUntilAsync(() => member.Received.Count >= 5, "the restarted consumer read the rest");
        Assert.Equal(Enumerable.Range(5, 5).Select(i => (0, (long)i)), member.Received);

        await second.CommitAsync();
        Assert.Equal(9, await client.FetchCursorAsync("__group:g", "orders", 0));
    }

    [Fact]
    public async Task A_message_whose_handler_throws_is_delivered_again_and_nothing_after_it_is_committed_first()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("orders", "orders");
        await PublishAsync(client, "orders", 1, 10);

        // Offset 3 fails three times, then succeeds.
        var handled = new ConcurrentQueue<long>();
        var attemptsOf3 = 0;
        var errors = new ConcurrentQueue<Exception>();
        await using var consumer = client.CreateConsumer("g", Fast with { ConsumerId = "c1", OnError = e => { errors.Enqueue(e); return ValueTask.CompletedTask; } });
        await consumer.SubscribeAsync(["orders"], (message, _) =>
        {
            if (message.Offset == 3 && Interlocked.Increment(ref attemptsOf3) <= 3)
            {
                throw new InvalidOperationException("the handler failed on purpose");
            }

            handled.Enqueue(message.Offset);
            return ValueTask.CompletedTask;
        });
        await WaitUntilAsync(() => handled.Count >= 10, "every message handled");

        Assert.Equal(4, Volatile.Read(ref attemptsOf3));
        Assert.Equal(3, errors.Count);
        Assert.All(errors, e => Assert.Equal("the handler failed on purpose", e.Message));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), handled); // each handled once, in order: 4 came only after 3 succeeded
        await consumer.CommitAsync();
        Assert.Equal(9, await client.FetchCursorAsync("__group:g", "orders", 0));
    }

    [Fact]
    public async Task A_consumer_restarted_before_the_group_expired_its_old_self_carries_on_as_that_member()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("orders", "orders", StreamOptions.Default with { Partitions = 2 });
        await PublishAsync(client, "orders", 2, 5);

        // The first process dies without leaving: its connection closes, the coordinator still lists the member.
        var crashed = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        var first = new Member();
        var old = crashed.CreateConsumer("g", first.Options("c1"));
        await old.SubscribeAsync(["orders"], first.Handle);
        await WaitUntilAsync(() => first.Received.Count >= 10, "the first incarnation read everything");
        await old.CommitAsync();
        await crashed.DisposeAsync();
        await old.DisposeAsync(); // its leave fails: the client is closed

        var member = new Member();
        await using var restarted = client.CreateConsumer("g", member.Options("c1"));
        await restarted.SubscribeAsync(["orders"], member.Handle); // "already a member" is not an error
        await WaitUntilAsync(() => restarted.Assignments.Count == 2, "the restarted member reads both partitions");
        await PublishAsync(client, "orders", 2, 5);
        await WaitUntilAsync(() => member.Received.Count >= 10, "the restarted member read the new messages");
        Assert.Equal(10, member.Received.Count); // and only those: it resumed after the committed positions
        Assert.All(member.Received, r => Assert.True(r.Offset >= 5));
    }

    [Fact]
    public async Task Without_a_committed_position_Latest_reads_only_new_messages_and_None_waits_for_one()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("orders", "orders");
        await client.CreateStreamAsync("invoices", "invoices");
        await PublishAsync(client, "orders", 1, 5);
        await PublishAsync(client, "invoices", 1, 5);

        var latest = new Member();
        await using (var consumer = client.CreateConsumer("new-only", latest.Options("c1") with { AutoOffsetReset = AutoOffsetReset.Latest }))
        {
            await consumer.SubscribeAsync(["orders"], latest.Handle);
            await WaitUntilAsync(() => consumer.Assignments.Count == 1, "the member reads the partition");
            await PublishAsync(client, "orders", 1, 3);
            await WaitUntilAsync(() => latest.Received.Count >= 3, "the member read the new messages");
            Assert.Equal([(0, 5L), (0, 6L), (0, 7L)], latest.Received);
        }

        var none = new Member();
        var errors = new ConcurrentQueue<Exception>();
        await using var waiting = client.CreateConsumer("no-reset", none.Options("c1") with
        {
            AutoOffsetReset = AutoOffsetReset.None,
            OnError = e => { errors.Enqueue(e); return ValueTask.CompletedTask; },
        });
        await waiting.SubscribeAsync(["invoices"], none.Handle);
        await WaitUntilAsync(() => !errors.IsEmpty, "the member reported the missing position");
        var error = Assert.IsType<NoCommittedOffsetException>(Assert.Single(errors));
        Assert.Equal("no previous consumer group offset found for partition 0 of stream invoices", error.Message);
        Assert.Empty(waiting.Assignments);

        // An operator sets the group's position: the member starts after it on a later fetch, and reported the error once.
        await client.SetCursorAsync("__group:no-reset", "invoices", 0, 2);
        await WaitUntilAsync(() => none.Received.Count >= 2, "the member read after the position set for it");
        Assert.Equal([(0, 3L), (0, 4L)], none.Received);
        Assert.Single(errors);
    }

    [Fact]
    public async Task A_member_rides_out_a_server_restart()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("orders", "orders", StreamOptions.Default with { Partitions = 2 });
        await PublishAsync(client, "orders", 2, 5);

        var member = new Member();
        await using var consumer = client.CreateConsumer("g", member.Options("c1"));
        await consumer.SubscribeAsync(["orders"], member.Handle);
        await WaitUntilAsync(() => member.Received.Count >= 10, "the consumer read the first messages");

        // Fetches and subscriptions fail while the server is down; the member backs off and carries on after.
        await server.StopAsync();
        await server.RestartAsync();
        await PublishAsync(client, "orders", 2, 5);
        await WaitUntilAsync(() => member.Received.Distinct().Count() >= 20, "the consumer read the messages published after the restart");
        Assert.Equal(2, consumer.Assignments.Count);
        foreach (var partition in Enumerable.Range(0, 2))
        {
            Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), member.Received.Where(r => r.Partition == partition).Select(r => r.Offset).Distinct().Order());
        }

        // Its fetch loop survived the outage: a second member gets a partition from it.
        var other = new Member();
        await using var second = client.CreateConsumer("g", other.Options("c2"));
        await second.SubscribeAsync(["orders"], other.Handle);
        await WaitUntilAsync(() => consumer.Assignments.Count == 1 && second.Assignments.Count == 1, "the two members share the partitions");
        // The revocation is reported after the partition's reader stopped (Assignments drops it first).
        await WaitUntilAsync(() => member.Events.Any(e => e.StartsWith('-')), "the first member was told of its revoked partition");
        Assert.Contains(member.Events, e => e.StartsWith('-'));
    }

    [Fact]
    public async Task Enumerated_messages_count_as_handled_once_the_enumeration_moves_past_them()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("orders", "orders");
        await PublishAsync(client, "orders", 1, 10);

        var offsets = new List<long>();
        await using (var consumer = client.CreateConsumer("g", Fast with { ConsumerId = "c1" }))
        {
            await foreach (var message in consumer.ReadAllAsync(["orders"]).WithCancellation(TimeoutToken()))
            {
                offsets.Add(message.Offset);
                if (message.Offset == 5)
                {
                    await consumer.CommitAsync();
                    Assert.Equal(4, await client.FetchCursorAsync("__group:g", "orders", 0)); // 5 is being handled
                }

                if (message.Offset == 9)
                {
                    break; // never moved past 9
                }
            }
        }

        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), offsets);
        Assert.Equal(8, await client.FetchCursorAsync("__group:g", "orders", 0));
    }
}
