using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Sluice.Nats.Connection;
using Sluice.Nats.Protocol;

namespace Sluice.Nats;

/// <summary>
/// A connection to NATS: publish, subscribe, request/reply, flush, drain. It reconnects on its own
/// (backoff with jitter across the configured and advertised servers), re-subscribes with the same
/// subscription ids and buffers publishes while disconnected. Thread-safe.
/// </summary>
public sealed class NatsConnection : IAsyncDisposable
{
    private readonly ILogger _logger;
    private readonly CommandWriter _writer;
    private readonly ServerConnector _connector;
    private readonly ConcurrentDictionary<long, NatsSubscription> _subs = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<NatsMsg>> _requests = new();
    private readonly List<ServerAddress> _servers;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly Lock _stateLock = new();
    private readonly Channel<Action> _events = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });
    private NatsConnectionState _state = NatsConnectionState.New;
    private Transport? _transport;
    private NatsServerInfo? _info;
    private NatsSubscription? _inbox;
    private string? _inboxPrefix;
    private long _nextSid;
    private long _nextRequestId;
    private int _pingsOut;
    private long _droppedMessages;
    private bool _draining;

    /// <summary>Creates a connection; call <see cref="ConnectAsync(CancellationToken)"/> after attaching event handlers.</summary>
    public NatsConnection(NatsOptions? options = null)
    {
        Options = options ?? NatsOptions.Default;
        Options.Validate();
        _servers = [.. Options.Servers.Select(ServerAddress.Parse)];
        _logger = Options.LoggerFactory.CreateLogger<NatsConnection>();
        _writer = new CommandWriter(Options.ReconnectBufferSize);
        _connector = new ServerConnector(Options, _logger);
    }

    /// <summary>Raised once the first connection is established.</summary>
    public event EventHandler<NatsConnectionEventArgs>? Connected;

    /// <summary>Raised when the connection to a server is lost (reconnecting starts).</summary>
    public event EventHandler<NatsConnectionEventArgs>? Disconnected;

    /// <summary>Raised when a server has been reached again and subscriptions are restored.</summary>
    public event EventHandler<NatsConnectionEventArgs>? Reconnected;

    /// <summary>Raised once when the connection closes for good.</summary>
    public event EventHandler<NatsConnectionEventArgs>? Closed;

    /// <summary>Raised when a subscription starts dropping messages (once per slow episode).</summary>
    public event EventHandler<NatsSlowConsumerEventArgs>? SlowConsumerDetected;

    /// <summary>Raised when the server sends <c>-ERR</c>.</summary>
    public event EventHandler<NatsServerErrorEventArgs>? ServerError;

    /// <summary>The options this connection was created with.</summary>
    public NatsOptions Options { get; }

    /// <summary>Current state.</summary>
    public NatsConnectionState State
    {
        get
        {
            lock (_stateLock)
            {
                return _state;
            }
        }
    }

    /// <summary>The latest INFO of the current (or last) server.</summary>
    public NatsServerInfo? ServerInfo => Volatile.Read(ref _info);

    /// <summary>Messages dropped by slow consumers across all subscriptions.</summary>
    public long DroppedMessages => Interlocked.Read(ref _droppedMessages);

    internal bool IsOpen => State is not NatsConnectionState.Closed;

    /// <summary>Connects to the first reachable server of <paramref name="options"/>.</summary>
    /// <exception cref="NatsAuthorizationException">The server rejected the credentials.</exception>
    /// <exception cref="NatsConnectionException">No server could be reached.</exception>
    public static async ValueTask<NatsConnection> ConnectAsync(NatsOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var connection = new NatsConnection(options);
        try
        {
            await connection.ConnectAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Connects to the first reachable server (each configured server is tried once).</summary>
    /// <exception cref="NatsAuthorizationException">The server rejected the credentials.</exception>
    /// <exception cref="NatsConnectionException">No server could be reached.</exception>
    public async ValueTask ConnectAsync(CancellationToken cancellationToken = default)
    {
        lock (_stateLock)
        {
            if (_state != NatsConnectionState.New)
            {
                throw new InvalidOperationException($"ConnectAsync was already called (state {_state}).");
            }

            _state = NatsConnectionState.Connecting;
        }

        _ = Task.Run(RunEventsAsync, CancellationToken.None);
        Exception? last = null;
        foreach (var server in _servers.ToArray())
        {
            try
            {
                var transport = await _connector.ConnectAsync(server, [], cancellationToken).ConfigureAwait(false);
                if (!Activate(transport))
                {
                    throw new NatsConnectionClosedException("The connection was closed while connecting.");
                }

                _ = Task.Run(PingLoopAsync, CancellationToken.None);
                Raise(Connected, new NatsConnectionEventArgs(NatsConnectionState.Connected, server.ToString(), null));
                return;
            }
            catch (NatsException ex) when (ex is not NatsConnectionClosedException)
            {
                _logger.LogWarning(ex, "Could not connect to {Server}", server);
                last = ex;
            }
        }

        await CloseCoreAsync(last).ConfigureAwait(false);
        throw last is NatsAuthorizationException auth
            ? auth
            : new NatsConnectionException($"Could not connect to any NATS server ({string.Join(", ", _servers)}): {last?.Message}", last);
    }

    /// <summary>
    /// Publishes a message (PUB, or HPUB with <paramref name="headers"/>). Completes once the message is
    /// buffered for the socket, not when the server has it; use <see cref="FlushAsync"/> for that.
    /// </summary>
    /// <exception cref="NatsMaxPayloadExceededException">Headers and payload exceed the server's max_payload.</exception>
    /// <exception cref="NatsReconnectBufferFullException">Disconnected and the reconnect buffer is full.</exception>
    /// <exception cref="NatsConnectionClosedException">The connection is closed.</exception>
    public ValueTask PublishAsync(string subject, ReadOnlyMemory<byte> data = default, NatsHeaders? headers = null, string? replyTo = null, CancellationToken cancellationToken = default)
    {
        SubjectValidation.Subject(subject, nameof(subject), allowWildcards: false);
        if (replyTo is not null)
        {
            SubjectValidation.Subject(replyTo, nameof(replyTo), allowWildcards: false);
        }

        var headerLength = NatsProtocolWriter.HeaderLength(headers);
        var maxPayload = ServerInfo?.MaxPayload ?? 0;
        if (maxPayload > 0 && headerLength + (long)data.Length > maxPayload)
        {
            throw new NatsMaxPayloadExceededException(headerLength + (long)data.Length, maxPayload);
        }

        return _writer.PublishAsync(subject, replyTo, headers, headerLength, data, cancellationToken);
    }

    /// <summary>
    /// Subscribes to <paramref name="subject"/> (wildcards <c>*</c> and <c>&gt;</c> allowed), optionally in a queue
    /// group. The SUB is queued in order with later publishes; call <see cref="FlushAsync"/> before relying on
    /// another connection's messages reaching it.
    /// </summary>
    public ValueTask<NatsSubscription> SubscribeAsync(string subject, string? queueGroup = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        SubjectValidation.Subject(subject, nameof(subject), allowWildcards: true);
        SubjectValidation.QueueGroup(queueGroup, nameof(queueGroup));
        return ValueTask.FromResult(AddSubscription(subject, queueGroup, inline: null));
    }

    /// <summary>
    /// Subscribes and calls <paramref name="handler"/> for each message, one at a time, on a task of its own.
    /// A handler exception is logged and the next message is delivered.
    /// </summary>
    public ValueTask<NatsSubscription> SubscribeAsync(string subject, Func<NatsMsg, CancellationToken, ValueTask> handler, string? queueGroup = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        cancellationToken.ThrowIfCancellationRequested();
        SubjectValidation.Subject(subject, nameof(subject), allowWildcards: true);
        SubjectValidation.QueueGroup(queueGroup, nameof(queueGroup));
        var sub = AddSubscription(subject, queueGroup, inline: null);
        var token = _lifetime.Token;
        sub.HandlerTask = Task.Run(
            async () =>
            {
                await foreach (var msg in sub.Msgs.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
                {
                    try
                    {
                        await handler(msg, token).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
                    {
                        _logger.LogError(ex, "Handler of subscription {Sid} on {Subject} threw", sub.Sid, sub.Subject);
                    }
                }
            },
            CancellationToken.None);
        return ValueTask.FromResult(sub);
    }

    /// <summary>
    /// Sends a request and waits for the first reply (through one shared <c>_INBOX.&lt;id&gt;.*</c> subscription).
    /// </summary>
    /// <param name="subject">Subject of the request.</param>
    /// <param name="data">Request payload.</param>
    /// <param name="headers">Request headers, or null.</param>
    /// <param name="timeout">How long to wait; default <see cref="NatsOptions.RequestTimeout"/>.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <exception cref="NatsRequestTimeoutException">No reply within the timeout.</exception>
    /// <exception cref="NatsNoRespondersException">Nobody subscribes to <paramref name="subject"/>.</exception>
    public async ValueTask<NatsMsg> RequestAsync(string subject, ReadOnlyMemory<byte> data = default, NatsHeaders? headers = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        SubjectValidation.Subject(subject, nameof(subject), allowWildcards: false);
        var wait = timeout ?? Options.RequestTimeout;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(wait, TimeSpan.Zero, nameof(timeout));
        var prefix = EnsureInbox();
        var id = Interlocked.Increment(ref _nextRequestId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var reply = new TaskCompletionSource<NatsMsg>(TaskCreationOptions.RunContinuationsAsynchronously);
        _requests[id] = reply;
        try
        {
            await PublishAsync(subject, data, headers, prefix + id, cancellationToken).ConfigureAwait(false);
            NatsMsg msg;
            try
            {
                msg = await reply.Task.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new NatsRequestTimeoutException(subject, wait);
            }

            if (msg.Headers is { StatusCode: 503 } && msg.Data.IsEmpty)
            {
                throw new NatsNoRespondersException(subject);
            }

            return msg;
        }
        finally
        {
            _requests.TryRemove(id, out _);
        }
    }

    /// <summary>Round trip PING/PONG: when it completes, the server has processed everything sent before.</summary>
    /// <exception cref="NatsConnectionException">The connection was lost before the PONG.</exception>
    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        var pong = _writer.Ping(track: true)!;
        await pong.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Drains: unsubscribes everything, lets consumers read the messages already received (and the
    /// handlers finish), flushes what they published, then closes.
    /// </summary>
    public async ValueTask DrainAsync(CancellationToken cancellationToken = default)
    {
        lock (_stateLock)
        {
            if (_state == NatsConnectionState.Closed)
            {
                return;
            }

            _draining = true;
        }

        var subs = _subs.Values.Where(s => s != _inbox).ToList();
        foreach (var sub in subs)
        {
            _writer.Unsubscribe(sub.Sid, null);
        }

        // Once the PONG is in, the server has sent every message for the drained subscriptions.
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        foreach (var sub in subs)
        {
            _subs.TryRemove(sub.Sid, out _);
            sub.End();
        }

        foreach (var sub in subs)
        {
            await sub.WaitConsumedAsync(cancellationToken).ConfigureAwait(false);
        }

        await FlushAsync(cancellationToken).ConfigureAwait(false);
        await CloseAsync().ConfigureAwait(false);
    }

    /// <summary>Closes the connection: buffered operations get a short chance to go out, subscriptions end, pending requests fail.</summary>
    public async ValueTask CloseAsync()
    {
        if (State == NatsConnectionState.Connected && _writer.Unsent > 0)
        {
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                await FlushAsync(grace.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is NatsException or OperationCanceledException)
            {
                _logger.LogDebug(ex, "Final flush before close did not complete");
            }
        }

        await CloseCoreAsync(null).ConfigureAwait(false);
    }

    /// <summary>Same as <see cref="CloseAsync"/>.</summary>
    public ValueTask DisposeAsync() => CloseAsync();

    internal ValueTask UnsubscribeAsync(NatsSubscription sub, int? maxMsgs, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!IsOpen)
        {
            sub.End();
            return default;
        }

        if (maxMsgs is { } max && sub.ReceivedMessages < max)
        {
            sub.MaxMsgs = max;
            _writer.Unsubscribe(sub.Sid, max);
            return default;
        }

        if (_subs.TryRemove(sub.Sid, out _))
        {
            _writer.Unsubscribe(sub.Sid, null);
        }

        sub.End();
        return default;
    }

    private NatsSubscription AddSubscription(string subject, string? queueGroup, Action<NatsMsg>? inline)
    {
        lock (_stateLock)
        {
            if (_state is NatsConnectionState.Closed or NatsConnectionState.New || _draining)
            {
                throw new NatsConnectionClosedException($"Cannot subscribe: the connection is {(_draining ? "draining" : _state.ToString())}.");
            }
        }

        var sub = new NatsSubscription(this, Interlocked.Increment(ref _nextSid), subject, queueGroup, Options.SubscriptionChannelCapacity, inline);
        _subs[sub.Sid] = sub;
        _writer.Subscribe(sub.Sid, subject, queueGroup);
        return sub;
    }

    private string EnsureInbox()
    {
        if (Volatile.Read(ref _inboxPrefix) is { } ready)
        {
            return ready;
        }

        lock (_stateLock)
        {
            if (_inboxPrefix is not null)
            {
                return _inboxPrefix;
            }

            if (_state is NatsConnectionState.Closed or NatsConnectionState.New)
            {
                throw new NatsConnectionClosedException($"Cannot send a request: the connection is {_state}.");
            }

            var prefix = "_INBOX." + Nuid.Next() + ".";
            var inbox = new NatsSubscription(this, Interlocked.Increment(ref _nextSid), prefix + "*", null, 1, OnInboxMessage);
            _subs[inbox.Sid] = inbox;
            _writer.Subscribe(inbox.Sid, inbox.Subject, null);
            _inbox = inbox;
            Volatile.Write(ref _inboxPrefix, prefix);
            return prefix;
        }
    }

    private void OnInboxMessage(NatsMsg msg)
    {
        var id = msg.Subject[_inboxPrefix!.Length..];
        if (_requests.TryRemove(id, out var waiter))
        {
            waiter.TrySetResult(msg);
        }
    }

    private bool Activate(Transport transport)
    {
        lock (_stateLock)
        {
            if (_state == NatsConnectionState.Closed)
            {
                return false;
            }

            _transport = transport;
            _state = NatsConnectionState.Connected;
        }

        ApplyInfo(transport.Info);
        Volatile.Write(ref _pingsOut, 0);
        _writer.OnConnected();
        _ = Task.Run(() => ReadLoopAsync(transport), CancellationToken.None);
        _ = Task.Run(() => WriteLoopAsync(transport), CancellationToken.None);
        return true;
    }

    private void ApplyInfo(NatsServerInfo info)
    {
        Volatile.Write(ref _info, info);
        if (info.ConnectUrls is null)
        {
            return;
        }

        lock (_servers)
        {
            foreach (var url in info.ConnectUrls)
            {
                ServerAddress address;
                try
                {
                    address = ServerAddress.Parse(url);
                }
                catch (ArgumentException ex)
                {
                    _logger.LogWarning(ex, "Ignoring the advertised server URL {Url}", url);
                    continue;
                }

                if (!_servers.Any(s => s.Host == address.Host && s.Port == address.Port))
                {
                    _servers.Add(address);
                    _logger.LogDebug("Added advertised server {Server}", address);
                }
            }
        }
    }

    private async Task ReadLoopAsync(Transport transport)
    {
        var parser = new NatsParser();
        Exception? error;
        try
        {
            while (true)
            {
                var result = await transport.Reader.ReadAsync(transport.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                try
                {
                    while (parser.TryParse(ref buffer, out var op))
                    {
                        Dispatch(op);
                    }
                }
                finally
                {
                    transport.Reader.AdvanceTo(buffer.Start, buffer.End);
                }

                if (result.IsCompleted)
                {
                    error = new NatsConnectionException($"{transport.Address} closed the connection.");
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (transport.Token.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            error = ex;
        }

        OnConnectionLost(transport, error);
    }

    private async Task WriteLoopAsync(Transport transport)
    {
        try
        {
            await _writer.RunAsync(transport.Stream, transport.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (transport.Token.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            OnConnectionLost(transport, ex);
        }
    }

    private void Dispatch(in ServerOp op)
    {
        switch (op.Kind)
        {
            case ServerOpKind.Msg:
                if (_subs.TryGetValue(op.Sid, out var sub))
                {
                    var dropped = sub.DroppedMessages;
                    var msg = new NatsMsg(op.Subject!, op.ReplyTo, op.Headers, op.Payload, this);
                    if (sub.Deliver(msg, out var becameSlow))
                    {
                        _subs.TryRemove(sub.Sid, out _);
                        sub.End();
                    }

                    if (sub.DroppedMessages != dropped)
                    {
                        Interlocked.Increment(ref _droppedMessages);
                    }

                    if (becameSlow)
                    {
                        _logger.LogWarning("Slow consumer on subscription {Sid} ({Subject}): dropping messages", sub.Sid, sub.Subject);
                        Raise(SlowConsumerDetected, new NatsSlowConsumerEventArgs(sub, sub.DroppedMessages));
                    }
                }

                break;
            case ServerOpKind.Ping:
                _writer.Pong();
                break;
            case ServerOpKind.Pong:
                Volatile.Write(ref _pingsOut, 0);
                _writer.OnPong();
                break;
            case ServerOpKind.Info:
                ApplyInfo(ServerConnector.ParseInfo(op.Text!));
                break;
            case ServerOpKind.Err:
                _logger.LogError("NATS server error: {Error}", op.Text);
                Raise(ServerError, new NatsServerErrorEventArgs(op.Text!));
                break;
            case ServerOpKind.Ok:
            default:
                break;
        }
    }

    private async Task PingLoopAsync()
    {
        using var timer = new PeriodicTimer(Options.PingInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_lifetime.Token).ConfigureAwait(false))
            {
                Transport? transport;
                lock (_stateLock)
                {
                    transport = _state == NatsConnectionState.Connected ? _transport : null;
                }

                if (transport is null)
                {
                    continue;
                }

                if (Interlocked.Increment(ref _pingsOut) > Options.MaxPingsOut)
                {
                    OnConnectionLost(transport, new NatsConnectionException($"Stale connection: {Options.MaxPingsOut} PINGs to {transport.Address} went unanswered."));
                    continue;
                }

                try
                {
                    _ = _writer.Ping(track: false);
                }
                catch (NatsConnectionClosedException)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
        }
    }

    private void OnConnectionLost(Transport transport, Exception? error)
    {
        lock (_stateLock)
        {
            if (_transport != transport || _state != NatsConnectionState.Connected)
            {
                return;
            }

            // The writer learns of it before anyone can see the state Reconnecting: a publish made after
            // that must count against the reconnect buffer (its waiters complete asynchronously).
            _writer.OnDisconnected(error ?? new NatsConnectionException("Connection lost."));
            _transport = null;
            _state = NatsConnectionState.Reconnecting;
        }

        _logger.LogWarning(error, "Disconnected from {Server}; reconnecting", transport.Address);
        transport.Dispose();
        Raise(Disconnected, new NatsConnectionEventArgs(NatsConnectionState.Reconnecting, transport.Address.ToString(), error));
        _ = Task.Run(ReconnectLoopAsync, CancellationToken.None);
    }

    private async Task ReconnectLoopAsync()
    {
        var token = _lifetime.Token;
        var attempts = 0;
        var pass = 0;
        try
        {
            while (!token.IsCancellationRequested)
            {
                ServerAddress[] servers;
                lock (_servers)
                {
                    servers = [.. _servers];
                }

                foreach (var server in servers)
                {
                    if (Options.MaxReconnectAttempts >= 0 && attempts >= Options.MaxReconnectAttempts)
                    {
                        await CloseCoreAsync(new NatsConnectionException($"Gave up reconnecting after {attempts} attempts.")).ConfigureAwait(false);
                        return;
                    }

                    attempts++;
                    try
                    {
                        var resubscribe = _subs.Values.Where(s => !s.IsEnded).ToList();
                        var transport = await _connector.ConnectAsync(server, resubscribe, token).ConfigureAwait(false);
                        if (!Activate(transport))
                        {
                            transport.Dispose();
                            return;
                        }

                        _logger.LogInformation("Reconnected to {Server} after {Attempts} attempts", server, attempts);
                        Raise(Reconnected, new NatsConnectionEventArgs(NatsConnectionState.Connected, server.ToString(), null));
                        return;
                    }
                    catch (NatsException ex)
                    {
                        _logger.LogDebug(ex, "Reconnect attempt {Attempt} to {Server} failed", attempts, server);
                    }
                }

                pass++;
                await Task.Delay(Backoff(pass), token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    private TimeSpan Backoff(int pass)
    {
        var wait = Options.ReconnectWait * Math.Pow(2, Math.Min(pass - 1, 16));
        if (wait > Options.ReconnectWaitMax)
        {
            wait = Options.ReconnectWaitMax;
        }

        // Jitter only spreads clients apart; it needs no cryptographic quality.
#pragma warning disable CA5394
        return wait + (Options.ReconnectJitter * Random.Shared.NextDouble());
#pragma warning restore CA5394
    }

    private Task CloseCoreAsync(Exception? error)
    {
        Transport? transport;
        lock (_stateLock)
        {
            if (_state == NatsConnectionState.Closed)
            {
                return Task.CompletedTask;
            }

            _state = NatsConnectionState.Closed;
            transport = _transport;
            _transport = null;
        }

        _lifetime.Cancel();
        transport?.Dispose();
        var closed = new NatsConnectionClosedException("The NATS connection is closed.");
        _writer.Close(closed);
        foreach (var sub in _subs.Values)
        {
            sub.End();
        }

        _subs.Clear();
        foreach (var request in _requests.Values)
        {
            request.TrySetException(closed);
        }

        if (error is not null)
        {
            _logger.LogError(error, "NATS connection closed");
        }

        Raise(Closed, new NatsConnectionEventArgs(NatsConnectionState.Closed, transport?.Address.ToString(), error));
        _events.Writer.TryComplete();
        return Task.CompletedTask;
    }

    private void Raise<T>(EventHandler<T>? handler, T args)
        where T : EventArgs
    {
        if (handler is not null)
        {
            _events.Writer.TryWrite(() => handler(this, args));
        }
    }

    /// <summary>Runs event handlers in order, off the reader loop, so a slow handler never stalls the connection.</summary>
    private async Task RunEventsAsync()
    {
        await foreach (var action in _events.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                action();
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "A NATS connection event handler threw");
            }
        }
    }
}
