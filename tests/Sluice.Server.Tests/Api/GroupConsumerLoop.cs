using System.Collections.Concurrent;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;

namespace Sluice.Server.Tests.Api;

/// <summary>
/// go-liftbridge's consumer (v2/consumer.go) as it drives a server, over raw gRPC: join, then every interval fetch the
/// assignments from the coordinator with the current epoch (on an error: read coordinator and epoch from FetchMetadata,
/// wait, try again), cancel subscriptions no longer assigned or of an older epoch, subscribe to new ones after the
/// group cursor (<c>__group:&lt;group&gt;</c>) or from the earliest message, and commit the last delivered offset of each
/// partition. <see cref="KillAsync"/> stops it without leaving (a crash); <see cref="CloseAsync"/> commits and leaves.
/// </summary>
internal sealed class GroupConsumerLoop : IAsyncDisposable
{
    private readonly BrokerHarness _server;
    private readonly string _group;
    private readonly string _id;
    private readonly string[] _streams;
    private readonly TimeSpan _interval;
    private readonly Action<string, Message> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<(string Stream, int Partition), Sub> _subs = new();
    private Task _loop = Task.CompletedTask;
    private ulong _epoch;

    public GroupConsumerLoop(BrokerHarness server, string group, string id, string[] streams, TimeSpan interval, Action<string, Message> handler)
    {
        _server = server;
        _group = group;
        _id = id;
        _streams = streams;
        _interval = interval;
        _handler = handler;
    }

    /// <summary>Subscriptions that ended with an error status (go-liftbridge hands these to the handler).</summary>
    public ConcurrentBag<string> Errors { get; } = [];

    /// <summary>The partitions this consumer reads now.</summary>
    public ICollection<(string Stream, int Partition)> Reading => _subs.Keys;

    public string Step { get; private set; } = "";

    private sealed class Sub(ulong epoch, CancellationTokenSource cancel)
    {
        public ulong Epoch { get; } = epoch;

        public CancellationTokenSource Cancel { get; } = cancel;

        public long Delivered { get; set; } = -1;

        public long Committed { get; set; } = -1;

        public Task Reader { get; set; } = Task.CompletedTask;
    }

    public async Task StartAsync()
    {
        var join = await _server.CallAsync("JoinConsumerGroup", new JoinConsumerGroupRequest { GroupId = _group, ConsumerId = _id, Streams = { _streams } }, JoinConsumerGroupResponse.Parser);
        _epoch = join.Epoch; // one node: the coordinator is the server this loop talks to
        _loop = Task.Run(() => RunAsync(_stop.Token));
    }

    private async Task RunAsync(CancellationToken stop)
    {
        try
        {
            while (true)
            {
                stop.ThrowIfCancellationRequested();
                try
                {
                    Step = "fetch";
                    var response = await _server.CallAsync("FetchConsumerGroupAssignments", new FetchConsumerGroupAssignmentsRequest { GroupId = _group, ConsumerId = _id, Epoch = _epoch }, FetchConsumerGroupAssignmentsResponse.Parser);
                    await ReconcileAsync(response, stop);
                    Step = "checkpoint";
                    await CheckpointAsync();
                    Step = "sleep";
                }
                catch (GrpcException)
                {
                    // go-liftbridge: look the coordinator and epoch up again, then sleep (2 s there; the interval here).
                    var metadata = await _server.CallAsync("FetchMetadata", new FetchMetadataRequest { Groups = { _group } }, FetchMetadataResponse.Parser);
                    var group = metadata.GroupMetadata[0];
                    if (group.Error == ConsumerGroupMetadata.Types.Error.Ok)
                    {
                        _epoch = group.Epoch;
                    }
                }

                await Task.Delay(_interval, stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // killed or closed
        }
    }

    private async Task ReconcileAsync(FetchConsumerGroupAssignmentsResponse response, CancellationToken stop)
    {
        var assigned = response.Assignments.SelectMany(a => a.Partitions.Select(p => (a.Stream, p))).ToHashSet();
        foreach (var (key, sub) in _subs)
        {
            if (!assigned.Contains(key) || sub.Epoch != response.Epoch)
            {
                Step = "commit before cancel";
                await CommitAsync(key, sub); // go-liftbridge cancels without committing; committing first only narrows duplicates
                Step = "cancel";
                await sub.Cancel.CancelAsync();
                _subs.TryRemove(key, out _);
            }
        }

        foreach (var key in assigned.Where(k => !_subs.ContainsKey(k)))
        {
            Step = "fetch cursor";
            var cursor = await _server.CallAsync("FetchCursor", new FetchCursorRequest { CursorId = "__group:" + _group, Stream = key.Stream, Partition = key.p }, FetchCursorResponse.Parser);
            var request = new SubscribeRequest
            {
                Stream = key.Stream,
                Partition = key.p,
                StartPosition = cursor.Offset >= 0 ? StartPosition.Offset : StartPosition.Earliest,
                StartOffset = cursor.Offset + 1,
                Consumer = new Consumer { GroupId = _group, ConsumerId = _id, GroupEpoch = response.Epoch },
            };
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(stop);
            var sub = new Sub(response.Epoch, cancel) { Committed = cursor.Offset, Delivered = cursor.Offset };
            _subs[key] = sub;
            sub.Reader = Task.Run(() => ReadAsync(key, request, sub), CancellationToken.None);
        }
    }

    private async Task ReadAsync((string Stream, int Partition) key, SubscribeRequest request, Sub sub)
    {
        var first = true;
        try
        {
            await using var call = _server.Channel.ServerStreaming("/proto.API/Subscribe", request, Message.Parser, cancellationToken: sub.Cancel.Token);
            while (await call.MoveNextAsync())
            {
                if (first)
                {
                    first = false; // the handshake frame
                    continue;
                }

                _handler(_id, call.Current);
                sub.Delivered = call.Current.Offset;
            }
        }
        catch (OperationCanceledException)
        {
            // cancelled by reconcile or a kill
        }
        catch (GrpcException ex) when (ex.StatusCode == GrpcStatusCode.Cancelled)
        {
            // cancelled by reconcile or a kill
        }
        catch (GrpcException ex)
        {
            Errors.Add($"{key.Stream}/{key.Partition}: {ex.StatusCode} {ex.Detail}"); // go-liftbridge hands it to the handler
            if (first)
            {
                _subs.TryRemove(new KeyValuePair<(string, int), Sub>(key, sub)); // refused: go-liftbridge does not keep it, the next reconcile tries again
            }
        }
    }

    private async Task CheckpointAsync()
    {
        foreach (var (key, sub) in _subs)
        {
            await CommitAsync(key, sub);
        }
    }

    private async Task CommitAsync((string Stream, int Partition) key, Sub sub)
    {
        var delivered = sub.Delivered;
        if (delivered > sub.Committed)
        {
            await _server.CallAsync("SetCursor", new SetCursorRequest { CursorId = "__group:" + _group, Stream = key.Stream, Partition = key.Partition, Offset = delivered }, SetCursorResponse.Parser);
            sub.Committed = delivered;
        }
    }

    /// <summary>Stops everything at once, committing nothing more and not leaving (a crashed member).</summary>
    public async Task KillAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        await Task.WhenAll(_subs.Values.Select(s => s.Reader));
    }

    /// <summary>Commits, leaves the group, then stops.</summary>
    public async Task CloseAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        await CheckpointAsync();
        await _server.CallAsync("LeaveConsumerGroup", new LeaveConsumerGroupRequest { GroupId = _group, ConsumerId = _id }, LeaveConsumerGroupResponse.Parser);
        await Task.WhenAll(_subs.Values.Select(s => s.Reader));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await KillAsync();
        }

        _stop.Dispose();
    }
}
