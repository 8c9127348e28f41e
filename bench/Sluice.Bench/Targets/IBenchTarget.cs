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

    /// <summary>Opens a client connection that publishers can share (<see cref="IBenchConnection.OpenPublisherAsync"/>).</summary>
    Task<IBenchConnection> OpenConnectionAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Reads <paramref name="messages"/> messages from the start of the configured partition and
    /// returns the payload bytes read. Connection and subscription setup happen before
    /// <paramref name="started"/> is called, so the caller can start its clock there.
    /// </summary>
    Task<long> ConsumeAsync(long messages, Action started, CancellationToken cancellationToken);
}

/// <summary>
/// One client connection (for Sluice a <c>SluiceClient</c>, for JetStream a NATS connection). Every
/// publisher opened on it shares it, as the goroutines of Liftbridge's bench tool share one client.
/// Disposing it closes the connection; dispose its publishers first.
/// </summary>
public interface IBenchConnection : IAsyncDisposable
{
    /// <summary>Opens a publisher on this connection.</summary>
    Task<IBenchPublisher> OpenPublisherAsync(CancellationToken cancellationToken);
}

/// <summary>One publisher on a (possibly shared) connection; disposing it leaves the connection open.</summary>
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
