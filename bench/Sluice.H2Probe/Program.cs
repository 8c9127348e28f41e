// sluice-h2probe: a research probe for issue #7, not a client. It publishes synchronously (one
// message, wait for its ack, next) over PublishAsync on hand-written h2c connections with blocking
// sockets, one thread per connection, so the client adds no thread hops at all. Comparing it with
// Sluice.Client on the same server shows how much of rows A and D the client's HTTP/2 stack costs.
// It handles only what a healthy local Sluice server sends (SETTINGS, PING, WINDOW_UPDATE, HEADERS,
// DATA) and fails on anything else. Usage: sluice-h2probe <port> <stream> <messages> [connections]
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: sluice-h2probe <port> <stream> <messages> [connections]");
    return 2;
}

var port = int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture);
var streamName = Encoding.UTF8.GetBytes(args[1]);
var total = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
var connections = args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 1;

var latencies = new List<double>(total);
var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
var wall = Stopwatch.StartNew();
var threads = Enumerable.Range(0, connections).Select(_ => new Thread(() =>
{
    var own = Probe.Run(port, streamName, total / connections);
    lock (latencies)
    {
        latencies.AddRange(own);
    }
})).ToList();
threads.ForEach(t => t.Start());
threads.ForEach(t => t.Join());
wall.Stop();
var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
latencies.Sort();
Console.WriteLine(string.Create(
    System.Globalization.CultureInfo.InvariantCulture,
    $"{latencies.Count / wall.Elapsed.TotalSeconds:N0} msgs/s  client cpu {cpu.TotalMicroseconds / latencies.Count:F1} us/msg  p50 {latencies[latencies.Count / 2]:F0} us  p99 {latencies[(int)(latencies.Count * 0.99)]:F0} us  ({connections} connection(s))"));
return 0;

/// <summary>One h2c connection with one PublishAsync stream, driven synchronously.</summary>
internal static class Probe
{
    private const byte Data = 0, Headers = 1, RstStream = 3, Settings = 4, Ping = 6, GoAway = 7, WindowUpdate = 8;

    public static List<double> Run(int port, byte[] stream, int messages)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        socket.Connect(IPAddress.Loopback, port);
        var output = new List<byte>();
        output.AddRange("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray());
        AddFrame(output, Settings, 0, 0, []);
        AddFrame(output, WindowUpdate, 0, 0, BigEndian(1 << 30)); // a connection window that never runs out here
        var headers = new List<byte>();
        foreach (var (name, value) in new[] { (":method", "POST"), (":scheme", "http"), (":path", "/proto.API/PublishAsync"), (":authority", "127.0.0.1"), ("content-type", "application/grpc"), ("te", "trailers") })
        {
            headers.Add(0); // HPACK literal without indexing, new name, no Huffman
            headers.Add((byte)name.Length);
            headers.AddRange(Encoding.ASCII.GetBytes(name));
            headers.Add((byte)value.Length);
            headers.AddRange(Encoding.ASCII.GetBytes(value));
        }

        AddFrame(output, Headers, 0x4, 1, [.. headers]); // END_HEADERS
        Send(socket, output);

        var payload = new byte[256];
        new Random(1).NextBytes(payload);
        var input = new byte[1 << 16];
        var inputLength = 0;
        var latencies = new List<double>(messages);
        for (var i = 0; i < messages; i++)
        {
            var start = Stopwatch.GetTimestamp();
            AddFrame(output, Data, 0, 1, GrpcPublishRequest(stream, payload, "c" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Send(socket, output);
            while (true)
            {
                var (type, flags, streamId, frame) = ReadFrame(socket, input, ref inputLength);
                if (type == Settings && (flags & 1) == 0)
                {
                    AddFrame(output, Settings, 1, 0, []); // ACK
                    Send(socket, output);
                }
                else if (type == Ping && (flags & 1) == 0)
                {
                    AddFrame(output, Ping, 1, 0, frame);
                    Send(socket, output);
                }
                else if (type == Data && streamId == 1)
                {
                    AddFrame(output, WindowUpdate, 0, 1, BigEndian(Math.Max(frame.Length, 1))); // goes out with the next request
                    break;
                }
                else if (type is RstStream or GoAway)
                {
                    throw new IOException($"the server ended the stream (frame type {type})");
                }
            }

            latencies.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        }

        return latencies;
    }

    private static byte[] GrpcPublishRequest(byte[] stream, byte[] value, string correlationId)
    {
        var message = new List<byte>();
        AddBytesField(message, 2, value);                                  // value
        AddBytesField(message, 3, stream);                                 // stream
        AddBytesField(message, 7, Encoding.ASCII.GetBytes(correlationId)); // correlationId
        message.Add(9 << 3);                                               // expectedOffset = -1
        AddVarint(message, ulong.MaxValue);
        var framed = new byte[5 + message.Count];
        BinaryPrimitives.WriteInt32BigEndian(framed.AsSpan(1), message.Count);
        message.CopyTo(framed, 5);
        return framed;
    }

    private static void AddBytesField(List<byte> message, int field, byte[] bytes)
    {
        message.Add((byte)((field << 3) | 2));
        AddVarint(message, (ulong)bytes.Length);
        message.AddRange(bytes);
    }

    private static void AddVarint(List<byte> message, ulong value)
    {
        while (value >= 0x80)
        {
            message.Add((byte)(value | 0x80));
            value >>= 7;
        }

        message.Add((byte)value);
    }

    private static byte[] BigEndian(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, value);
        return bytes;
    }

    private static void AddFrame(List<byte> output, byte type, byte flags, int streamId, byte[] payload)
    {
        output.Add((byte)(payload.Length >> 16));
        output.Add((byte)(payload.Length >> 8));
        output.Add((byte)payload.Length);
        output.Add(type);
        output.Add(flags);
        output.AddRange(BigEndian(streamId));
        output.AddRange(payload);
    }

    private static void Send(Socket socket, List<byte> output)
    {
        var bytes = output.ToArray();
        for (var sent = 0; sent < bytes.Length;)
        {
            sent += socket.Send(bytes, sent, bytes.Length - sent, SocketFlags.None);
        }

        output.Clear();
    }

    private static (byte Type, byte Flags, int StreamId, byte[] Payload) ReadFrame(Socket socket, byte[] input, ref int length)
    {
        while (true)
        {
            if (length >= 9)
            {
                var size = (input[0] << 16) | (input[1] << 8) | input[2];
                if (length >= 9 + size)
                {
                    var frame = (input[3], input[4], BinaryPrimitives.ReadInt32BigEndian(input.AsSpan(5)) & 0x7fffffff, input.AsSpan(9, size).ToArray());
                    Buffer.BlockCopy(input, 9 + size, input, 0, length - 9 - size);
                    length -= 9 + size;
                    return frame;
                }
            }

            var read = socket.Receive(input, length, input.Length - length, SocketFlags.None);
            length += read > 0 ? read : throw new IOException("the server closed the connection");
        }
    }
}
