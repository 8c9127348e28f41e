using System.Buffers;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;

namespace Sluice.Protocol.Tests.Grpc;

public class GrpcFrameTests
{
    private static byte[] Frame(byte[] payload, bool compressed = false)
    {
        var frame = new byte[GrpcFrame.HeaderSize + payload.Length];
        GrpcFrame.WriteHeader(frame, compressed, payload.Length);
        payload.CopyTo(frame, GrpcFrame.HeaderSize);
        return frame;
    }

    [Fact]
    public void Header_is_flag_then_big_endian_length()
    {
        var header = new byte[5];
        GrpcFrame.WriteHeader(header, compressed: true, 0x01020304);
        Assert.Equal(new byte[] { 1, 1, 2, 3, 4 }, header);
    }

    [Fact]
    public void Messages_are_read_back_whatever_the_split_of_the_bytes()
    {
        var payloads = Enumerable.Range(0, 20).Select(i => Enumerable.Repeat((byte)i, i * 7).ToArray()).ToArray();
        var stream = payloads.SelectMany(p => Frame(p)).ToArray();
        var random = new Random(42);
        for (var round = 0; round < 200; round++)
        {
            var cuts = Enumerable.Range(0, random.Next(1, 10)).Select(_ => random.Next(stream.Length + 1)).Order().Distinct().ToList();
            var pending = new List<byte>();
            var read = new List<byte[]>();
            var start = 0;
            foreach (var cut in cuts.Append(stream.Length))
            {
                pending.AddRange(stream[start..cut]);
                start = cut;
                var buffer = new ReadOnlySequence<byte>(pending.ToArray());
                while (GrpcFrame.TryRead(ref buffer, 1024, out var compressed, out var payload))
                {
                    Assert.False(compressed);
                    read.Add(payload.ToArray());
                }

                pending = [.. buffer.ToArray()];
            }

            Assert.Empty(pending);
            Assert.Equal(payloads, read);
        }
    }

    [Fact]
    public void A_message_over_the_limit_is_refused_from_its_header_alone()
    {
        var header = new byte[5];
        GrpcFrame.WriteHeader(header, false, 2000);
        var buffer = new ReadOnlySequence<byte>(header);
        var ex = Assert.Throws<GrpcException>(() => GrpcFrame.TryRead(ref buffer, 1000, out _, out _));
        Assert.Equal(GrpcStatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Contains("2000", ex.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void An_invalid_flag_byte_is_an_internal_error()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 7, 0, 0, 0, 0 });
        var ex = Assert.Throws<GrpcException>(() => GrpcFrame.TryRead(ref buffer, 1000, out _, out _));
        Assert.Equal(GrpcStatusCode.Internal, ex.StatusCode);
    }

    [Fact]
    public async Task Gzip_round_trips_and_the_reader_inflates_compressed_frames()
    {
        var message = new PublishRequest { Stream = "s", Value = ByteString.CopyFrom(new byte[5000]) };
        var compressed = GrpcCompression.Compress(message.ToByteArray());
        Assert.True(compressed.Length < 5000);
        Assert.Equal(message.ToByteArray(), GrpcCompression.Decompress(new ReadOnlySequence<byte>(compressed), 1 << 20));

        var pipe = new System.IO.Pipelines.Pipe();
        pipe.Writer.Write(Frame(compressed, compressed: true));
        pipe.Writer.Complete();
        var reader = new GrpcMessageReader<PublishRequest>(pipe.Reader, PublishRequest.Parser.ParseFrom, 1 << 20, "gzip");
        Assert.Equal(message, await reader.ReadAsync(default));
    }

    [Fact]
    public void Decompression_stops_at_the_size_limit()
    {
        var bomb = GrpcCompression.Compress(new byte[1 << 20]);
        var ex = Assert.Throws<GrpcException>(() => GrpcCompression.Decompress(new ReadOnlySequence<byte>(bomb), 64 * 1024));
        Assert.Equal(GrpcStatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Fact]
    public async Task A_stream_ending_inside_a_message_is_an_internal_error()
    {
        var pipe = new System.IO.Pipelines.Pipe();
        var frame = Frame(new byte[100]);
        await pipe.Writer.WriteAsync(frame.AsMemory(0, 50));
        await pipe.Writer.CompleteAsync();
        var reader = new GrpcMessageReader<PublishRequest>(pipe.Reader, PublishRequest.Parser.ParseFrom, 1 << 20, null);
        var ex = await Assert.ThrowsAsync<GrpcException>(() => reader.ReadAsync(default).AsTask());
        Assert.Equal(GrpcStatusCode.Internal, ex.StatusCode);
    }

    [Fact]
    public async Task Messages_of_one_read_come_out_in_order_beyond_the_read_ahead_limit_and_then_the_end()
    {
        var count = GrpcMessageReader<PublishRequest>.MaxReadAhead * 2 + 7;
        var pipe = new System.IO.Pipelines.Pipe();
        for (var i = 0; i < count; i++)
        {
            pipe.Writer.Write(Frame(new PublishRequest { Partition = i }.ToByteArray()));
        }

        await pipe.Writer.CompleteAsync();
        var reader = new GrpcMessageReader<PublishRequest>(pipe.Reader, PublishRequest.Parser.ParseFrom, 1 << 20, null);

        for (var i = 0; i < count; i++)
        {
            Assert.Equal(i, (await reader.ReadAsync(default))!.Partition);
        }

        Assert.Null(await reader.ReadAsync(default));
        Assert.Null(await reader.ReadAsync(default));
    }

    [Fact]
    public async Task Large_messages_are_not_parsed_far_ahead_of_the_reader()
    {
        var pipe = new System.IO.Pipelines.Pipe(new System.IO.Pipelines.PipeOptions(pauseWriterThreshold: 0));
        var value = ByteString.CopyFrom(new byte[40 * 1024]);
        for (var i = 0; i < 10; i++)
        {
            pipe.Writer.Write(Frame(new PublishRequest { Partition = i, Value = value }.ToByteArray()));
        }

        await pipe.Writer.FlushAsync();
        var parsed = 0;
        var reader = new GrpcMessageReader<PublishRequest>(pipe.Reader, payload => { parsed++; return PublishRequest.Parser.ParseFrom(payload); }, 1 << 20, null);

        Assert.Equal(0, (await reader.ReadAsync(default))!.Partition);

        // 64 KB of 40 KB messages: two parsed in the first go, not all ten.
        Assert.Equal(2, parsed);
        for (var i = 1; i < 10; i++)
        {
            Assert.Equal(i, (await reader.ReadAsync(default))!.Partition);
        }
    }

    [Fact]
    public async Task A_bad_message_is_reported_after_the_good_ones_that_came_with_it()
    {
        var pipe = new System.IO.Pipelines.Pipe();
        pipe.Writer.Write(Frame(new PublishRequest { Stream = "a" }.ToByteArray()));
        pipe.Writer.Write(Frame(new PublishRequest { Stream = "b" }.ToByteArray()));
        pipe.Writer.Write(Frame([0x1A, 0x05, 0x01])); // stream says 5 bytes, 1 follows
        pipe.Writer.Write(Frame(new PublishRequest { Stream = "c" }.ToByteArray()));
        await pipe.Writer.FlushAsync();
        var reader = new GrpcMessageReader<PublishRequest>(pipe.Reader, PublishRequest.Parser.ParseFrom, 1 << 20, null);

        Assert.Equal("a", (await reader.ReadAsync(default))!.Stream);
        Assert.Equal("b", (await reader.ReadAsync(default))!.Stream);
        var ex = await Assert.ThrowsAsync<GrpcException>(() => reader.ReadAsync(default).AsTask());
        Assert.Equal(GrpcStatusCode.Internal, ex.StatusCode);
        Assert.Contains("Failed to parse PublishRequest", ex.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cancelled_read_is_cancelled_even_with_messages_waiting()
    {
        var pipe = new System.IO.Pipelines.Pipe();
        pipe.Writer.Write(Frame(new PublishRequest { Stream = "a" }.ToByteArray()));
        pipe.Writer.Write(Frame(new PublishRequest { Stream = "b" }.ToByteArray()));
        await pipe.Writer.FlushAsync();
        var reader = new GrpcMessageReader<PublishRequest>(pipe.Reader, PublishRequest.Parser.ParseFrom, 1 << 20, null);
        Assert.Equal("a", (await reader.ReadAsync(default))!.Stream);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reader.ReadAsync(new CancellationToken(canceled: true)).AsTask());

        Assert.Equal("b", (await reader.ReadAsync(default))!.Stream);
    }

    [Fact]
    public async Task A_wire_reader_failure_names_the_protobuf_message()
    {
        var pipe = new System.IO.Pipelines.Pipe();
        pipe.Writer.Write(Frame([0x1A, 0x05, 0x01]));
        await pipe.Writer.CompleteAsync();
        var reader = new GrpcMessageReader<Sluice.Protocol.Wire.WirePublishRequest>(pipe.Reader, Sluice.Protocol.Wire.WirePublishRequest.Decode, 1 << 20, null);

        var ex = await Assert.ThrowsAsync<GrpcException>(() => reader.ReadAsync(default).AsTask());

        Assert.Equal(GrpcStatusCode.Internal, ex.StatusCode);
        Assert.StartsWith("Failed to parse PublishRequest: ", ex.Detail, StringComparison.Ordinal);
    }
}
