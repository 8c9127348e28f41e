using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Sluice.Client;
using Xunit.Abstractions;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>
/// Three <see cref="SluiceConsumer"/>s share a replicated 6-partition stream on three real brokers: the group's
/// coordinator is SIGKILLed, then one member dies without leaving. Every acknowledged message is processed.
/// </summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class ConsumerGroupFailoverTests(ITestOutputHelper output)
{
    private const string Stream = "grouped";
    private const string Group = "workers";
    private const int Partitions = 6;

    [Fact]
    public async Task Coordinator_SIGKILLed_then_a_member_killed_and_no_acknowledged_message_is_skipped()
    {
        // A dead member leaves its group after groups.consumer.timeout: short here, so its partitions move within the test.
        await using var cluster = await ProcessCluster.StartAsync(3, "groups.consumer.timeout: 4s\n");
        var log = new ClientLog();
        using var loggerFactory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Debug).AddProvider(log));
        var clientOptions = new SluiceClientOptions { IdempotentPublishing = true, AckWaitTime = TimeSpan.FromSeconds(10), ResubscribeWaitTime = TimeSpan.FromSeconds(30), LoggerFactory = loggerFactory };
        await using var publisher = await SluiceClient.ConnectAsync(cluster.Addresses, clientOptions);
        await publisher.CreateStreamAsync(Stream, Stream, new StreamOptions { Partitions = Partitions, ReplicationFactor = 3 });
        for (var partition = 0; partition < Partitions; partition++)
        {
            await cluster.WaitForFullIsrAsync(Stream, partition);
        }

        var handled = new ConcurrentQueue<(string Member, int Partition, long Offset)>();
        var clients = new List<SluiceClient>();
        var consumers = new List<SluiceConsumer>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var member = "c" + i.ToString(CultureInfo.InvariantCulture);
                var client = await SluiceClient.ConnectAsync(cluster.Addresses, clientOptions);
                clients.Add(client);
                var consumer = client.CreateConsumer(Group, ConsumerOptions.Default with
                {
                    ConsumerId = member,
                    FetchInterval = TimeSpan.FromMilliseconds(200),
                    AutoCommitInterval = TimeSpan.FromMilliseconds(300),
                });
                consumers.Add(consumer);
                await consumer.SubscribeAsync([Stream], (message, _) =>
                {
                    handled.Enqueue((member, message.Partition, message.Offset));
                    return ValueTask.CompletedTask;
                });
            }

            await cluster.WaitForAsync(() => Task.FromResult(consumers.All(c => c.Assignments.Count == 2)), "each member reads two partitions");
            var acked = new ConcurrentDictionary<(int Partition, long Offset), bool>();
            var next = 0;
            await PublishRoundAsync(publisher, acked, next++);
            await WaitForAllHandledAsync(cluster, acked, handled, "the first round");

            // The coordinator's broker dies: the members report it, the group moves to a live broker, reading goes on.
            var coordinator = (await publisher.FetchMetadataAsync(new FetchMetadataOptions { ConsumerGroups = [Group] })).GetConsumerGroup(Group)!.Coordinator;
            output.WriteLine($"coordinator {coordinator}");
            var publishing = PublishRoundAsync(publisher, acked, next++);
            await cluster.KillAsync(cluster[coordinator]);
            await publishing;
            string? newCoordinator = null;
            await cluster.WaitForAsync(
                async () =>
                {
                    var metadata = await publisher.FetchMetadataAsync(new FetchMetadataOptions { ConsumerGroups = [Group] });
                    newCoordinator = metadata.GetConsumerGroup(Group)?.Coordinator;
                    return newCoordinator is not null && newCoordinator != coordinator;
                },
                "the group has a new coordinator");
            output.WriteLine($"new coordinator {newCoordinator}");
            await PublishRoundAsync(publisher, acked, next++);
            await WaitForAllHandledAsync(cluster, acked, handled, "the rounds around the coordinator's death");

            // c0's process dies without leaving: it expires after the consumer timeout and its partitions move.
            await clients[0].DisposeAsync();
            await consumers[0].DisposeAsync(); // its leave cannot be sent: the client is closed
            var publishingAgain = PublishRoundAsync(publisher, acked, next++);
            await cluster.WaitForAsync(() => Task.FromResult(consumers.Skip(1).All(c => c.Assignments.Count == 3)), "the two live members read three partitions each");
            await publishingAgain;
            await PublishRoundAsync(publisher, acked, next++);
            await WaitForAllHandledAsync(cluster, acked, handled, "every round");

            var byC0 = handled.Count(h => h.Member == "c0");
            var duplicates = handled.GroupBy(h => (h.Partition, h.Offset)).Count(g => g.Count() > 1);
            output.WriteLine($"{acked.Count} acked, {handled.Count} handled ({byC0} by c0), {duplicates} handled more than once");
            Assert.Equal(Enumerable.Range(0, Partitions), consumers.Skip(1).SelectMany(c => c.Assignments).Select(p => p.Partition).Order());
        }
        catch
        {
            output.WriteLine("the clients' log:\n" + log);
            output.WriteLine(cluster.LogTails());
            throw;
        }
        finally
        {
            foreach (var consumer in consumers)
            {
                await consumer.DisposeAsync();
            }

            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    /// <summary>Publishes 20 messages to each partition with ALL acks, recording what was acknowledged (failures are not).</summary>
    private static async Task PublishRoundAsync(SluiceClient publisher, ConcurrentDictionary<(int, long), bool> acked, int round)
    {
        var publishes = new List<Task>();
        for (var partition = 0; partition < Partitions; partition++)
        {
            for (var i = 0; i < 20; i++)
            {
                var value = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"r{round}-p{partition}-{i}"));
                var options = new MessageOptions { Partition = partition, AckPolicy = AckPolicy.All };
                var target = partition;
                publishes.Add(Task.Run(async () =>
                {
                    try
                    {
                        var ack = await publisher.PublishAsync(Stream, value, options);
                        acked.TryAdd((target, ack!.Offset), true);
                    }
                    catch (SluiceException)
                    {
                        // Not acknowledged, so not required to reach a consumer.
                    }
                }));
            }
        }

        await Task.WhenAll(publishes);
    }

    private async Task WaitForAllHandledAsync(ProcessCluster cluster, ConcurrentDictionary<(int Partition, long Offset), bool> acked, ConcurrentQueue<(string Member, int Partition, long Offset)> handled, string what)
    {
        try
        {
            await cluster.WaitForAsync(() => Task.FromResult(Missing(acked, handled).Count == 0), $"every acknowledged message of {what} was handled");
        }
        catch
        {
            output.WriteLine("not handled: " + string.Join(", ", Missing(acked, handled).GroupBy(m => m.Partition).Select(g => $"p{g.Key} x{g.Count()} from {g.Min(m => m.Offset)}")));
            throw;
        }
    }

    private static List<(int Partition, long Offset)> Missing(ConcurrentDictionary<(int Partition, long Offset), bool> acked, ConcurrentQueue<(string Member, int Partition, long Offset)> handled)
    {
        var seen = handled.Select(h => (h.Partition, h.Offset)).ToHashSet();
        return acked.Keys.Where(k => !seen.Contains(k)).ToList();
    }

    /// <summary>The clients' log lines, shown when the test fails.</summary>
    private sealed class ClientLog : ILoggerProvider
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        public override string ToString() => string.Join('\n', _lines);

        private sealed class Logger(ClientLog log, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                log._lines.Enqueue(string.Create(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel} {category}: {formatter(state, exception)} {exception?.Message}"));
        }
    }
}
