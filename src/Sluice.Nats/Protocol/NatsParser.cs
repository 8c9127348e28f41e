using System.Buffers;
using System.Text;

namespace Sluice.Nats.Protocol;

/// <summary>
/// Parses server operations from bytes. Stateless: <see cref="TryParse"/> either consumes one
/// complete operation from the front of the buffer, or returns false ("need more data") without
/// consuming anything, or throws <see cref="NatsProtocolException"/> for malformed input. The limits
/// bound how much it will buffer before deciding, so hostile input cannot make it grow or hang.
/// </summary>
internal sealed class NatsParser
{
    /// <summary>An INFO line with a long connect_urls list is the longest legitimate control line; 64 KiB leaves ample room.</summary>
    public const int DefaultMaxControlLine = 64 * 1024;

    /// <summary>64 MiB is the largest max_payload nats-server can be configured with.</summary>
    public const int DefaultMaxPayload = 64 * 1024 * 1024;

    /// <summary>Control lines up to this size are decoded on the stack.</summary>
    private const int StackLineLimit = 512;

    private static readonly byte[] HeaderVersion = "NATS/1.0"u8.ToArray();

    public NatsParser(int maxControlLine = DefaultMaxControlLine, int maxPayload = DefaultMaxPayload)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxControlLine, 16);
        ArgumentOutOfRangeException.ThrowIfNegative(maxPayload);
        MaxControlLine = maxControlLine;
        MaxPayload = maxPayload;
    }

    public int MaxControlLine { get; }

    public int MaxPayload { get; }

    /// <summary>
    /// Tries to parse one operation from the start of <paramref name="buffer"/>. On success
    /// <paramref name="buffer"/> is sliced past it.
    /// </summary>
    public bool TryParse(ref ReadOnlySequence<byte> buffer, out ServerOp op)
    {
        op = default;
        // Only look for the line end within the limit, so a stream without newlines is rejected, not buffered forever.
        var window = buffer.Length > MaxControlLine + 2 ? buffer.Slice(0, MaxControlLine + 2) : buffer;
        var newline = window.PositionOf((byte)'\n');
        if (newline is null)
        {
            if (window.Length >= MaxControlLine + 2)
            {
                throw new NatsProtocolException($"Control line longer than {MaxControlLine} bytes.");
            }

            return false;
        }

        var lineWithCr = buffer.Slice(0, newline.Value);
        var lineLength = (int)lineWithCr.Length;
        if (lineLength == 0)
        {
            throw new NatsProtocolException("Control line ends with LF but not CRLF.");
        }

        var afterLine = buffer.Slice(buffer.GetPosition(1, newline.Value));
        byte[]? rented = null;
        var line = lineLength <= StackLineLimit
            ? stackalloc byte[lineLength]
            : (rented = ArrayPool<byte>.Shared.Rent(lineLength)).AsSpan(0, lineLength);
        try
        {
            lineWithCr.CopyTo(line);
            if (line[^1] != (byte)'\r')
            {
                throw new NatsProtocolException("Control line ends with LF but not CRLF.");
            }

            line = line[..^1];
            return ParseLine(line, afterLine, ref buffer, out op);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private bool ParseLine(ReadOnlySpan<byte> line, ReadOnlySequence<byte> afterLine, ref ReadOnlySequence<byte> buffer, out ServerOp op)
    {
        var nameEnd = line.IndexOfAny((byte)' ', (byte)'\t');
        var name = nameEnd < 0 ? line : line[..nameEnd];
        var rest = nameEnd < 0 ? [] : line[(nameEnd + 1)..];

        if (Is(name, "MSG"u8))
        {
            return ParseMsg(rest, afterLine, headers: false, ref buffer, out op);
        }

        if (Is(name, "HMSG"u8))
        {
            return ParseMsg(rest, afterLine, headers: true, ref buffer, out op);
        }

        if (Is(name, "PING"u8))
        {
            op = NoArgs(rest, ServerOp.Ping, "PING");
        }
        else if (Is(name, "PONG"u8))
        {
            op = NoArgs(rest, ServerOp.Pong, "PONG");
        }
        else if (Is(name, "+OK"u8))
        {
            op = NoArgs(rest, ServerOp.Ok, "+OK");
        }
        else if (Is(name, "-ERR"u8))
        {
            var text = rest.Trim(" \t"u8).Trim((byte)'\'');
            op = new ServerOp(ServerOpKind.Err, Text: Decode(text));
        }
        else if (Is(name, "INFO"u8))
        {
            var json = rest.Trim(" \t"u8);
            if (json.IsEmpty)
            {
                throw new NatsProtocolException("INFO without a JSON argument.");
            }

            op = new ServerOp(ServerOpKind.Info, Text: Decode(json));
        }
        else
        {
            throw new NatsProtocolException($"Unknown operation '{Printable(name)}'.");
        }

        buffer = afterLine;
        return true;
    }

    private bool ParseMsg(ReadOnlySpan<byte> args, ReadOnlySequence<byte> afterLine, bool headers, ref ReadOnlySequence<byte> buffer, out ServerOp op)
    {
        op = default;
        var opName = headers ? "HMSG" : "MSG";
        Span<Range> parts = stackalloc Range[6];
        var count = Split(args, parts);
        // MSG subject sid [reply] size; HMSG subject sid [reply] hdr-size total-size.
        var min = headers ? 4 : 3;
        if (count < min || count > min + 1)
        {
            throw new NatsProtocolException($"{opName} needs {min} or {min + 1} arguments, got {count}.");
        }

        var subject = args[parts[0]];
        var sid = ParseNumber(args[parts[1]], opName, "sid", long.MaxValue);
        var hasReply = count == min + 1;
        var reply = hasReply ? args[parts[2]] : default;
        var sizeIndex = hasReply ? 3 : 2;
        long headerSize = 0;
        long totalSize;
        if (headers)
        {
            headerSize = ParseNumber(args[parts[sizeIndex]], opName, "header size", MaxPayload);
            totalSize = ParseNumber(args[parts[sizeIndex + 1]], opName, "total size", MaxPayload);
            if (headerSize > totalSize)
            {
                throw new NatsProtocolException($"HMSG header size {headerSize} exceeds total size {totalSize}.");
            }

            if (headerSize < HeaderVersion.Length + 4)
            {
                throw new NatsProtocolException($"HMSG header size {headerSize} is too small for a NATS/1.0 header block.");
            }
        }
        else
        {
            totalSize = ParseNumber(args[parts[sizeIndex]], opName, "size", MaxPayload);
        }

        if (afterLine.Length < totalSize + 2)
        {
            return false;
        }

        var trailer = afterLine.Slice(totalSize, 2);
        Span<byte> crlf = stackalloc byte[2];
        trailer.CopyTo(crlf);
        if (crlf[0] != (byte)'\r' || crlf[1] != (byte)'\n')
        {
            throw new NatsProtocolException($"{opName} payload is not followed by CRLF.");
        }

        NatsHeaders? parsedHeaders = null;
        if (headers)
        {
            parsedHeaders = ParseHeaders(afterLine.Slice(0, headerSize));
        }

        var payloadLength = totalSize - headerSize;
        var payload = payloadLength == 0 ? [] : GC.AllocateUninitializedArray<byte>((int)payloadLength);
        afterLine.Slice(headerSize, payloadLength).CopyTo(payload);

        op = new ServerOp(
            ServerOpKind.Msg,
            Subject: Decode(subject),
            Sid: sid,
            ReplyTo: hasReply ? Decode(reply) : null,
            Headers: parsedHeaders,
            Payload: payload);
        buffer = afterLine.Slice(totalSize + 2);
        return true;
    }

    /// <summary>Parses <c>NATS/1.0[ code[ description]]\r\n(Name: value\r\n)*\r\n</c>.</summary>
    internal static NatsHeaders ParseHeaders(ReadOnlySequence<byte> block)
    {
        var bytes = block.IsSingleSegment ? block.FirstSpan : block.ToArray();
        if (!bytes.EndsWith("\r\n\r\n"u8))
        {
            throw new NatsProtocolException("Header block does not end with an empty line.");
        }

        var firstEnd = bytes.IndexOf("\r\n"u8);
        var versionLine = bytes[..firstEnd];
        if (!versionLine.StartsWith(HeaderVersion))
        {
            throw new NatsProtocolException("Header block does not start with NATS/1.0.");
        }

        var status = versionLine[HeaderVersion.Length..];
        var code = 0;
        string? description = null;
        if (!status.IsEmpty)
        {
            if (status[0] != (byte)' ' && status[0] != (byte)'\t')
            {
                throw new NatsProtocolException("Header version line has junk after NATS/1.0.");
            }

            status = status.Trim(" \t"u8);
            if (!status.IsEmpty)
            {
                if (status.Length < 3 || !IsDigits(status[..3]) || (status.Length > 3 && status[3] != (byte)' ' && status[3] != (byte)'\t'))
                {
                    throw new NatsProtocolException("Header status code must be three digits.");
                }

                code = ((status[0] - '0') * 100) + ((status[1] - '0') * 10) + (status[2] - '0');
                var text = status[3..].Trim(" \t"u8);
                description = text.IsEmpty ? null : Decode(text);
            }
        }

        var result = new NatsHeaders { StatusCode = code, StatusDescription = description };
        var rest = bytes[(firstEnd + 2)..^2];
        while (!rest.IsEmpty)
        {
            var end = rest.IndexOf("\r\n"u8);
            var headerLine = rest[..end];
            rest = rest[(end + 2)..];
            var colon = headerLine.IndexOf((byte)':');
            if (colon <= 0)
            {
                throw new NatsProtocolException("Header line without 'Name:'.");
            }

            var name = headerLine[..colon];
            foreach (var b in name)
            {
                if (b <= (byte)' ' || b >= 127)
                {
                    throw new NatsProtocolException("Header name contains a space or a control character.");
                }
            }

            var value = headerLine[(colon + 1)..].Trim(" \t"u8);
            if (value.IndexOfAny((byte)'\r', (byte)'\n') >= 0)
            {
                throw new NatsProtocolException("Header value contains CR or LF.");
            }

            result.AddParsed(Decode(name), Decode(value));
        }

        return result;
    }

    private static ServerOp NoArgs(ReadOnlySpan<byte> rest, ServerOp op, string name)
    {
        if (!rest.Trim(" \t"u8).IsEmpty)
        {
            throw new NatsProtocolException($"{name} takes no arguments.");
        }

        return op;
    }

    private static int Split(ReadOnlySpan<byte> args, Span<Range> parts)
    {
        var count = 0;
        var i = 0;
        while (i < args.Length)
        {
            while (i < args.Length && (args[i] == (byte)' ' || args[i] == (byte)'\t'))
            {
                i++;
            }

            if (i == args.Length)
            {
                break;
            }

            var start = i;
            while (i < args.Length && args[i] != (byte)' ' && args[i] != (byte)'\t')
            {
                i++;
            }

            if (count == parts.Length)
            {
                return count + 1; // too many; the caller reports the count as wrong
            }

            parts[count++] = new Range(start, i);
        }

        return count;
    }

    private static long ParseNumber(ReadOnlySpan<byte> text, string op, string what, long max)
    {
        if (text.IsEmpty || text.Length > 18 || !IsDigits(text))
        {
            throw new NatsProtocolException($"{op} {what} '{Printable(text)}' is not a number.");
        }

        long value = 0;
        foreach (var b in text)
        {
            value = checked((value * 10) + (b - '0'));
        }

        if (value > max)
        {
            throw new NatsProtocolException($"{op} {what} {value} exceeds the limit of {max}.");
        }

        return value;
    }

    private static bool IsDigits(ReadOnlySpan<byte> text) => !text.ContainsAnyExceptInRange((byte)'0', (byte)'9');

    private static bool Is(ReadOnlySpan<byte> name, ReadOnlySpan<byte> upper)
    {
        if (name.Length != upper.Length)
        {
            return false;
        }

        for (var i = 0; i < name.Length; i++)
        {
            var b = name[i];
            if (b is >= (byte)'a' and <= (byte)'z')
            {
                b = (byte)(b - 32);
            }

            if (b != upper[i])
            {
                return false;
            }
        }

        return true;
    }

    private static string Decode(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var shown = bytes.Length > 32 ? bytes[..32] : bytes;
        var sb = new StringBuilder(shown.Length);
        foreach (var b in shown)
        {
            sb.Append(b is >= 32 and < 127 ? (char)b : '?');
        }

        return sb.ToString();
    }
}
