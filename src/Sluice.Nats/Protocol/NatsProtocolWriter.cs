using System.Buffers;
using System.Text;

namespace Sluice.Nats.Protocol;

/// <summary>Serialises client operations into a buffer; no I/O.</summary>
internal static class NatsProtocolWriter
{
    private static readonly byte[] HeaderVersionLine = "NATS/1.0\r\n"u8.ToArray();

    public static void WriteConnect(IBufferWriter<byte> writer, ReadOnlySpan<byte> json)
    {
        Write(writer, "CONNECT "u8);
        Write(writer, json);
        Write(writer, "\r\n"u8);
    }

    public static void WritePing(IBufferWriter<byte> writer) => Write(writer, "PING\r\n"u8);

    public static void WritePong(IBufferWriter<byte> writer) => Write(writer, "PONG\r\n"u8);

    /// <summary>Size of the serialised header block, or 0 without headers.</summary>
    public static int HeaderLength(NatsHeaders? headers)
    {
        if (headers is null)
        {
            return 0;
        }

        var length = HeaderVersionLine.Length + 2;
        foreach (var (name, values) in headers)
        {
            var nameLength = Encoding.UTF8.GetByteCount(name);
            foreach (var value in values)
            {
                length += nameLength + 2 + Encoding.UTF8.GetByteCount(value) + 2;
            }
        }

        return length;
    }

    /// <summary>Writes PUB, or HPUB when <paramref name="headers"/> is set.</summary>
    public static void WritePublish(IBufferWriter<byte> writer, string subject, string? replyTo, NatsHeaders? headers, int headerLength, ReadOnlySpan<byte> payload)
    {
        var span = writer.GetSpan(16 + (subject.Length * 3) + ((replyTo?.Length ?? 0) * 3) + 40);
        var pos = 0;
        if (headers is null)
        {
            "PUB "u8.CopyTo(span);
            pos = 4;
        }
        else
        {
            "HPUB "u8.CopyTo(span);
            pos = 5;
        }

        pos += Encoding.UTF8.GetBytes(subject, span[pos..]);
        span[pos++] = (byte)' ';
        if (replyTo is not null)
        {
            pos += Encoding.UTF8.GetBytes(replyTo, span[pos..]);
            span[pos++] = (byte)' ';
        }

        if (headers is not null)
        {
            headerLength.TryFormat(span[pos..], out var n);
            pos += n;
            span[pos++] = (byte)' ';
        }

        (headerLength + payload.Length).TryFormat(span[pos..], out var written);
        pos += written;
        span[pos++] = (byte)'\r';
        span[pos++] = (byte)'\n';
        writer.Advance(pos);

        if (headers is not null)
        {
            WriteHeaders(writer, headers);
        }

        Write(writer, payload);
        Write(writer, "\r\n"u8);
    }

    public static void WriteSubscribe(IBufferWriter<byte> writer, long sid, string subject, string? queueGroup)
    {
        Write(writer, "SUB "u8);
        WriteString(writer, subject);
        Write(writer, " "u8);
        if (queueGroup is not null)
        {
            WriteString(writer, queueGroup);
            Write(writer, " "u8);
        }

        WriteNumber(writer, sid);
        Write(writer, "\r\n"u8);
    }

    public static void WriteUnsubscribe(IBufferWriter<byte> writer, long sid, long? maxMsgs)
    {
        Write(writer, "UNSUB "u8);
        WriteNumber(writer, sid);
        if (maxMsgs is { } max)
        {
            Write(writer, " "u8);
            WriteNumber(writer, max);
        }

        Write(writer, "\r\n"u8);
    }

    private static void WriteHeaders(IBufferWriter<byte> writer, NatsHeaders headers)
    {
        Write(writer, HeaderVersionLine);
        foreach (var (name, values) in headers)
        {
            foreach (var value in values)
            {
                WriteString(writer, name);
                Write(writer, ": "u8);
                WriteString(writer, value);
                Write(writer, "\r\n"u8);
            }
        }

        Write(writer, "\r\n"u8);
    }

    private static void WriteString(IBufferWriter<byte> writer, string text)
    {
        var span = writer.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        writer.Advance(Encoding.UTF8.GetBytes(text, span));
    }

    private static void WriteNumber(IBufferWriter<byte> writer, long value)
    {
        var span = writer.GetSpan(20);
        value.TryFormat(span, out var written);
        writer.Advance(written);
    }

    private static void Write(IBufferWriter<byte> writer, ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return;
        }

        var span = writer.GetSpan(bytes.Length);
        bytes.CopyTo(span);
        writer.Advance(bytes.Length);
    }
}
