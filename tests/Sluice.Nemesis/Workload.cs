using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Sluice.Client;

namespace Sluice.Nemesis;

/// <summary>A publish that was acknowledged with ALL: which message, where, and when (ms since the run started).</summary>
internal readonly record struct AckRecord(string Message, int Partition, long Offset, double SentMs, double AckedMs);

/// <summary>A publish that failed: it may or may not have been stored, but never twice.</summary>
internal readonly record struct FailureRecord(string Message, int Partition, double SentMs, double FailedMs, string Error);

/// <summary>What a subscriber received, in order.</summary>
internal readonly record struct SeenRecord(long Offset, string Message);

/// <summary>
/// The load under which faults are injected: publishers that send unique messages with acks ALL (each with its own
/// client, so a message id per publish, and one publish awaited at a time), and one subscriber per partition that
/// reads from the start and must see offsets 0, 1, 2... with no gap and no repeat.
/// </summary>
internal sealed class Workload : IAsyncDisposable
{
    private readonly NemesisOptions _options;
    private readonly IReadOnlyList<string> _addresses;
    private readonly Stopwatch _clock;
    private readonly CancellationTokenSource _stopPublishing = new();
    private readonly CancellationTokenSource _stopSubscribing = new();
    private readonly List<Task> _publishers = [];
    private readonly List<Task> _subscribers = [];
    private readonly long[] _sequences;
    private readonly long[] _nextOffsets;
    private readonly ConcurrentQueue<string> _subscriberErrors = new();
    private readonly ConcurrentQueue<string> _clientErrors = new();

    public Workload(NemesisOptions options, IReadOnlyList<string> addresses, Stopwatch clock)
    {
        _options = options;
        _addresses = addresses;
        _clock = clock;
        _sequences = new long[options.Publishers];
        _nextOffsets = new long[options.Partitions];
        Seen = [.. Enumerable.Range(0, options.Partitions).Select(_ => new List<SeenRecord>())];
    }

    public ConcurrentQueue<AckRecord> Acks { get; } = new();

    public ConcurrentQueue<FailureRecord> Failures { get; } = new();

    /// <summary>Per partition, what its subscriber received; read only after <see cref="StopSubscribersAsync"/>.</summary>
    public IReadOnlyList<List<SeenRecord>> Seen { get; }

    /// <summary>Offsets a subscriber received out of order (a gap or a repeat), as text.</summary>
    public IReadOnlyCollection<string> SubscriberErrors => _subscriberErrors;

    /// <summary>Publishes that failed with an exception the client does not document (a client defect), as text.</summary>
    public IReadOnlyCollection<string> ClientErrors => _clientErrors;

    public int Resubscribes => _resubscribes;

    private int _resubscribes;

    /// <summary>The message name publisher <paramref name="publisher"/> used for its <paramref name="sequence"/>-th publish.</summary>
    public static string MessageName(int publisher, long sequence) => string.Create(CultureInfo.InvariantCulture, $"p{publisher:D2}-{sequence:D9}");

    /// <summary>Whether <paramref name="message"/> is a name some publisher used (attempted, acked or not).</summary>
    public bool WasAttempted(string message)
    {
        var dash = message.IndexOf('-', StringComparison.Ordinal);
        return message.Length > 1 && message[0] == 'p' && dash > 1
            && int.TryParse(message.AsSpan(1, dash - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var publisher)
            && long.TryParse(message.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var sequence)
            && publisher < _sequences.Length && sequence < Interlocked.Read(ref _sequences[publisher]);
    }

    public long NextOffset(int partition) => Interlocked.Read(ref _nextOffsets[partition]);

    public void Start()
    {
        for (var p = 0; p < _options.Partitions; p++)
        {
            var partition = p;
            _subscribers.Add(Task.Run(() => SubscribeAsync(partition)));
        }

        for (var i = 0; i < _options.Publishers; i++)
        {
            var publisher = i;
            _publishers.Add(Task.Run(() => PublishAsync(publisher)));
        }
    }

    public async Task StopPublishersAsync()
    {
        await _stopPublishing.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_publishers).ConfigureAwait(false);
    }

    public async Task StopSubscribersAsync()
    {
        await _stopSubscribing.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_subscribers).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopPublishersAsync().ConfigureAwait(false);
        await StopSubscribersAsync().ConfigureAwait(false);
        _stopPublishing.Dispose();
        _stopSubscribing.Dispose();
    }

    private double Now => _clock.Elapsed.TotalMilliseconds;

    private async Task PublishAsync(int publisher)
    {
        var stop = _stopPublishing.Token;
        var partition = publisher % _options.Partitions;
        var options = new MessageOptions { AckPolicy = AckPolicy.All, Partition = partition };
        await using var client = await ConnectAsync(stop).ConfigureAwait(false);
        if (client is null)
        {
            return;
        }

        while (!stop.IsCancellationRequested)
        {
            var sequence = Interlocked.Read(ref _sequences[publisher]);
            var name = MessageName(publisher, sequence);
            Interlocked.Increment(ref _sequences[publisher]); // attempted from here on, whatever the outcome
            var sent = Now;
            try
            {
                // No cancellation: a publish once started runs to its ack or its error, so every attempt has an outcome.
                var ack = await client.PublishAsync(_options.Stream, Payload(name), options).ConfigureAwait(false);
                Acks.Enqueue(new AckRecord(name, partition, ack!.Offset, sent, Now));
            }
            catch (Exception e)
            {
                // A SluiceException is the client's documented failure; anything else is a client defect, reported.
                if (e is not SluiceException)
                {
                    _clientErrors.Enqueue($"publisher {publisher}: '{name}' failed with {e.GetType().Name}, not a SluiceException: {e.Message}");
                }

                Failures.Enqueue(new FailureRecord(name, partition, sent, Now, e.GetType().Name + ": " + e.Message));
                await Delay(TimeSpan.FromMilliseconds(100), stop).ConfigureAwait(false);
            }
        }
    }

    private async Task SubscribeAsync(int partition)
    {
        var stop = _stopSubscribing.Token;
        await using var client = await ConnectAsync(stop).ConfigureAwait(false);
        if (client is null)
        {
            return;
        }

        var seen = Seen[partition];
        while (!stop.IsCancellationRequested)
        {
            var next = NextOffset(partition);
            try
            {
                var options = new SubscribeOptions { Partition = partition }.StartAtOffset(next);
                await foreach (var message in client.SubscribeAsync(_options.Stream, options, stop).ConfigureAwait(false))
                {
                    if (message.Offset != next)
                    {
                        _subscriberErrors.Enqueue($"partition {partition}: the subscriber expected offset {next} and received {message.Offset}");
                    }

                    seen.Add(new SeenRecord(message.Offset, Name(message.Value.Span)));
                    next = message.Offset + 1;
                    Interlocked.Exchange(ref _nextOffsets[partition], next);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is SluiceException or InvalidOperationException or IOException or OperationCanceledException)
            {
                // The client gave up resubscribing (or the stream's leader is not known yet): start again where it ended.
                Interlocked.Increment(ref _resubscribes);
                await Delay(TimeSpan.FromMilliseconds(250), stop).ConfigureAwait(false);
            }
        }
    }

    private async Task<SluiceClient?> ConnectAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                return await SluiceClient.ConnectAsync(_addresses, cancellationToken: stop).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SluiceException or IOException && !stop.IsCancellationRequested)
            {
                await Delay(TimeSpan.FromMilliseconds(250), stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return null;
            }
        }

        return null;
    }

    private byte[] Payload(string name)
    {
        var payload = new byte[Math.Max(_options.MessageBytes, name.Length + 1)];
        payload.AsSpan().Fill((byte)'.');
        Encoding.ASCII.GetBytes(name, payload);
        payload[name.Length] = (byte)' ';
        return payload;
    }

    /// <summary>The message name at the start of a payload.</summary>
    public static string Name(ReadOnlySpan<byte> payload)
    {
        var end = payload.IndexOf((byte)' ');
        return Encoding.ASCII.GetString(end < 0 ? payload : payload[..end]);
    }

    private static async Task Delay(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
