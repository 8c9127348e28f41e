using System.Buffers;
using System.Text;
using Sluice.Nats.Protocol;

namespace Sluice.Nats.Tests.Protocol;

/// <summary>Builds valid server byte streams with the ops they must parse to, and feeds parsers in chunks.</summary>
internal static class ServerStream
{
    private static readonly string[] Subjects = ["foo", "foo.bar", "a.b.c.d", "_INBOX.abc.1", "$JS.API.INFO", "ü.ñ"];

    /// <summary>A random valid stream of <paramref name="count"/> ops and its canonical rendering.</summary>
    public static (byte[] Bytes, List<string> Expected) Generate(Random random, int count)
    {
        var bytes = new List<byte>();
        var expected = new List<string>();
        for (var i = 0; i < count; i++)
        {
            switch (random.Next(7))
            {
                case 0:
                    Add(bytes, random.Next(2) == 0 ? "PING\r\n" : "ping\r\n");
                    expected.Add("PING");
                    break;
                case 1:
                    Add(bytes, "PONG\r\n");
                    expected.Add("PONG");
                    break;
                case 2:
                    Add(bytes, "+OK\r\n");
                    expected.Add("OK");
                    break;
                case 3:
                    Add(bytes, "-ERR 'Unknown Protocol Operation'\r\n");
                    expected.Add("ERR|Unknown Protocol Operation");
                    break;
                case 4:
                    var json = $"{{\"server_id\":\"S{random.Next(1000)}\",\"max_payload\":1048576}}";
                    Add(bytes, "INFO " + json + "\r\n");
                    expected.Add("INFO|" + json);
                    break;
                default:
                    var subject = Subjects[random.Next(Subjects.Length)];
                    var sid = random.NextInt64(1, 1_000_000);
                    var reply = random.Next(3) == 0 ? "_INBOX.r." + random.Next(100) : null;
                    var payload = new byte[random.Next(3) == 0 ? 0 : random.Next(1, 300)];
                    random.NextBytes(payload);
                    var withHeaders = random.Next(2) == 0;
                    var op = new ServerOp(ServerOpKind.Msg, subject, sid, reply, null, payload);
                    if (withHeaders)
                    {
                        var status = random.Next(3) switch { 0 => string.Empty, 1 => " 503", _ => " 408 Request Timeout" };
                        var header = $"NATS/1.0{status}\r\nA: {random.Next()}\r\nB-2: x y\r\nA: again\r\n\r\n";
                        var headerBytes = Encoding.UTF8.GetBytes(header);
                        var line = reply is null
                            ? $"HMSG {subject} {sid} {headerBytes.Length} {headerBytes.Length + payload.Length}\r\n"
                            : $"HMSG {subject} {sid} {reply} {headerBytes.Length} {headerBytes.Length + payload.Length}\r\n";
                        Add(bytes, line);
                        bytes.AddRange(headerBytes);
                        op = op with { Headers = NatsParser.ParseHeaders(new ReadOnlySequence<byte>(headerBytes)) };
                    }
                    else
                    {
                        Add(bytes, reply is null ? $"MSG {subject} {sid} {payload.Length}\r\n" : $"MSG {subject}\t{sid}  {reply} {payload.Length}\r\n");
                    }

                    bytes.AddRange(payload);
                    Add(bytes, "\r\n");
                    expected.Add(Render(op));
                    break;
            }
        }

        return (bytes.ToArray(), expected);
    }

    public static string Render(in ServerOp op) => op.Kind switch
    {
        ServerOpKind.Ping => "PING",
        ServerOpKind.Pong => "PONG",
        ServerOpKind.Ok => "OK",
        ServerOpKind.Err => "ERR|" + op.Text,
        ServerOpKind.Info => "INFO|" + op.Text,
        _ => $"MSG|{op.Subject}|{op.Sid}|{op.ReplyTo}|{RenderHeaders(op.Headers)}|{Convert.ToHexString(op.Payload ?? [])}",
    };

    /// <summary>
    /// Feeds <paramref name="bytes"/> to a parser in the given chunk sizes, like a socket would: after each
    /// chunk, parse what is complete from a multi-segment sequence of the unconsumed chunks.
    /// </summary>
    public static List<string> ParseInChunks(NatsParser parser, byte[] bytes, IReadOnlyList<int> chunkSizes)
    {
        var result = new List<string>();
        var segments = new List<byte[]>();
        long consumedInFirst = 0;
        var offset = 0;
        var chunk = 0;
        while (offset < bytes.Length)
        {
            var size = Math.Clamp(chunkSizes.Count == 0 ? bytes.Length : chunkSizes[chunk++ % chunkSizes.Count], 1, bytes.Length - offset);
            segments.Add(bytes[offset..(offset + size)]);
            offset += size;
            var buffer = Segments.Build(segments).Slice(consumedInFirst);
            var before = buffer.Length;
            while (parser.TryParse(ref buffer, out var op))
            {
                result.Add(Render(op));
            }

            // Drop fully consumed segments, remember the offset into the first remaining one.
            var consumed = before - buffer.Length + consumedInFirst;
            while (segments.Count > 0 && consumed >= segments[0].Length)
            {
                consumed -= segments[0].Length;
                segments.RemoveAt(0);
            }

            consumedInFirst = consumed;
        }

        return result;
    }

    private static string RenderHeaders(NatsHeaders? headers)
    {
        if (headers is null)
        {
            return "-";
        }

        var sb = new StringBuilder();
        sb.Append(headers.StatusCode).Append('/').Append(headers.StatusDescription);
        foreach (var (name, values) in headers)
        {
            sb.Append(';').Append(name).Append('=').Append(string.Join(',', values));
        }

        return sb.ToString();
    }

    private static void Add(List<byte> bytes, string text) => bytes.AddRange(Encoding.UTF8.GetBytes(text));
}

/// <summary>Multi-segment sequences, so parsers meet data split across buffers.</summary>
internal static class Segments
{
    public static ReadOnlySequence<byte> Build(IReadOnlyList<byte[]> parts)
    {
        if (parts.Count == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(parts[0], 0);
        var last = first;
        for (var i = 1; i < parts.Count; i++)
        {
            last = last.Append(parts[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
