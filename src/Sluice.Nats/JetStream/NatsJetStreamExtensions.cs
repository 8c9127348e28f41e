using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sluice.Nats.JetStream;

/// <summary>The acknowledgement JetStream returns for a publish: <c>{"stream":"ORDERS","seq":3}</c>.</summary>
public sealed record NatsPubAck
{
    /// <summary>Stream that stored the message.</summary>
    [JsonPropertyName("stream")]
    public string Stream { get; init; } = string.Empty;

    /// <summary>Sequence number of the message in the stream.</summary>
    [JsonPropertyName("seq")]
    public ulong Sequence { get; init; }

    /// <summary>True when the message id was seen before and the message was not stored again.</summary>
    [JsonPropertyName("duplicate")]
    public bool Duplicate { get; init; }
}

/// <summary>JetStream answered with an error object.</summary>
public sealed class NatsJetStreamException(int code, int errorCode, string description)
    : NatsException($"JetStream error {code}/{errorCode}: {description}")
{
    /// <summary>HTTP-like status code.</summary>
    public int Code { get; } = code;

    /// <summary>JetStream's specific error code.</summary>
    public int ErrorCode { get; } = errorCode;
}

/// <summary>The minimal JetStream surface Sluice needs: publish to a stream and read the PubAck.</summary>
public static class NatsJetStreamExtensions
{
    /// <summary>Publishes to a subject bound to a JetStream stream and waits for its PubAck.</summary>
    /// <exception cref="NatsJetStreamException">JetStream rejected the message.</exception>
    /// <exception cref="NatsNoRespondersException">No stream listens on the subject.</exception>
    public static async ValueTask<NatsPubAck> PublishToStreamAsync(this NatsConnection connection, string subject, ReadOnlyMemory<byte> data, NatsHeaders? headers = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var reply = await connection.RequestAsync(subject, data, headers, timeout, cancellationToken).ConfigureAwait(false);
        return ParsePubAck(reply.Data.Span);
    }

    /// <summary>Reads a PubAck, or throws the error object JetStream sent instead.</summary>
    public static NatsPubAck ParsePubAck(ReadOnlySpan<byte> json)
    {
        try
        {
            using var document = JsonDocument.Parse(json.ToArray());
            var root = document.RootElement;
            if (root.TryGetProperty("error", out var error))
            {
                throw new NatsJetStreamException(
                    error.TryGetProperty("code", out var code) ? code.GetInt32() : 0,
                    error.TryGetProperty("err_code", out var errCode) ? errCode.GetInt32() : 0,
                    error.TryGetProperty("description", out var description) ? description.GetString() ?? string.Empty : string.Empty);
            }

            return root.Deserialize<NatsPubAck>() ?? throw new NatsProtocolException("PubAck is null.");
        }
        catch (JsonException ex)
        {
            throw new NatsProtocolException($"PubAck is not valid JSON: {ex.Message}");
        }
    }
}
