namespace Sluice.Nats.Protocol;

/// <summary>The operations a NATS server sends to a client.</summary>
internal enum ServerOpKind
{
    Info,
    Msg,
    Ping,
    Pong,
    Ok,
    Err,
}

/// <summary>
/// One parsed server operation. MSG and HMSG are both <see cref="ServerOpKind.Msg"/>; HMSG carries
/// <see cref="Headers"/>. <see cref="Text"/> holds the INFO JSON or the -ERR message.
/// </summary>
internal readonly record struct ServerOp(
    ServerOpKind Kind,
    string? Subject = null,
    long Sid = 0,
    string? ReplyTo = null,
    NatsHeaders? Headers = null,
    byte[]? Payload = null,
    string? Text = null)
{
    public static readonly ServerOp Ping = new(ServerOpKind.Ping);
    public static readonly ServerOp Pong = new(ServerOpKind.Pong);
    public static readonly ServerOp Ok = new(ServerOpKind.Ok);
}
