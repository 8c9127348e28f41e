using System.Net.Sockets;
using Sluice.Protocol.Http2;

namespace Sluice.Client.Http2;

/// <summary>
/// The reading side of one <see cref="Http2Connection"/>: a dedicated thread reads frames from the blocking socket
/// and hands them to <see cref="Http2ClientFrameHandler"/>. Waiters on streams resume on the thread pool, as
/// HttpClient's do, except completions deferred to this thread (<see cref="TryDefer"/>: the publish session's acks),
/// which run after the frames in hand and before the next socket read. When one of them holds the thread too long,
/// <see cref="ReaderWatchdog"/> hands the socket to a new reader thread (a new generation).
/// </summary>
internal sealed class Http2ClientReader
{
    private const int ReadBufferSize = 64 << 10; // a read's worth of frames: a 16 KiB DATA frame four times over

    [ThreadStatic]
    private static Http2ClientReader? _threadReader;

    [ThreadStatic]
    private static int _threadReaderGeneration;

    private readonly Http2Connection _connection;
    private readonly Stream _transport;
    private readonly Http2ClientFrameHandler _handler;
    private readonly string _threadName;

    // The buffer belongs to the thread of the current generation; _sync guards the rest.
    private readonly Lock _sync = new();
    private readonly Queue<IDeferredCompletion> _deferred = new();
    private readonly Http2FrameReader _frames = new(ReadBufferSize, "server");
    private int _generation;
    private long _userCodeSince;
    private long _lastFrameTicks = Environment.TickCount64;

    public Http2ClientReader(Http2Connection connection, Stream transport, Http2ClientFrameHandler handler, string authority)
    {
        _connection = connection;
        _transport = transport;
        _handler = handler;
        _threadName = $"sluice h2 {authority}";
    }

    /// <summary>True on this connection's reader thread.</summary>
    public bool OnThread => _threadReader == this;

    /// <summary>When the last frame arrived (for keepalive PINGs).</summary>
    public long LastFrameTicks => Volatile.Read(ref _lastFrameTicks);

    /// <summary>Starts the first reader thread (after the preface is written).</summary>
    public void Start() => StartThread(0);

    /// <summary>
    /// Runs <paramref name="completion"/> later on this thread if it is a connection's current reader
    /// thread, after the frames in hand are handled and before the next socket read; false otherwise.
    /// An awaited publish then resumes on the thread that read its ack, with no thread hop, which on a
    /// 2-core machine nearly doubles synchronous publishes. Completions run outside every lock of the
    /// connection, and the watchdog hands the socket to a new reader thread when one of them blocks.
    /// </summary>
    public static bool TryDefer(IDeferredCompletion completion)
    {
        if (_threadReader is not { } reader)
        {
            return false;
        }

        lock (reader._sync)
        {
            if (reader._generation != _threadReaderGeneration || reader._connection.HasFailed)
            {
                return false;
            }

            reader._deferred.Enqueue(completion);
            return true;
        }
    }

    /// <summary>
    /// Called by <see cref="ReaderWatchdog"/>: when deferred completions have held the reader thread for
    /// longer than <see cref="ReaderWatchdog.StuckAfter"/> (user code that blocks, or is slow), a new
    /// reader thread takes over the socket, the bytes read so far and the completions still queued. The
    /// old thread ends when its completion returns.
    /// </summary>
    public void TakeOverIfStuck(long now)
    {
        int generation;
        lock (_sync)
        {
            if (_userCodeSince == 0 || now - _userCodeSince < (long)ReaderWatchdog.StuckAfter.TotalMilliseconds || _connection.HasFailed)
            {
                return;
            }

            _userCodeSince = 0;
            generation = ++_generation;
        }

        StartThread(generation);
    }

    private void StartThread(int generation)
    {
        var reader = new Thread(static state =>
        {
            var (reader, generation) = ((Http2ClientReader, int))state!;
            reader.ReadLoop(generation);
        })
        {
            IsBackground = true,
            Name = _threadName,
        };
        reader.Start((this, generation));
    }

    private void ReadLoop(int generation)
    {
        _threadReader = this;
        _threadReaderGeneration = generation;
        try
        {
            while (true)
            {
                while (_frames.TryRead(out var type, out var flags, out var streamId, out var payload))
                {
                    Volatile.Write(ref _lastFrameTicks, Environment.TickCount64);
                    _handler.OnFrame(type, flags, streamId, payload.Span);
                }

                if (!RunDeferred(generation))
                {
                    return; // another reader took over while a completion held this thread
                }

                _frames.Fill(_transport);
            }
        }
        catch (Http2ConnectionException ex)
        {
            _connection.Abort(new IOException($"HTTP/2 protocol error from the server ({ex.Code}): {ex.Message}", ex), ex.Code);
        }
        catch (HpackException ex)
        {
            _connection.Abort(new IOException($"The server sent headers this client cannot decode: {ex.Message}", ex), Http2ErrorCode.CompressionError);
        }
        catch (Exception ex)
        {
            _connection.Abort(ex is IOException or SocketException or ObjectDisposedException
                ? new IOException($"The HTTP/2 connection closed: {ex.Message}", ex)
                : new IOException($"The HTTP/2 connection failed: {ex.Message}", ex));
        }
        finally
        {
            _threadReader = null;
        }

        // The connection failed: completions queued before it (acks that did arrive) still run.
        RunDeferred(generation);
    }

    /// <summary>Runs the deferred completions; false when another reader took over meanwhile.</summary>
    private bool RunDeferred(int generation)
    {
        while (true)
        {
            IDeferredCompletion? completion;
            lock (_sync)
            {
                if (_generation != generation)
                {
                    return false;
                }

                if (!_deferred.TryDequeue(out completion))
                {
                    _userCodeSince = 0;
                    return true;
                }

                _userCodeSince = Environment.TickCount64;
            }

            try
            {
                completion.Run();
            }
            catch (Exception ex)
            {
                // Completions catch their own errors; one that still throws must not stop the reader.
                System.Diagnostics.Trace.TraceError($"Sluice HTTP/2: a deferred completion threw: {ex}");
            }
        }
    }
}
