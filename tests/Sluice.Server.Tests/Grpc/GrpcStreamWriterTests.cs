using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Sluice.Protocol.Api;
using Sluice.Server.Grpc;

namespace Sluice.Server.Tests.Grpc;

/// <summary>
/// The stream writer on its own, over a plain pipe: a pipe reader sees only flushed bytes, so a
/// message left unflushed shows up as a frame that never arrives.
/// </summary>
public sealed class GrpcStreamWriterTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Concurrent_non_flushing_posts_each_followed_by_a_flush_request_all_reach_the_reader()
    {
        // Partition write loops post acks without flushing and then ask for one flush per batch, from
        // several threads at once. Every acked message must be flushed: repeat to give races a chance.
        // A small pause threshold makes most flushes wait for the reader, so the drain resumes on
        // the reader's thread while posters keep queueing: the interleavings where a flush request
        // can be lost.
        for (var round = 0; round < 200; round++)
        {
            var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 512, resumeWriterThreshold: 256, useSynchronizationContext: false));
            var writer = new GrpcStreamWriter<Ack>(pipe.Writer, int.MaxValue, () => { }, CancellationToken.None);
            const int Threads = 4;
            const int PerThread = 25;
            var reading = Task.Run(() => ReadFramesAsync(pipe.Reader, Threads * PerThread));
            var start = new Barrier(Threads);
            var posters = Enumerable.Range(0, Threads).Select(t => Task.Run(() =>
            {
                start.SignalAndWait(Patience);
                for (var i = 0; i < PerThread; i++)
                {
                    Assert.True(writer.Post(new Ack { CorrelationId = $"{t}-{i}".PadRight(64, '.') }, flush: false));
                    if (i % 5 == 4)
                    {
                        writer.PostFlush(); // end of a batch
                    }
                }
            })).ToArray();
            await Task.WhenAll(posters).WaitAsync(Patience);

            var received = await reading.WaitAsync(Patience);
            Assert.Equal(Threads * PerThread, received.Distinct().Count());
        }
    }

    [Fact]
    public async Task Writes_from_one_caller_are_serialized_before_WriteAsync_returns_and_flushed_by_FlushAsync()
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        var writer = new GrpcStreamWriter<Ack>(pipe.Writer, int.MaxValue, () => { }, CancellationToken.None);
        var ack = new Ack { CorrelationId = "a" };
        await writer.WriteAsync(ack, flush: false);
        ack.CorrelationId = "changed after the write"; // allowed: the message is already serialized
        await writer.WriteAsync(new Ack { CorrelationId = "b" }, flush: false);
        Assert.False(pipe.Reader.TryRead(out _)); // nothing flushed yet
        await writer.FlushAsync();
        Assert.Equal(["a", "b"], await ReadFramesAsync(pipe.Reader, 2).WaitAsync(Patience));
    }

    private static async Task<List<string>> ReadFramesAsync(PipeReader reader, int count)
    {
        var ids = new List<string>();
        while (ids.Count < count)
        {
            var result = await reader.ReadAsync();
            var buffer = result.Buffer;
            while (buffer.Length >= 5)
            {
                var header = buffer.Slice(0, 5).ToArray();
                var size = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(1));
                if (buffer.Length < 5 + size)
                {
                    break;
                }

                ids.Add(Ack.Parser.ParseFrom(buffer.Slice(5, size)).CorrelationId);
                buffer = buffer.Slice(5 + size);
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
        }

        return ids;
    }
}
