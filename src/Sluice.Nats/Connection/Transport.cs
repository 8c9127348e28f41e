using System.IO.Pipelines;
using System.Net.Sockets;

namespace Sluice.Nats.Connection;

/// <summary>One established connection to one server: the socket, its (maybe TLS) stream and the reader over it.</summary>
internal sealed class Transport(Socket socket, Stream stream, PipeReader reader, NatsServerInfo info, ServerAddress address) : IDisposable
{
    private readonly CancellationTokenSource _cts = new();

    public Socket Socket { get; } = socket;

    public Stream Stream { get; } = stream;

    public PipeReader Reader { get; } = reader;

    public NatsServerInfo Info { get; } = info;

    public ServerAddress Address { get; } = address;

    public CancellationToken Token => _cts.Token;

    public void Dispose()
    {
        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        Socket.Dispose();
        Stream.Dispose();
        _cts.Dispose();
    }
}
