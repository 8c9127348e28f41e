using Sluice.Bench.Runs;

namespace Sluice.Bench.Targets;

/// <summary>Receives the outcome of a windowed publish; called on an I/O thread, keep it short.</summary>
public interface IAckSink
{
    /// <summary>The ack (or <paramref name="error"/>) for the publish started with <paramref name="state"/>.</summary>
    void OnAck(long state, Exception? error);
}

/// <summary>A system under test: stream administration, publishers and a consumer.</summary>
public interface IBenchTarget : IAsyncDisposable
{
    /// <summary>Short name for reports ("sluice", "jetstream").</summary>
    string Name { get; }

    /// <summary>Connects the administrative connection.</summary>
    Task ConnectAsync(CancellationToken cancellationToken);

    /// <summary>Creates the stream with its partitions; returns false when it already existed.</summary>
    Task<bool> CreateStreamAsync(CancellationToken cancellationToken);

    /// <summary>Deletes the stream.</summary>
    Task DeleteStreamAsync(CancellationToken cancellationToken);

    /// <summary>Opens a publisher with a connection of its own.</summary>
    Task<IBenchPublisher> OpenPublisherAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Reads <paramref name="messages"/> messages from the start of the configured partition and
    /// returns the payload bytes read. Connection and subscription setup happen before
    /// <paramref name="started"/> is called, so the caller can start its clock there.
    /// </summary>
    Task<long> ConsumeAsync(long messages, Action started, CancellationToken cancellationToken);
}

/// <summary>One publisher (one connection).</summary>
public interface IBenchPublisher : IAsyncDisposable
{
    /// <summary>Publishes and waits for the ack (with ack policy none: until the message is handed to the connection).</summary>
    Task PublishAndWaitAsync(BenchMessage message, CancellationToken cancellationToken);

    /// <summary>
    /// Starts a publish and returns once it is queued; <paramref name="sink"/> later gets the ack
    /// with <paramref name="state"/>. With ack policy none the sink is never called.
    /// </summary>
    ValueTask PublishAsync(BenchMessage message, IAckSink sink, long state, CancellationToken cancellationToken);

    /// <summary>Waits until everything published has reached the server (for ack policy none).</summary>
    Task FlushAsync(CancellationToken cancellationToken);
}
